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
    {
        "/",  # redirects to the docs page
        contract.LIVENESS_PATH,
        contract.READINESS_PATH,
        contract.METRICS_PATH,
        contract.DOCS_PATH,
        contract.OPENAPI_PATH,
        contract.OIP_PREFIX,
    }
)
RESERVED_PREFIXES = (contract.DOCS_PATH + "/", contract.OIP_PREFIX + "/")

# Characters a route cannot hold, each with why: what a URL path cannot carry as written,
# and Starlette's path-parameter braces (APIs take their input from the body only).
_NOT_IN_A_PATH = {
    "?": "'?' starts the query string",
    "#": "'#' starts the fragment",
    "{": "'{' and '}' mark path parameters, which APIs do not take",
    "}": "'{' and '}' mark path parameters, which APIs do not take",
}
_SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f-\x9f]")


def normalize_route(route: str) -> str:
    """`predict` -> `/predict` (BentoML 1.x style); refuse only what cannot be a URL path."""
    if not isinstance(route, str) or not route:
        raise ValueError(f"route {route!r} must be a non-empty path such as 'predict' or '/v1/x'")
    bad = _SPACE_OR_CONTROL.search(route)
    if bad:
        raise ValueError(
            f"route {route!r} cannot be a URL path: it holds {bad.group()!r} "
            f"(no spaces or control characters)"
        )
    for char, why in _NOT_IN_A_PATH.items():
        if char in route:
            raise ValueError(f"route {route!r} cannot be a URL path: {why}")
    return route if route.startswith("/") else "/" + route


def reserved(route: str) -> bool:
    """Whether the API server answers `route` itself (probes, metrics, docs, V2 protocol)."""
    return route in RESERVED_ROUTES or route.startswith(RESERVED_PREFIXES)


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
            if not isinstance(input, IODescriptor) or not isinstance(output, IODescriptor):
                raise TypeError(
                    f"api {api_name!r}: input and output must be kubento.io descriptors"
                )
            try:
                api_route = normalize_route(api_name if route is None else route)
            except ValueError as exc:
                raise ValueError(f"api {api_name!r}: {exc}") from None
            if reserved(api_route):
                raise ValueError(
                    f"api {api_name!r}: route {api_route!r} is reserved: the API server answers "
                    f"it itself ({', '.join(sorted(RESERVED_ROUTES))} and everything under "
                    f"{' and '.join(RESERVED_PREFIXES)}); choose another route"
                )
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
