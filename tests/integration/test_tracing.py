"""Traces across real processes, exported over OTLP/gRPC to a receiver this test runs.

The API server and runner (or `kubento serve` of a service graph) run as processes with
`OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP TraceService served here, so what is
checked is what a collector would get: the span tree, its trace ids, parents and links.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import httpx
import numpy as np
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from kubento import contract
from kubento._local.supervisor import free_port
from tests.integration.processes import SERVICES_DIR, running_service, stop, wait_http

SERVER, CLIENT = trace_pb2.Span.SPAN_KIND_SERVER, trace_pb2.Span.SPAN_KIND_CLIENT


@dataclass(frozen=True)
class Span:
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent: str
    links: tuple[tuple[str, str], ...]
    attributes: dict[str, object] = field(hash=False)

    def child_of(self, other: Span) -> bool:
        return (self.trace_id, self.parent) == (other.trace_id, other.span_id)

    def links_to(self, other: Span) -> bool:
        return (other.trace_id, other.span_id) in self.links


def _value(value: object) -> object:
    kind = value.WhichOneof("value")  # type: ignore[attr-defined]
    return getattr(value, kind) if kind else None


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.lock = threading.Lock()

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: object
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        got = []
        for resource_spans in request.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    got.append(
                        Span(
                            service=str(resource.get("service.name")),
                            name=span.name,
                            kind=span.kind,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent=span.parent_span_id.hex(),
                            links=tuple((k.trace_id.hex(), k.span_id.hex()) for k in span.links),
                            attributes={a.key: _value(a.value) for a in span.attributes},
                        )
                    )
        with self.lock:
            self.spans.extend(got)
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait_for(self, ready: Callable[[list[Span]], bool], timeout: float = 30) -> list[Span]:
        """The spans received once `ready` holds for them (they arrive in batches)."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                spans = list(self.spans)
            if ready(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted(f"{s.service}:{s.name}" for s in spans)
                raise AssertionError(f"spans not received within {timeout}s; got {names}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def receiver() -> Iterator[tuple[Receiver, dict[str, str]]]:
    """The receiver, and the environment that makes a process export spans to it."""
    found = Receiver()
    server = grpc.server(ThreadPoolExecutor(4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(found, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "50",  # milliseconds: export soon, the test waits
    }
    try:
        yield found, env
    finally:
        server.stop(None)


@pytest.fixture(scope="module")
def traced(receiver: tuple[Receiver, dict[str, str]]) -> Iterator[str]:
    with running_service("traced:svc", ["sleepy"], env=receiver[1]) as (url, _):
        yield url


def traceparent() -> tuple[str, str, str]:
    """A new caller's (traceparent header, trace id, span id)."""
    trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace_id}-{span_id}-01", trace_id, span_id


def only(spans: list[Span], test: Callable[[Span], bool]) -> Span:
    found = [span for span in spans if test(span)]
    assert len(found) == 1, f"expected one span, found {found}"
    return found[0]


def post(url: str, rows: list[list[float]], headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url + "/tag", json=rows, headers=headers, timeout=30)


def test_a_callers_trace_continues_through_api_and_runner_into_queue_batch_and_model(
    receiver: tuple[Receiver, dict[str, str]], traced: str
) -> None:
    spans_in, _ = receiver
    header, trace_id, span_id = traceparent()
    reply = post(traced, [[0, 1, 2]], {"traceparent": header, "x-request-id": "trace-one"})
    assert reply.status_code == 200 and reply.json() == [[1, 3, 5]]

    def mine(spans: list[Span]) -> list[Span]:
        return [s for s in spans if s.trace_id == trace_id]

    spans = mine(spans_in.wait_for(lambda got: len(mine(got)) >= 6))
    http = only(spans, lambda s: s.kind == SERVER and s.service == "traced")
    assert http.name == "POST /tag" and http.parent == span_id
    assert http.attributes["kubento.request_id"] == "trace-one"
    assert http.attributes["http.response.status_code"] == 200
    call = only(spans, lambda s: s.name == "call sleepy/tag")
    assert call.kind == CLIENT and call.child_of(http)
    served = only(spans, lambda s: s.service == "sleepy" and s.kind == SERVER)
    assert served.name == "serve sleepy/tag" and served.child_of(call)
    assert served.attributes["kubento.request_id"] == "trace-one"
    waited = only(spans, lambda s: s.name == "queue wait")
    assert waited.child_of(served) and waited.service == "sleepy"
    batch = only(spans, lambda s: s.name == "batch sleepy/tag")
    assert batch.child_of(served) and batch.links_to(served)
    assert batch.attributes["kubento.batch.rows"] == 1
    model = only(spans, lambda s: s.name == "model sleepy/tag")
    assert model.child_of(batch)


def reached_from(span: Span, spans: list[Span]) -> set[Span]:
    """Every span `span` descends from, through parents and links."""
    by_id = {(s.trace_id, s.span_id): s for s in spans}
    seen: set[Span] = set()
    todo = [span]
    while todo:
        current = todo.pop()
        for key in [(current.trace_id, current.parent), *current.links]:
            found = by_id.get(key)
            if found is not None and found not in seen:
                seen.add(found)
                todo.append(found)
    return seen


def test_an_invalid_traceparent_starts_a_new_trace_and_leaves_a_concurrent_caller_alone(
    receiver: tuple[Receiver, dict[str, str]], traced: str
) -> None:
    spans_in, _ = receiver
    valid, trace_id, span_id = traceparent()
    invalid = f"00-{'g' * 32}-{span_id}-01"  # not hex: the caller's own mistake

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=traced, timeout=30) as client:
            # The first call holds the model for 0.6 s; the next two queue behind it and
            # share the following batch.
            blocker = asyncio.create_task(client.post("/tag", json=[[0.6, 0, 0]]))
            await asyncio.sleep(0.2)
            pair = await asyncio.gather(
                client.post("/tag", json=[[0, 1, 1]], headers={"traceparent": valid}),
                client.post(
                    "/tag",
                    json=[[0, 2, 2]],
                    headers={"traceparent": invalid, "x-request-id": "bad-header"},
                ),
            )
            return [await blocker, *pair]

    replies = asyncio.run(run())
    assert [r.status_code for r in replies] == [200, 200, 200]
    assert replies[1].json() == [[1, 3, 3]] and replies[2].json() == [[1, 5, 5]]

    def http_span(rid: str) -> Callable[[Span], bool]:
        return lambda s: s.name == "POST /tag" and s.attributes["kubento.request_id"] == rid

    def shared_batch(spans: list[Span]) -> Span | None:
        valid_http = [s for s in spans if s.name == "POST /tag" and s.trace_id == trace_id]
        invalid_http = [s for s in spans if http_span("bad-header")(s)]
        for batch in (s for s in spans if s.name == "batch sleepy/tag"):
            reached = reached_from(batch, spans)
            if valid_http and invalid_http and {valid_http[0], invalid_http[0]} <= reached:
                return batch
        return None

    spans = spans_in.wait_for(lambda got: shared_batch(got) is not None)
    good = only(spans, lambda s: s.name == "POST /tag" and s.trace_id == trace_id)
    assert good.parent == span_id and "kubento.traceparent_invalid" not in good.attributes
    good_call = only(spans, lambda s: s.name == "call sleepy/tag" and s.child_of(good))
    assert good_call.trace_id == trace_id
    bad = only(spans, http_span("bad-header"))
    assert bad.parent == "" and bad.trace_id not in (trace_id, "g" * 32)
    assert bad.attributes["kubento.traceparent_invalid"] is True
    batch = shared_batch(spans)
    assert batch is not None and batch.attributes["kubento.batch.rows"] == 2
    assert only(spans, lambda s: s.name == "model sleepy/tag" and s.child_of(batch))


@pytest.fixture(scope="module")
def graph(receiver: tuple[Receiver, dict[str, str]]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kubento", "serve", "traced_graph:Entry"),
            *("--working-dir", SERVICES_DIR, "--port", str(port)),
        ],
        env={**os.environ, **receiver[1]},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + contract.READINESS_PATH, timeout=90, watch=[process])
        yield url
    finally:
        stop(process)


def test_a_trace_continues_from_a_service_into_the_dependency_it_calls(
    receiver: tuple[Receiver, dict[str, str]], graph: str
) -> None:
    spans_in, _ = receiver
    header, trace_id, span_id = traceparent()
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    reply = httpx.post(
        graph + "/predict", json={"x": x.tolist()}, headers={"traceparent": header}, timeout=30
    )
    assert reply.status_code == 200
    np.testing.assert_allclose(reply.json(), (x + 1) * 2)

    def mine(spans: list[Span]) -> list[Span]:
        return [s for s in spans if s.trace_id == trace_id]

    # Each process exports its spans when they end: the innermost first, the outer ones of
    # the model service after its call to embed returns. Wait for every one asserted on.
    expected = {
        f"{step} {method}"
        for method in ("model/predict", "embed/encode")
        for step in ("call", "serve", "batch", "model")
    }
    spans = mine(spans_in.wait_for(lambda got: expected <= {s.name for s in mine(got)}))
    http = only(spans, lambda s: s.kind == SERVER and s.service == "entry")
    assert http.parent == span_id
    to_model = only(spans, lambda s: s.name == "call model/predict")
    assert to_model.child_of(http)
    served = only(spans, lambda s: s.name == "serve model/predict")
    assert served.service == "model" and served.child_of(to_model)
    batch = only(spans, lambda s: s.name == "batch model/predict")
    model = only(spans, lambda s: s.name == "model model/predict")
    assert batch.child_of(served) and model.child_of(batch)
    to_embed = only(spans, lambda s: s.name == "call embed/encode")
    assert to_embed.child_of(model) and to_embed.service == "model"
    served_embed = only(spans, lambda s: s.name == "serve embed/encode")
    assert served_embed.service == "embed" and served_embed.child_of(to_embed)
    embed_batch = only(spans, lambda s: s.name == "batch embed/encode")
    assert embed_batch.child_of(served_embed)
    assert only(spans, lambda s: s.name == "model embed/encode").child_of(embed_batch)
