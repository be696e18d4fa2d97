"""The service graph: `@kubento.service` classes as components of the one machinery.

`build_graph(Entry)` walks `kubento.depends()` from the entry class, rejects cycles
(naming them) and names that collide as Kubernetes objects, and lists every service
once (a diamond's shared service is one node, so one instance).

Each non-entry service becomes a `ServiceRunner`: a `Runner` whose runnable wraps an
instance of the class, one runnable method per `@kubento.api` (batchable ones behind the
worker's adaptive `Dispatcher`). So a dependency service is served by the runner worker
(gRPC, codec, admission control, health, metrics) and called through `RemoteHandle`
(coalescing), with no second server. The entry class becomes a `GraphService`: a
`Service` whose APIs are its typed methods and whose runners are its direct dependencies
and its own runners, so the API server binds them per request like any runner.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import ValidationError

from kubento import contract
from kubento._sdk.classes import APIConfig, ServiceConfig, require_config
from kubento._sdk.depends import Dependency
from kubento._sdk.handles import (
    Handle,
    LocalHandle,
    Unbound,
    bound,
    current_handles,
    deadline,
    request_end,
)
from kubento._sdk.runnable import Runnable
from kubento._sdk.runner import Runner
from kubento._sdk.service import Service
from kubento._sdk.typed import TypedInput, TypedOutput, from_wire, to_wire
from kubento.batching import BadBatch, Overloaded, Rejected
from kubento.exceptions import GatewayTimeout, RunnerOverloaded, RunnerUnavailable

SERVICE_THREADS = 8
"""Threads per service process for sync API methods (batches are serialised anyway by
the dispatcher's max_concurrency; non-batchable calls may wait on their own dependencies)."""


class GraphError(ValueError):
    """The graph of service classes cannot be served (a cycle, a name collision)."""


def dependencies_of(cls: type) -> dict[str, type]:
    """The service classes a class `kubento.depends()` on (not services outside the graph,
    which are called over HTTP), by attribute name."""
    found: dict[str, type] = {}
    for klass in reversed(cls.__mro__):
        for attr, value in vars(klass).items():
            if isinstance(value, Dependency) and value.on is not None:
                found[attr] = value.on
    return found


def runners_of(cls: type) -> list[Runner]:
    """The `kubento.Runner` class attributes of a service class."""
    found: dict[str, Runner] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Runner):
                found[value.name] = value
    return list(found.values())


@dataclass(frozen=True)
class Graph:
    """Every service reachable from `entry`, dependencies before their dependents."""

    entry: ServiceConfig
    services: tuple[ServiceConfig, ...]

    @property
    def dependencies(self) -> tuple[ServiceConfig, ...]:
        """The non-entry services: each one a component with its own worker."""
        return tuple(config for config in self.services if config is not self.entry)

    def runners(self) -> list[Runner]:
        """Every user runner any service of the graph declares."""
        seen: dict[str, Runner] = {}
        for config in self.services:
            for runner in runners_of(config.cls):
                seen.setdefault(runner.name, runner)
        return list(seen.values())

    def find(self, name: str) -> ServiceConfig:
        for config in self.dependencies:
            if name in (config.name, contract.service_label(config.name)):
                return config
        raise ValueError(
            f"service {self.entry.name!r} has no dependency service {name!r}; "
            f"it has {[c.name for c in self.dependencies]}"
        )


def build_graph(entry: type) -> Graph:
    """Walk `depends()` from `entry`; GraphError on a cycle or colliding names."""
    entry_config = require_config(entry)
    order: list[ServiceConfig] = []
    done: set[type] = set()

    def visit(cls: type, path: tuple[type, ...]) -> None:
        if cls in path:
            cycle = [*path[path.index(cls) :], cls]
            names = " -> ".join(require_config(c).name for c in cycle)
            raise GraphError(f"dependency cycle: {names}; a service cannot depend on itself")
        if cls in done:
            return
        config = require_config(
            cls, f"{require_config(path[-1]).name}: depends on " if path else ""
        )
        for dependency in dependencies_of(cls).values():
            visit(dependency, (*path, cls))
        done.add(cls)
        order.append(config)

    visit(entry, ())
    by_name: dict[str, ServiceConfig] = {}
    for config in order:
        other = by_name.setdefault(config.name, config)
        if other is not config:
            raise GraphError(
                f"two service classes are named {config.name!r} ({other.cls.__qualname__} and "
                f"{config.cls.__qualname__}); give one @kubento.service(name=...)"
            )
    graph = Graph(entry_config, tuple(order))
    components = [(c.name, contract.service_label(c.name)) for c in graph.dependencies]
    components += [(runner.name, contract.dns_label(runner.name)) for runner in graph.runners()]
    seen: dict[str, str] = {"api": "the API server"}
    for name, label in components:
        taken = seen.setdefault(label, name)
        if taken != name:
            first, second = sorted((taken, name))
            raise GraphError(
                f"service {entry_config.name!r}: {first!r} and {second!r} both become "
                f"{label!r} in Kubernetes object names; rename one"
            )
    return graph


class ServiceRunnable(Runnable):
    """Base of the runnable made for each service class: one instance of the class."""

    service_config: ClassVar[ServiceConfig]

    def __init__(self, remote: bool = True) -> None:
        config = self.service_config
        self.targets: dict[Runner, str] = {}
        if remote:
            raw = os.environ.get(contract.ENV_RUNNER_MAP, "")
            runner_map = contract.decode_runner_map(raw) if raw else {}
            require_addresses(config, runner_map)
            self.targets = {runner: runner_map[runner.name] for runner in direct_components(config)}
        self.handles: dict[object, Handle] = {}
        self.executor = ThreadPoolExecutor(SERVICE_THREADS, thread_name_prefix=config.name)
        self.instance = config.cls()

    def _bind(self) -> contextvars.Token[Any] | None:
        if not self.targets:
            return None
        if not self.handles:  # first call, on the serving loop
            from kubento._remote.client import RemoteHandle

            loop = asyncio.get_running_loop()
            for runner, target in self.targets.items():
                overrides = contract.batching_overrides_for(runner.name, os.environ)
                client = runner.client(target)
                self.handles[runner] = RemoteHandle(client, loop, runner, overrides=overrides)
        return bound(self.handles)

    async def call_api(self, api: APIConfig, args: tuple[Any, ...]) -> Any:
        name = self.service_config.name
        try:
            values = [
                from_wire(value, param.hint)
                for value, param in zip(args, api.signature.params, strict=True)
            ]
        except (ValidationError, ValueError) as exc:
            raise BadBatch(f"service {name!r} api {api.name!r}: {exc}") from None
        token = self._bind()
        try:
            method = getattr(self.instance, api.name)
            if api.is_async:
                result = await method(*values)
            else:
                context = contextvars.copy_context()
                result = await asyncio.get_running_loop().run_in_executor(
                    self.executor, context.run, functools.partial(method, *values)
                )
            return to_wire(result)
        except RunnerOverloaded as exc:
            raise Overloaded(exc.message, retry_after_s=exc.retry_after_s or 1.0) from None
        except (RunnerUnavailable, GatewayTimeout) as exc:
            # Shed, as the dispatcher sheds: the caller sees this service unavailable,
            # with the dependency that was named in the message.
            raise Rejected(exc.message, retry_after_s=exc.retry_after_s or 1.0) from None
        finally:
            if token is not None:
                current_handles.reset(token)


def _runnable_class(config: ServiceConfig) -> type[ServiceRunnable]:
    namespace: dict[str, Any] = {"service_config": config, "__module__": __name__}
    for api in config.apis.values():
        namespace[api.name] = _method(api)
    return type(f"{config.cls.__name__}Runnable", (ServiceRunnable,), namespace)


def _method(api: APIConfig) -> Any:
    async def method(self: ServiceRunnable, *args: Any) -> Any:
        return await self.call_api(api, args)

    method.__name__ = api.name
    return Runnable.method(batchable=api.batchable, batch_dim=api.batch_dim)(method)


class ServiceRunner(Runner):
    """A dependency service as a runner component: named by its DNS label."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        super().__init__(
            _runnable_class(config),
            name=contract.service_label(config.name),
            runnable_init_params={"remote": True},
            method_configs={
                api.name: {
                    "max_batch_size": api.max_batch_size,
                    "max_latency_ms": api.max_latency_ms,
                }
                for api in config.apis.values()
                if api.batchable
            },
        )
        self._local = Unbound(f"service {config.name!r}")

    def init_local(self) -> None:
        runnable_class: Any = self.runnable_class  # a ServiceRunnable subclass
        self._local = LocalHandle(runnable_class(remote=False))

    def client(self, target: str) -> Any:
        from kubento._remote.services import ServiceClient

        return ServiceClient(
            self.name, target, service=self.config.name, timeout_s=self.config.timeout_s
        )

    def __repr__(self) -> str:
        return f"<ServiceRunner {self.config.name}>"


_RUNNERS: dict[type, ServiceRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def runner_of(cls: type) -> ServiceRunner:
    """The one component of a service class in this process (a diamond shares it)."""
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(cls)
        if runner is None:
            runner = _RUNNERS[cls] = ServiceRunner(require_config(cls))
        return runner


def direct_components(config: ServiceConfig) -> list[Runner]:
    """What one service calls: its dependencies' components, then its own runners."""
    deps: dict[type, Runner] = {}
    for dependency in dependencies_of(config.cls).values():
        deps.setdefault(dependency, runner_of(dependency))
    return [*deps.values(), *runners_of(config.cls)]


def require_addresses(config: ServiceConfig, runner_map: dict[str, str]) -> None:
    """A served service needs an address for each dependency and runner; never in-process."""
    missing = [r for r in direct_components(config) if r.name not in runner_map]
    if missing:
        what = [r.config.name if isinstance(r, ServiceRunner) else r.name for r in missing]
        raise ValueError(
            f"service {config.name!r} depends on {what}, which have no address in "
            f"{contract.ENV_RUNNER_MAP} (keys {sorted(r.name for r in missing)}; it has "
            f"{sorted(runner_map)}); a dependency is never run in-process when served: "
            f"start it with `kubento serve` or deploy it"
        )


class GraphService(Service):
    """The entry service class as the API server's `Service`."""

    def __init__(self, entry: type, *, local: bool = False) -> None:
        self.graph = build_graph(entry)
        self.entry = self.graph.entry
        runners = [] if local else direct_components(self.entry)
        super().__init__(contract.service_label(self.entry.name), runners=runners)
        self._instance: Any = None
        self._lock = threading.Lock()
        for api in self.entry.apis.values():
            self.api(
                self._endpoint(api),
                input=TypedInput(api.name, api.signature),
                output=TypedOutput(api.signature.returns),
                route=api.route,
                name=api.name,
            )

    def instance(self) -> Any:
        """The entry class's instance (created once: its __init__ loads models)."""
        with self._lock:
            if self._instance is None:
                self._instance = self.entry.cls()
            return self._instance

    def _endpoint(self, api: APIConfig) -> Any:
        timeout = self.entry.timeout_s

        async def endpoint(values: dict[str, Any]) -> Any:
            # The service's traffic timeout, within what the server gives any request.
            ends = time.monotonic() + timeout
            for var in (deadline, request_end):
                server_end = var.get()
                var.set(ends if server_end is None else min(ends, server_end))
            instance = self._instance or await asyncio.to_thread(self.instance)
            method = getattr(instance, api.name)
            if api.is_async:
                return await method(**values)
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(
                None, context.run, functools.partial(method, **values)
            )

        endpoint.__name__ = api.name
        return endpoint

    def init_local(self) -> None:
        """The whole graph in this process (debugging): one instance per service class."""
        for config in self.graph.dependencies:
            runner_of(config.cls).init_local()
        for runner in self.graph.runners():
            runner.init_local()

    def components(self) -> Iterator[tuple[ServiceConfig, ServiceRunner]]:
        for config in self.graph.dependencies:
            yield config, runner_of(config.cls)

    def __repr__(self) -> str:
        names = [c.name for c in self.graph.services]
        return f"<GraphService {self.entry.name} services={names} apis={list(self.apis)}>"
