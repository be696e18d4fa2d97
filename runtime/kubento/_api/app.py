"""The HTTP API server: a Starlette app built from a Service's APIs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from kubento import _tracing, contract
from kubento._api import oip, openapi, swagger
from kubento._api.lag import LoopLag
from kubento._api.probe_server import ProbeServer
from kubento._api.probes import Probes
from kubento._api.protocol import ARRIVED, PROBE_ANSWERS
from kubento._memory import OFFLOAD_BYTES, Trimmer, pin_mmap_threshold
from kubento._remote.client import RemoteHandle
from kubento._sdk.handles import Handle, bound, call_end, deadline, request_end, request_id
from kubento._sdk.service import API, Service
from kubento.exceptions import KubentoError, PayloadTooLarge, ServerBusy
from kubento.io import JSONBody

log = logging.getLogger("kubento.api")

ENV_APP = "KUBENTO_API_APP"
CLIENT_CLOSED = 499
"""Status counted for a request whose client went away mid-body (nginx's convention)."""
"""Settings handed from `kubento api --workers N` to each of its worker processes."""


class AppSettings(BaseModel):
    service: str
    working_dir: str
    runner_map: dict[str, str]
    max_request_bytes: int = contract.DEFAULT_MAX_REQUEST_BYTES
    request_timeout_s: float = contract.DEFAULT_REQUEST_TIMEOUT_S
    probes_at: tuple[str, int] | None = None


def app_from_env() -> Starlette:
    """App factory for uvicorn's worker processes."""
    from kubento._sdk.loader import load_service

    settings = AppSettings.model_validate_json(os.environ[ENV_APP])
    service = load_service(settings.service, settings.working_dir)
    return build_app(
        service,
        settings.runner_map,
        max_request_bytes=settings.max_request_bytes,
        request_timeout_s=settings.request_timeout_s,
        probes_at=settings.probes_at,
    )


def error_response(status: int, error: str, detail: Any = None, **headers: str) -> Response:
    return JSONBody(contract.error_content(error, detail), status_code=status, headers=headers)


Encode = Callable[[Any], Response]


class Codec(Protocol):
    """How one protocol carries an API's calls: the body becomes the function's argument
    (and how to answer with its result), failures become that protocol's error bodies."""

    def decode(self, api: API, body: bytes, headers: Headers) -> tuple[Any, Encode]: ...

    def error(
        self, status: int, message: str, detail: Any, headers: dict[str, str]
    ) -> Response: ...


class DescriptorCodec:
    """The service's own routes: the API's IO descriptors read the body and write the answer."""

    def decode(self, api: API, body: bytes, headers: Headers) -> tuple[Any, Encode]:
        accept = headers.get("accept", "")
        return api.input.from_http(body, headers), lambda result: api.output.to_http(result, accept)

    def error(self, status: int, message: str, detail: Any, headers: dict[str, str]) -> Response:
        return error_response(status, message, detail, **headers)


DESCRIPTORS = DescriptorCodec()


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "kubento_api_requests_total",
            "HTTP requests by API and status code.",
            ["api", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "kubento_api_request_duration_seconds",
            "HTTP request latency by API and status code.",
            ["api", "status"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.shed_latency = Histogram(
            "kubento_api_shed_duration_seconds",
            "From a request's first byte to its 429, 503 or 504: how fast excess is turned away.",
            ["api", "status"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.runner_call_callers = Histogram(
            "kubento_api_runner_call_callers",
            "Callers coalesced into one gRPC call to a batchable runner method.",
            ["runner", "method"],
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.loop_lag = Gauge(
            "kubento_api_event_loop_lag_seconds",
            "How late the event loop ran a timer due now: what a ready answer waits to leave.",
            registry=registry,
        )


class APIEndpoint:
    """One API as a plain ASGI app: Starlette's per-request function wrapper is skipped
    because `call_api` already turns every error into a response."""

    def __init__(
        self,
        api: API,
        metrics: Metrics,
        handles: dict[object, Handle],
        request_timeout_s: float,
        budget: BodyBudget,
        lag: LoopLag,
        codec: Codec = DESCRIPTORS,
    ) -> None:
        self.api = api
        self.lag = lag
        self.codec = codec
        self.handles = handles
        self.request_timeout_s = request_timeout_s
        self.budget = budget
        self.metrics = metrics
        self.by_status: dict[int, tuple[Any, Any, Any]] = {}
        """Per status code: its request counter, latency histogram and, for the statuses
        that turn excess away (`SHED`), its shed-time histogram (None for the others)."""
        self.tracing = _tracing.active()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        rid = request.headers.get("x-request-id", "")
        if not contract.valid_request_id(rid):
            rid = uuid.uuid4().hex  # absent, too long or unsafe: never forwarded or logged
        request_id.set(rid)
        bound(self.handles)
        arrived = scope.get(ARRIVED) or time.monotonic()
        timeout = self.request_timeout_s
        asked = request.headers.get(contract.FINISH_WITHIN_METADATA)
        if asked is not None:  # a caller's own deadline, when shorter than the server's
            within = contract.finish_within(asked)
            if within is not None and within < timeout:
                timeout = within
        request_end.set(arrived + timeout)
        deadline.set(arrived + timeout - self.lag.keep_back(timeout))
        if self.tracing is None:
            response = await call_api(self.api, request, self.budget, self.codec)
        else:
            handle = call_api(self.api, request, self.budget, self.codec)
            response = await self.tracing.http(request, rid, handle)
        response.headers["x-request-id"] = rid
        # A refused body may still be on its way: read and drop the rest (bounded), so the
        # client gets to read the 413 instead of a connection reset (nginx's lingering close).
        # A client waiting for `100 Continue` sends nothing more.
        expects = "100-continue" in request.headers.get("expect", "")
        if response.status_code == 413 and not expects and not await _drain(receive):
            response.headers["connection"] = "close"
        await response(scope, receive, send)
        took = time.monotonic() - arrived
        code = response.status_code
        series = self.by_status.get(code) or self._series(code)
        series[0].inc()
        series[1].observe(took)
        if series[2] is not None:
            series[2].observe(took)

    def _series(self, code: int) -> tuple[Any, Any, Any]:
        status, metrics, api = str(code), self.metrics, self.api.name
        shed = metrics.shed_latency.labels(api, status) if code in SHED else None
        series = (metrics.requests.labels(api, status), metrics.latency.labels(api, status), shed)
        self.by_status[code] = series
        return series


SHED = (429, 503, 504)
"""The statuses that turn excess away (`kubento_api_shed_duration_seconds`)."""
DRAIN_S = 2.0
DRAIN_BYTES = 256 * 1024 * 1024


async def _drain(receive: Receive) -> bool:
    """Discard what remains of a refused request body; False when it did not end in time."""
    dropped = 0
    try:
        async with asyncio.timeout(DRAIN_S):
            while dropped <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return False
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return True
    except TimeoutError:
        pass
    return False


class BodyBudget:
    """Caps request-body bytes one API process holds at once, so a burst of large bodies
    is refused at once (503) instead of growing memory without bound; the memory of large
    bodies given back is returned to the system soon after (`Trimmer`)."""

    def __init__(self, max_request_bytes: int) -> None:
        self.limit = max_request_bytes
        self.total = max_request_bytes * contract.BODIES_IN_FLIGHT
        self.held = 0
        self.trimmer = Trimmer()
        pin_mmap_threshold()  # large bodies go back to the system as they are freed

    def take(self, size: int) -> None:
        if self.held + size > self.total:
            raise ServerBusy(
                f"the server holds {self.held} bytes of request bodies, near its "
                f"{self.total}-byte budget: retry shortly",
                retry_after_s=1.0,
            )
        self.held += size

    def give_back(self, size: int) -> None:
        self.held -= size
        self.trimmer.after(size)

    async def read(self, request: Request) -> bytes:
        """The whole body, within the per-request limit and the budget; the caller gives
        back `len(body)` when done with it."""
        limit = self.limit
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise PayloadTooLarge(
                f"request body of {declared} bytes is over the {limit}-byte limit"
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.stream():
                self.take(len(chunk))
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
                chunks.append(chunk)
        except BaseException:
            self.give_back(size)
            raise
        return b"".join(chunks)


class APIApp(Starlette):
    """The app, with a shortcut for a service's own routes: a POST to an API's exact path
    goes straight to its endpoint, which answers every error itself, past Starlette's two
    error middlewares and the walk over every route (the docs, the V2 protocol...). Every
    other request takes Starlette's way."""

    endpoints: dict[str, APIEndpoint]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            endpoint = self.endpoints.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self
                await endpoint(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def require_targets(service: Service, runner_map: Mapping[str, str]) -> None:
    """Every runner of the service needs a gRPC target in the runner map."""
    missing = sorted(set(service.runners) - set(runner_map))
    if missing:
        raise ValueError(
            f"no gRPC target for runners {missing} in {contract.ENV_RUNNER_MAP}; "
            f"it has {sorted(runner_map)}"
        )


def build_app(
    service: Service,
    runner_map: Mapping[str, str],
    *,
    max_request_bytes: int = contract.DEFAULT_MAX_REQUEST_BYTES,
    request_timeout_s: float = contract.DEFAULT_REQUEST_TIMEOUT_S,
    probes_at: tuple[str, int] | None = None,
) -> Starlette:
    """Build the ASGI app; each runner gets a gRPC client's handle when the app starts.

    With `probes_at` (host, port) the probes are also served there by a process of their
    own (`kubento._api.probe_server`), as pods are probed."""
    require_targets(service, runner_map)
    _tracing.start(service.name)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    clients = {name: runner.client(runner_map[name]) for name, runner in service.runners.items()}
    # The limits each runner applies, so calls are sized (and never-fits refused) here.
    overrides = {name: contract.batching_overrides_for(name, os.environ) for name in clients}
    handles: dict[object, Handle] = {}  # filled when the app starts, on its event loop
    budget = BodyBudget(max_request_bytes)
    lag = LoopLag(metrics.loop_lag)

    probes = Probes(clients)

    def probe_route(path: str) -> Callable[[Request], Awaitable[Response]]:
        answer = probes.answers[path.encode()]

        async def route(request: Request) -> Response:
            status, body = answer()
            return Response(body, status_code=status, media_type="application/json")

        return route

    async def ready() -> bool:
        return probes.ready

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        lag.start()
        probes.start()
        probe_server = None
        if probes_at is not None:
            probe_server = ProbeServer(*probes_at, probes.answers)
            probe_server.start()
        for name, runner in service.runners.items():
            observe = _observer(metrics.runner_call_callers, name)
            handles[runner] = RemoteHandle(clients[name], loop, runner, observe, overrides[name])
        yield
        if probe_server is not None:
            probe_server.stop()
        lag.stop()
        await probes.stop()
        for client in clients.values():
            await client.close()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error_response(
            exc.status_code,
            exc.detail or "error",
            {"path": request.url.path},
            **(exc.headers or {}),  # a 405's Allow
        )

    document = openapi.document(service)

    async def openapi_document(request: Request) -> Response:
        return JSONBody(document)

    def endpoint(api: API, codec: Codec = DESCRIPTORS) -> APIEndpoint:
        return APIEndpoint(api, metrics, handles, request_timeout_s, budget, lag, codec)

    endpoints = {api.route: endpoint(api) for api in service.apis.values()}
    routes: list[BaseRoute] = [
        Route(path, api_endpoint, methods=["POST"]) for path, api_endpoint in endpoints.items()
    ]
    routes += [
        Route(contract.LIVENESS_PATH, probe_route(contract.LIVENESS_PATH), methods=["GET"]),
        Route(contract.READINESS_PATH, probe_route(contract.READINESS_PATH), methods=["GET"]),
        Route(contract.METRICS_PATH, metrics_endpoint, methods=["GET"]),
        Route(contract.OPENAPI_PATH, openapi_document, methods=["GET"]),
        *swagger.routes(service.name),
        *oip.routes(service, endpoint, ready),
    ]
    app = APIApp(routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error})
    app.endpoints = endpoints
    setattr(app, PROBE_ANSWERS, probes.answers)
    # `POST /classify/` must not redirect to an absolute URL built from the Host header.
    app.router.redirect_slashes = False
    return app


def _observer(histogram: Histogram, runner: str) -> Callable[[str, int], None]:
    def observe(method: str, callers: int) -> None:
        histogram.labels(runner, method).observe(callers)

    return observe


async def call_api(
    api: API, request: Request, budget: BodyBudget, codec: Codec = DESCRIPTORS
) -> Response:
    """Run `api` on a request as `codec` carries it; every failure becomes its error body."""
    body = b""
    try:
        body = await budget.read(request)
        if len(body) > OFFLOAD_BYTES:  # keep the loop (and the probes) responsive
            value, encode = await run_in_threadpool(codec.decode, api, body, request.headers)
        else:
            value, encode = codec.decode(api, body, request.headers)
        ends = call_end()
        if api.is_async:
            async with asyncio.timeout(None if ends is None else ends - time.monotonic()):
                result = await api.func(value)
        else:
            result = await run_in_threadpool(api.func, value)
        return encode(result)
    except TimeoutError:
        message = f"api {api.name!r} did not finish within the request's time"
        return codec.error(504, message, None, {})
    except ClientDisconnect:
        # Nobody reads this answer; counted under its own status, never as a 500.
        log.debug("api=%s request_id=%s event=client_disconnected", api.name, request_id.get())
        return codec.error(CLIENT_CLOSED, "client closed the request", None, {})
    except KubentoError as exc:
        detail = exc.detail
        if exc.status_code == 500:  # 503s are load shedding, expected and counted in metrics
            log.warning(
                "api=%s request_id=%s runner_call=%s error=%r",
                api.name,
                request_id.get(),
                exc.runner_call or "-",
                exc.message,
            )
            # The runner logged the same id: the caller can quote it.
            detail = detail if detail is not None else {"request_id": request_id.get()}
        headers = {}
        if exc.retry_after_s is not None:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
        return codec.error(exc.status_code, exc.message, detail, headers)
    except Exception as exc:
        log.exception("api=%s request_id=%s unhandled error", api.name, request_id.get())
        message = f"api {api.name!r} failed: {type(exc).__name__}"
        return codec.error(500, message, {"request_id": request_id.get()}, {})
    finally:
        budget.give_back(len(body))
