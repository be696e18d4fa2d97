"""`kubento.depends(Other)`: a service class's attribute that reaches another service.

The attribute behaves like an instance of `Other`: `self.other.method(x)` calls it and
waits; `await self.other.to_async.method(x)` is awaitable (for `asyncio.gather`). Each call
crosses the handle seam (handles.py) as runner calls do: the serving process binds a
remote handle (gRPC to the dependency's own worker) for the dependency's component; in the
one-process debug mode the component runs in-process. Nothing falls back silently: a
served process without an address for a dependency refuses to start. A service outside
the graph (`url=`, `deployment=`) is called over its HTTP API, with keyword arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kubento import contract
from kubento._sdk.classes import APIConfig, require_config
from kubento._sdk.typed import from_wire, to_wire

if TYPE_CHECKING:
    from kubento._remote.http import HTTPService
    from kubento._sdk.graph import ServiceRunner


class Dependency:
    """A class attribute made by `kubento.depends(...)`: a service class of this graph
    (`on`), or a Kubento service elsewhere (`url`, or `deployment` in this namespace)."""

    def __init__(
        self, on: type | None = None, *, url: str | None = None, deployment: str | None = None
    ) -> None:
        if sum(value is not None for value in (on, url, deployment)) != 1:
            raise TypeError(
                "kubento.depends() takes one of: a @kubento.service class, url=..., or "
                "deployment=..."
            )
        if on is not None and not isinstance(on, type):
            raise TypeError(f"kubento.depends() takes a @kubento.service class, got {on!r}")
        self.on = on
        self.url = contract.deployment_url(deployment) if deployment is not None else url
        self.attr = "?"
        self._external: Any = None

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

        assert self.on is not None
        return runner_of(self.on)

    @property
    def external(self) -> HTTPService:
        if self._external is None:
            from kubento._remote.http import HTTPService

            assert self.url is not None
            self._external = HTTPService(self.url)
        return self._external  # type: ignore[no-any-return]

    def api(self, name: str) -> APIConfig:
        config = require_config(self.on, "kubento.depends: ")
        api = config.apis.get(name)
        if api is None:
            raise AttributeError(
                f"service {config.name!r} has no api {name!r}; it has {sorted(config.apis)}"
            )
        return api

    def __repr__(self) -> str:
        target = self.on.__name__ if self.on is not None else f"url={self.url!r}"
        return f"<kubento.depends({target})>"


def depends(
    on: type | None = None, *, url: str | None = None, deployment: str | None = None
) -> Any:
    """Depend on another service: ``embed = kubento.depends(Embed)``; a Kubento service
    elsewhere with ``depends(url="http://...")`` or ``depends(deployment="name")``."""
    return Dependency(on, url=url, deployment=deployment)


def _external_kwargs(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if args:
        raise TypeError(
            f"api {name!r} of a service outside this graph takes keyword arguments (its "
            f"parameter names), e.g. .{name}(x=...)"
        )
    return kwargs


class DependencyProxy:
    """`self.other`: each attribute is a method of the dependency, called through its handle."""

    def __init__(self, dependency: Dependency) -> None:
        self._dependency = dependency
        self.to_async = AsyncProxy(dependency)

    def __getattr__(self, name: str) -> Any:
        if self._dependency.on is None:
            external = self._dependency.external

            def call_external(*args: Any, **kwargs: Any) -> Any:
                return external.call(name, _external_kwargs(name, args, kwargs))

            return call_external
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
        if self._dependency.on is None:
            external = self._dependency.external

            async def call_external(*args: Any, **kwargs: Any) -> Any:
                return await external.async_call(name, _external_kwargs(name, args, kwargs))

            return call_external
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
