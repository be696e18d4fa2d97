"""The HTTP API server: a Starlette app built from a Service's APIs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
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

from kubento import contract
from kubento._api import oip, openapi, swagger
from kubento._remote.client import RemoteHandle, RunnerClient
from kubento._sdk.handles import Handle, bound, request_id
from kubento._sdk.service import API, Service
from kubento.exceptions import KubentoError, PayloadTooLarge
from kubento.io import JSONBody

log = logging.getLogger("kubento.api")
_REQUEST_ID = re.compile(contract.REQUEST_ID_PATTERN)

ENV_APP = "KUBENTO_API_APP"
CLIENT_CLOSED = 499
"""Status counted for a request whose client went away mid-body (nginx's convention)."""
"""Settings handed from `kubento api --workers N` to each of its worker processes."""


class AppSettings(BaseModel):
    service: str
    working_dir: str
    runner_map: dict[str, str]
    max_request_bytes: int = contract.DEFAULT_MAX_REQUEST_BYTES


def app_from_env() -> Starlette:
    """App factory for uvicorn's worker processes."""
    from kubento._sdk.loader import load_service

    settings = AppSettings.model_validate_json(os.environ[ENV_APP])
    service = load_service(settings.service, settings.working_dir)
    return build_app(service, settings.runner_map, max_request_bytes=settings.max_request_bytes)


def error_response(status: int, error: str, detail: Any = None, **headers: str) -> Response:
    return JSONBody({"error": error, "detail": detail}, status_code=status, headers=headers)


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
            "HTTP request latency by API.",
            ["api"],
            registry=registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.runner_call_callers = Histogram(
            "kubento_api_runner_call_callers",
            "Callers coalesced into one gRPC call to a batchable runner method.",
            ["runner", "method"],
            registry=registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128),
        )


class APIEndpoint:
    """One API as a plain ASGI app: Starlette's per-request function wrapper is skipped
    because `call_api` already turns every error into a response."""

    def __init__(
        self,
        api: API,
        max_request_bytes: int,
        metrics: Metrics,
        handles: dict[object, Handle],
        codec: Codec = DESCRIPTORS,
    ) -> None:
        self.api = api
        self.codec = codec
        self.handles = handles
        self.max_request_bytes = max_request_bytes
        self.latency = metrics.latency.labels(api.name)
        self.requests = metrics.requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        given = request.headers.get(contract.REQUEST_ID_METADATA)
        rid = given if given and _REQUEST_ID.match(given) else uuid.uuid4().hex
        request_id.set(rid)
        bound(self.handles)
        started = time.perf_counter()
        if given and rid != given:
            response = self.codec.error(
                400,
                f"x-request-id must be 1 to 128 visible ASCII characters, no spaces; got {given!r}",
                {"pattern": contract.REQUEST_ID_PATTERN},
                {},
            )
        else:
            response = await call_api(self.api, request, self.max_request_bytes, self.codec)
        response.headers["x-request-id"] = rid
        await response(scope, receive, send)
        self.requests.labels(self.api.name, str(response.status_code)).inc()
        self.latency.observe(time.perf_counter() - started)


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body of {declared} bytes is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


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
) -> Starlette:
    """Build the ASGI app; runners are bound to gRPC clients when the app starts."""
    require_targets(service, runner_map)
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    clients = {name: RunnerClient(name, runner_map[name]) for name in service.runners}
    handles: dict[object, Handle] = {}  # filled when the app starts, on its event loop

    async def livez(request: Request) -> Response:
        return JSONBody({"status": "alive"})

    async def not_ready() -> list[str]:
        names = list(clients)
        results = await asyncio.gather(*(clients[name].healthy() for name in names))
        return [name for name, ok in zip(names, results, strict=True) if not ok]

    async def ready() -> bool:
        return not await not_ready()

    async def readyz(request: Request) -> Response:
        names = list(clients)
        not_ready_runners = await not_ready()
        if not_ready_runners:
            return error_response(503, "runners not ready", {"runners": not_ready_runners})
        return JSONBody({"status": "ready", "runners": names})

    async def metrics_endpoint(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = asyncio.get_running_loop()
        for name, runner in service.runners.items():
            observe = _observer(metrics.runner_call_callers, name)
            handles[runner] = RemoteHandle(clients[name], loop, runner, observe)
        yield
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
        return APIEndpoint(api, max_request_bytes, metrics, handles, codec)

    routes: list[BaseRoute] = [
        Route(api.route, endpoint(api), methods=["POST"]) for api in service.apis.values()
    ]
    routes += [
        Route(contract.LIVENESS_PATH, livez, methods=["GET"]),
        Route(contract.READINESS_PATH, readyz, methods=["GET"]),
        Route(contract.METRICS_PATH, metrics_endpoint, methods=["GET"]),
        Route(contract.OPENAPI_PATH, openapi_document, methods=["GET"]),
        *swagger.routes(service.name),
        *oip.routes(service, endpoint, ready),
    ]
    return Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: http_error}
    )


def _observer(histogram: Histogram, runner: str) -> Callable[[str, int], None]:
    def observe(method: str, callers: int) -> None:
        histogram.labels(runner, method).observe(callers)

    return observe


async def call_api(
    api: API, request: Request, max_request_bytes: int, codec: Codec = DESCRIPTORS
) -> Response:
    try:
        body = await read_body(request, max_request_bytes)
        value, encode = codec.decode(api, body, request.headers)
        if api.is_async:
            result = await api.func(value)
        else:
            result = await run_in_threadpool(api.func, value)
        return encode(result)
    except ClientDisconnect:
        # Nobody reads this answer; counted under its own status, never as a 500.
        log.debug("api=%s request_id=%s event=client_disconnected", api.name, request_id.get())
        return codec.error(CLIENT_CLOSED, "client closed the request", None, {})
    except KubentoError as exc:
        detail = exc.detail
        if exc.status_code == 500:  # 503s are load shedding, expected and counted in metrics
            log.warning("api=%s request_id=%s error=%r", api.name, request_id.get(), exc.message)
            # The runner logged the same id: the caller can quote it.
            detail = detail if detail is not None else {"request_id": request_id.get()}
        headers = {}
        if exc.retry_after_s is not None:
            headers["retry-after"] = str(max(1, math.ceil(exc.retry_after_s)))
        return codec.error(exc.status_code, exc.message, detail, headers)
    except Exception as exc:
        log.exception("api=%s request_id=%s unhandled error", api.name, request_id.get())
        return codec.error(
            500,
            f"api {api.name!r} failed: {type(exc).__name__}",
            {"request_id": request_id.get()},
            {},
        )
