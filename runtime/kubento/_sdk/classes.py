"""`@kubento.service` and `@kubento.api`: BentoML 1.2+ service classes.

A service class's `__init__` loads its models; its `@kubento.api` methods take and
return type-hinted values; its `kubento.depends(Other)` attributes reach other service
classes. The decorators only record what the class declares (`ServiceConfig`); the graph
(graph.py) turns the classes into components, and nothing runs at import.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from kubento._models.store import Model
from kubento._sdk.runnable import _normalise_batch_dim
from kubento._sdk.typed import Signature
from kubento.contract import check_knobs

T = TypeVar("T", bound=type)
F = TypeVar("F", bound=Callable[..., Any])

_API_ATTR = "__kubento_api__"
CONFIG_ATTR = "__kubento_service__"
SERVICE_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class APIConfig:
    """One `@kubento.api` method: its route, batching and typed signature."""

    name: str
    route: str
    batchable: bool
    batch_dim: tuple[int, int]
    max_batch_size: int
    max_latency_ms: float
    is_async: bool
    signature: Signature


@dataclass
class ServiceConfig:
    """What `@kubento.service(...)` declares about a class."""

    cls: type
    name: str
    resources: dict[str, Any]
    workers: int
    traffic: dict[str, Any]
    envs: list[dict[str, Any]]
    apis: dict[str, APIConfig] = field(default_factory=dict)
    models: list[Model] = field(default_factory=list)
    """Stored models the class refers to (`model = kubento.models.get("iris:latest")` as a
    class attribute, as in BentoML 1.2+), so a deployment knows what the service needs."""

    @property
    def timeout_s(self) -> float:
        return float(self.traffic.get("timeout") or DEFAULT_TIMEOUT_S)


@overload
def api(func: F, /) -> F: ...


@overload
def api(
    *,
    route: str | None = None,
    batchable: bool = False,
    batch_dim: int | tuple[int, int] = 0,
    max_batch_size: int = 100,
    max_latency_ms: float = 60000,
) -> Callable[[F], F]: ...


def api(
    func: Any = None,
    /,
    *,
    route: str | None = None,
    batchable: bool = False,
    batch_dim: int | tuple[int, int] = 0,
    max_batch_size: int = 100,
    max_latency_ms: float = 60000,
) -> Any:
    """Expose a method of a service class: ``@kubento.api(batchable=True)``."""
    dims = _normalise_batch_dim(batch_dim)

    def decorate(fn: F) -> F:
        what = f"api {fn.__name__!r}"
        check_knobs({"max_batch_size": max_batch_size, "max_latency_ms": max_latency_ms}, what=what)
        config = APIConfig(
            name=fn.__name__,
            route=route or f"/{fn.__name__}",
            batchable=batchable,
            batch_dim=dims,
            max_batch_size=max_batch_size,
            max_latency_ms=max_latency_ms,
            is_async=inspect.iscoroutinefunction(fn),
            signature=Signature.of(fn),
        )
        setattr(fn, _API_ATTR, config)
        return fn

    return decorate(func) if func is not None else decorate


@overload
def service(cls: T, /) -> T: ...


@overload
def service(
    *,
    name: str | None = None,
    resources: Mapping[str, Any] | None = None,
    workers: int = 1,
    traffic: Mapping[str, Any] | None = None,
    envs: Sequence[Mapping[str, Any]] | None = None,
) -> Callable[[T], T]: ...


def service(
    cls: Any = None,
    /,
    *,
    name: str | None = None,
    resources: Mapping[str, Any] | None = None,
    workers: int = 1,
    traffic: Mapping[str, Any] | None = None,
    envs: Sequence[Mapping[str, Any]] | None = None,
) -> Any:
    """Declare a service class: ``@kubento.service(resources={"cpu": "2"}, workers=1)``."""

    def decorate(klass: T) -> T:
        if not isinstance(klass, type):
            raise TypeError(f"@kubento.service decorates a class, got {klass!r}")
        service_name = name or klass.__name__
        if not SERVICE_NAME_PATTERN.match(service_name) or len(service_name) > 63:
            raise ValueError(
                f"invalid service name {service_name!r}: use letters, digits and '_', "
                f"starting with a letter, at most 63 characters"
            )
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
            raise ValueError(f"service {service_name!r}: workers must be >= 1, got {workers!r}")
        apis: dict[str, APIConfig] = {}
        models: dict[str, Model] = {}
        for klass_ in reversed(klass.__mro__):
            for attr, value in vars(klass_).items():
                config = getattr(value, _API_ATTR, None)
                if isinstance(config, APIConfig):
                    apis[attr] = config
                elif isinstance(value, Model):
                    models[str(value.tag)] = value
        routes = [config.route for config in apis.values()]
        duplicate = next((r for r in routes if routes.count(r) > 1), None)
        if duplicate is not None:
            raise ValueError(f"service {service_name!r} has two apis at {duplicate!r}")
        setattr(
            klass,
            CONFIG_ATTR,
            ServiceConfig(
                cls=klass,
                name=service_name,
                resources=dict(resources or {}),
                workers=workers,
                traffic={"timeout": DEFAULT_TIMEOUT_S, "max_concurrency": None, **(traffic or {})},
                envs=[dict(env) for env in envs or []],
                apis=apis,
                models=list(models.values()),
            ),
        )
        return klass

    return decorate(cls) if cls is not None else decorate


def config_of(cls: object) -> ServiceConfig | None:
    """The `ServiceConfig` of a `@kubento.service` class (its own, not a base class's)."""
    if not isinstance(cls, type):
        return None
    config = cls.__dict__.get(CONFIG_ATTR)
    return config if isinstance(config, ServiceConfig) else None


def require_config(cls: object, what: str = "") -> ServiceConfig:
    config = config_of(cls)
    if config is None:
        raise TypeError(f"{what}{cls!r} is not a service class: decorate it with @kubento.service")
    return config
