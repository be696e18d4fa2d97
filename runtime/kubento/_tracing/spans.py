"""The spans of a request, and how its W3C trace context crosses processes.

Imported only when tracing is on (see `kubento._tracing`); it needs `kubento[tracing]`.

- API server: a SERVER span per HTTP request, the child of the caller's `traceparent` when
  that header is valid (an invalid one is ignored: that caller alone starts a new trace,
  and the span says so); then a CLIENT span per runner or dependency-service call.
- The call's trace context travels in the gRPC payload (`CallRequest.callers`), one entry
  per caller, because the API server coalesces several callers' rows into one gRPC call:
  shared metadata would mix their contexts, and one caller's header could break the
  others' call.
- Runner or service worker: a SERVER span per gRPC call, the child of its caller's span
  when it carries one caller, otherwise a new trace linked to every caller (OpenTelemetry's
  way for batches); a "queue wait" span per call, from admission until its first rows
  run; a "batch" span per model call, linked to every call whose rows it holds (and the
  child of the call when it holds one); and a "model" span inside it. The model span is
  current while the model runs, so a dependency service called from service code continues
  the trace.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from kubento import contract
from kubento._tracing import Carrier

if TYPE_CHECKING:
    import grpc
    from starlette.requests import Request as HTTPRequest
    from starlette.responses import Response

    from kubento._proto import runner_pb2 as pb
    from kubento.batching.policy import Batch, Request

T = TypeVar("T")
W3C = TraceContextTextMapPropagator()
RPC_SERVICE = "kubento.runner.v1.Runner"


def parse(traceparent: Sequence[str], tracestate: Sequence[str] = ()) -> trace.SpanContext | None:
    """The remote span context of a valid W3C `traceparent` (exactly one header); else None."""
    if len(traceparent) != 1:
        return None
    carrier = {"traceparent": list(traceparent), "tracestate": list(tracestate)}
    found = trace.get_current_span(W3C.extract(carrier)).get_span_context()
    return found if found.is_valid else None


def carrier_of(span: trace.Span) -> Carrier:
    headers: dict[str, str] = {}
    W3C.inject(headers, trace.set_span_in_context(span))
    return headers.get("traceparent", ""), headers.get("tracestate", "")


def _in(span_context: trace.SpanContext | None) -> otel_context.Context:
    """The context whose current span is `span_context` (a root's when None)."""
    if span_context is None:
        return otel_context.Context()
    return trace.set_span_in_context(trace.NonRecordingSpan(span_context))


class Tracing:
    """One process's tracer and the spans Kubento makes with it."""

    def __init__(self, provider: trace.TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("kubento")

    @classmethod
    def from_environment(cls, component: str) -> Tracing:
        """A provider exporting over OTLP/gRPC in batches, configured by `OTEL_*` variables;
        made the global one, so spans the user's own code makes join the same traces."""
        attributes: dict[str, str] = {"kubento.component": component}
        if not os.environ.get("OTEL_SERVICE_NAME"):
            attributes["service.name"] = component
        deployment = os.environ.get(contract.ENV_DEPLOYMENT_NAME)
        if deployment:
            attributes["service.namespace"] = deployment
        provider = TracerProvider(resource=Resource.create(attributes))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        return cls(provider)

    # API server

    async def http(
        self, request: HTTPRequest, request_id: str, handle: Awaitable[Response]
    ) -> Response:
        """Run `handle` (the request's handling) in a SERVER span continuing the caller's trace."""
        headers = request.headers
        sent = headers.getlist("traceparent")
        parent = parse(sent, headers.getlist("tracestate"))
        route = getattr(request.scope.get("route"), "path", request.url.path)
        attributes: dict[str, Any] = {
            "http.request.method": request.method,
            "http.route": route,
            "url.path": request.url.path,
            "kubento.request_id": request_id,
        }
        if sent and parent is None:
            attributes["kubento.traceparent_invalid"] = True  # ignored: a new trace starts here
        with self.tracer.start_as_current_span(
            f"{request.method} {route}",
            context=_in(parent),
            kind=SpanKind.SERVER,
            attributes=attributes,
        ) as span:
            response = await handle
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    @contextlib.contextmanager
    def call(self, component: str, method: str) -> Iterator[Carrier]:
        """A CLIENT span around one caller's call to a runner or service method; yields the
        trace context to send for this caller."""
        with self.tracer.start_as_current_span(
            f"call {component}/{method}",
            kind=SpanKind.CLIENT,
            attributes=_rpc(component, method),
        ) as span:
            yield carrier_of(span)

    def headers(self) -> dict[str, str]:
        """The current span's W3C trace context as HTTP headers, for a call over HTTP."""
        headers: dict[str, str] = {}
        W3C.inject(headers)
        return headers

    # runner worker

    async def serve(
        self,
        component: str,
        request: pb.CallRequest,
        context: grpc.aio.ServicerContext,
        handle: Awaitable[T],
    ) -> T:
        """Run `handle` (one gRPC call's work) in a SERVER span: the child of its one caller,
        or the root of a trace linked to each of its callers."""
        contexts = [parse((c.traceparent,), (c.tracestate,)) for c in request.callers]
        valid = [found for found in contexts if found is not None]
        parent = valid[0] if len(contexts) == 1 and valid else None
        attributes = _rpc(component, request.method)
        attributes["kubento.callers"] = len(contexts)
        rid = dict(context.invocation_metadata() or ()).get(contract.REQUEST_ID_METADATA, "")
        if isinstance(rid, str) and contract.valid_request_id(rid):
            attributes["kubento.request_id"] = rid  # the caller's, or the shared call's id
        with self.tracer.start_as_current_span(
            f"serve {component}/{request.method}",
            context=_in(parent),
            kind=SpanKind.SERVER,
            links=[Link(found) for found in valid] if parent is None else (),
            attributes=attributes,
        ):
            return await handle

    def dispatcher(self, component: str, method: str) -> DispatchTracing:
        return DispatchTracing(self.tracer, component, method)


class DispatchTracing:
    """The batching dispatcher's spans for one method: queue wait, batch, model."""

    def __init__(self, tracer: trace.Tracer, component: str, method: str) -> None:
        self.tracer = tracer
        self.where = f"{component}/{method}"
        self.attributes = {"kubento.component": component, "kubento.method": method}

    def admitted(self, request: Request) -> None:
        """Remember the span the call's rows were submitted in."""
        request.span = trace.get_current_span().get_span_context()

    async def batch(self, batch: Batch, now: float, run: Awaitable[None]) -> None:
        """Run `run` (the batch) in a batch span; first record each new call's queue wait.

        `now` is the dispatcher's clock when the batch started; spans need wall-clock time.
        """
        wall_ns = time.time_ns()

        def at(when: float) -> int:
            return wall_ns - int((now - when) * 1e9)

        calls: list[trace.SpanContext] = []
        for part in batch.parts:
            span_context = part.request.span
            if span_context is None or not span_context.is_valid:
                continue
            calls.append(span_context)
            if part.start == 0:
                waited = self.tracer.start_span(
                    "queue wait",
                    context=_in(span_context),
                    attributes={**self.attributes, "kubento.rows": part.request.rows},
                    start_time=at(part.request.enqueued),
                )
                waited.end(end_time=at(batch.started))
        span = self.tracer.start_span(
            f"batch {self.where}",
            context=_in(calls[0] if len(calls) == 1 else None),
            links=[Link(call) for call in calls],
            attributes={
                **self.attributes,
                "kubento.batch.rows": batch.size,
                "kubento.batch.calls": len(batch.parts),
            },
            start_time=at(batch.started),
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await run
        finally:
            otel_context.detach(token)
            span.end()

    def model(self, fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        """`fn` (the batched model call) in a model span, current while it runs."""

        async def call(*args: Any) -> T:
            with self.tracer.start_as_current_span(
                f"model {self.where}", attributes=self.attributes
            ):
                return await fn(*args)

        return call


def _rpc(component: str, method: str) -> dict[str, Any]:
    return {
        "rpc.system": "grpc",
        "rpc.service": RPC_SERVICE,
        "rpc.method": "Call",
        "kubento.component": component,
        "kubento.method": method,
    }
