"""`kubento.depends(Other)`: a service class's attribute that reaches another service.

The attribute behaves like an instance of `Other`: `self.other.method(x)` calls it and
waits; `await self.other.to_async.method(x)` is awaitable (for `asyncio.gather`). Each call
crosses the handle seam (handles.py) as runner calls do: the serving process binds a
remote handle (gRPC to the dependency's own worker) for the dependency's component; in the
one-process debug mode the component runs in-process. Nothing falls back silently: a
served process without an address for a dependency refuses to start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubento._sdk.classes import APIConfig, require_config
from kubento._sdk.typed import from_wire, to_wire

if TYPE_CHECKING:
    from kubento._sdk.graph import ServiceRunner


class Dependency:
    """A class attribute made by `kubento.depends(Other)`."""

    def __init__(self, on: type) -> None:
        if not isinstance(on, type):
            raise TypeError(f"kubento.depends() takes a @kubento.service class, got {on!r}")
        self.on = on
        self.attr = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.attr = name

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        proxy = DependencyProxy(self)
        instance.__dict__[self.attr] = proxy  # the descriptor is non-data: next time, direct
        return proxy

    @property
    def runner(self) -> ServiceRunner:
        from kubento._sdk.graph import runner_of

        return runner_of(self.on)

    def api(self, name: str) -> APIConfig:
        config = require_config(self.on, "kubento.depends: ")
        api = config.apis.get(name)
        if api is None:
            raise AttributeError(
                f"service {config.name!r} has no api {name!r}; it has {sorted(config.apis)}"
            )
        return api

    def __repr__(self) -> str:
        return f"<kubento.depends({self.on.__name__})>"


def depends(on: type) -> Any:
    """Depend on another service class: ``embed = kubento.depends(Embed)``."""
    return Dependency(on)


class DependencyProxy:
    """`self.other`: each attribute is a method of the dependency, called through its handle."""

    def __init__(self, dependency: Dependency) -> None:
        self._dependency = dependency
        self.to_async = AsyncProxy(dependency)

    def __getattr__(self, name: str) -> Any:
        api = self._dependency.api(name)
        runner = self._dependency.runner

        def call(*args: Any, **kwargs: Any) -> Any:
            wire = to_wire(_bind(api, args, kwargs))
            return from_wire(runner.handle.call(api.name, wire), api.signature.returns)

        call.__name__ = name
        return call


class AsyncProxy:
    """`self.other.to_async`: the same methods, awaitable."""

    def __init__(self, dependency: Dependency) -> None:
        self._dependency = dependency

    def __getattr__(self, name: str) -> Any:
        api = self._dependency.api(name)
        runner = self._dependency.runner

        async def call(*args: Any, **kwargs: Any) -> Any:
            wire = to_wire(_bind(api, args, kwargs))
            result = await runner.handle.async_call(api.name, wire)
            return from_wire(result, api.signature.returns)

        call.__name__ = name
        return call


def _bind(api: APIConfig, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    try:
        return api.signature.bind(args, kwargs)
    except TypeError as exc:
        raise TypeError(f"api {api.name!r}: {exc}") from None
