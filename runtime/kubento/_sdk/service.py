"""`Service`: a named set of runners and the HTTP APIs that call them."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from kubento import contract
from kubento._sdk.runner import Runner
from kubento.contract import check_distinct, check_name
from kubento.io import IODescriptor

F = TypeVar("F", bound=Callable[..., Any])

RESERVED_ROUTES = frozenset(
    {contract.LIVENESS_PATH, contract.READINESS_PATH, contract.METRICS_PATH}
)
ROUTE_PATTERN = re.compile(r"^/[A-Za-z0-9_\-./]*$")


@dataclass(frozen=True)
class API:
    """One HTTP endpoint: POST `route`, parsed by `input`, answered through `output`."""

    name: str
    func: Callable[..., Any]
    input: IODescriptor
    output: IODescriptor
    route: str
    is_async: bool


class Service:
    """``svc = kubento.Service("iris", runners=[runner])``, then ``@svc.api(...)``."""

    def __init__(self, name: str, runners: Sequence[Runner] | None = None) -> None:
        self.name = check_name("service", name)
        self.runners: dict[str, Runner] = {}
        for runner in runners or []:
            if not isinstance(runner, Runner):
                raise TypeError(f"service {name!r}: runners must be kubento.Runner, got {runner!r}")
            if runner.name in self.runners:
                raise ValueError(
                    f"service {name!r} has two runners named {runner.name!r}: "
                    f"give each Runner a unique name=..."
                )
            self.runners[runner.name] = runner
        try:
            check_distinct("runner", self.runners)
        except ValueError as exc:
            raise ValueError(f"service {name!r}: {exc}") from None
        self.apis: dict[str, API] = {}

    def api(
        self,
        fn: F | None = None,
        *,
        input: IODescriptor,
        output: IODescriptor,
        route: str | None = None,
        name: str | None = None,
    ) -> Any:
        """Declare an HTTP API: ``@svc.api(input=NumpyNdarray(), output=NumpyNdarray())``."""

        def decorate(func: F) -> F:
            api_name = name or func.__name__
            api_route = route or f"/{api_name}"
            if not isinstance(input, IODescriptor) or not isinstance(output, IODescriptor):
                raise TypeError(
                    f"api {api_name!r}: input and output must be kubento.io descriptors"
                )
            if not ROUTE_PATTERN.match(api_route):
                raise ValueError(f"api {api_name!r}: route {api_route!r} must be a path like /name")
            if api_route in RESERVED_ROUTES:
                raise ValueError(f"api {api_name!r}: route {api_route!r} is reserved")
            if api_name in self.apis:
                raise ValueError(f"service {self.name!r} already has an api named {api_name!r}")
            if any(existing.route == api_route for existing in self.apis.values()):
                raise ValueError(f"service {self.name!r} already has an api at {api_route!r}")
            self.apis[api_name] = API(
                api_name, func, input, output, api_route, inspect.iscoroutinefunction(func)
            )
            return func

        return decorate(fn) if fn is not None else decorate

    def init_local(self) -> None:
        """Run every runner in this process (tests, notebooks)."""
        for runner in self.runners.values():
            runner.init_local()

    def __repr__(self) -> str:
        return f"<Service {self.name} runners={list(self.runners)} apis={list(self.apis)}>"
