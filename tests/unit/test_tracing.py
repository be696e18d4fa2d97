"""Tracing: off (and unimported) without an OTLP endpoint; W3C validation; batch spans."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kubento import _tracing
from kubento._proto import runner_pb2 as pb
from kubento._tracing.spans import Tracing, parse
from kubento.batching import BatchingConfig, Dispatcher

PROBE = """
import asyncio, json, sys
import httpx, numpy as np
import kubento, kubento.io
from kubento import contract
from kubento._api.app import build_app
from kubento._runner.worker import RunnerWorker
import kubento._remote.client, kubento._remote.http, kubento._sdk.graph, kubento._local.supervisor

class Double(kubento.Runnable):
    @kubento.Runnable.method(batchable=True)
    def double(self, x):
        return x * 2

runner = kubento.Runner(Double, name="double")
svc = kubento.Service("probe")

@svc.api(input=kubento.io.JSON(), output=kubento.io.JSON())
async def echo(value):
    return value

async def main():
    app = build_app(svc, {})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        parent = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        reply = await client.post("/echo", json=[1], headers={"traceparent": parent})
        assert reply.json() == [1], reply.text
    worker = RunnerWorker(runner, contract.BatchingOverrides())
    await worker.load()
    if worker.tracing is None:  # with tracing on, spans would be exported at exit
        out = await worker.methods["double"]((np.ones((2, 1)),), None)
        assert out.tolist() == [[2.0], [2.0]]
    await worker.close()

asyncio.run(main())
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry")))
"""


def imported_after_serving(env: dict[str, str]) -> list[str]:
    """The opentelemetry modules a process has loaded after serving an API request and a
    batched runner call (the API server's and the runner worker's hot paths)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    modules: list[str] = json.loads(out.splitlines()[-1])
    return modules


def test_without_an_otlp_endpoint_nothing_from_opentelemetry_is_imported() -> None:
    assert imported_after_serving({}) == []


def test_with_an_otlp_endpoint_the_processes_trace() -> None:
    modules = imported_after_serving({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"})
    assert "opentelemetry.sdk.trace" in modules


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, True),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_TRACES_EXPORTER": "none"}, False),
    ],
)
def test_tracing_is_on_only_with_an_endpoint_and_the_sdk_enabled(
    env: dict[str, str], on: bool
) -> None:
    assert _tracing.configured(env) is on


def test_an_endpoint_without_the_tracing_packages_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "kubento._tracing.spans")
    monkeypatch.setattr(_tracing, "_started", False)
    with pytest.raises(
        RuntimeError, match=r"OTEL_EXPORTER_OTLP_ENDPOINT is set.*kubento\[tracing\]"
    ):
        _tracing.start("clf")


TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
SPAN_ID = "b7ad6b7169203331"


def test_a_valid_traceparent_is_the_parent() -> None:
    found = parse([f"00-{TRACE_ID}-{SPAN_ID}-01"], ["vendor=value"])
    assert found is not None
    assert (f"{found.trace_id:032x}", f"{found.span_id:016x}") == (TRACE_ID, SPAN_ID)
    assert found.is_remote and found.trace_state.get("vendor") == "value"


@pytest.mark.parametrize(
    "headers",
    [
        [f"00-{TRACE_ID.upper()}-{SPAN_ID}-01"],  # upper-case hex
        [f"00-{'0' * 32}-{SPAN_ID}-01"],  # all-zero trace id
        [f"00-{TRACE_ID}-{'0' * 16}-01"],  # all-zero span id
        [f"ff-{TRACE_ID}-{SPAN_ID}-01"],  # version ff is forbidden
        [f"00-{TRACE_ID}-{SPAN_ID}-01-extra"],  # version 00 has exactly four fields
        [f"00-{TRACE_ID[:-1]}-{SPAN_ID}-01"],  # short trace id
        ["not a traceparent"],
        [f"00-{TRACE_ID}-{SPAN_ID}-01", f"00-{TRACE_ID}-{SPAN_ID}-01"],  # sent twice
        [],
    ],
)
def test_an_invalid_or_missing_traceparent_is_no_parent(headers: list[str]) -> None:
    assert parse(headers) is None


def tracing() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def context_with_request_id(request_id: str) -> Any:
    return SimpleNamespace(invocation_metadata=lambda: (("x-request-id", request_id),))


def call_request(*traceparents: str) -> pb.CallRequest:
    return pb.CallRequest(
        method="predict", callers=[pb.TraceContext(traceparent=tp) for tp in traceparents]
    )


async def test_a_call_from_one_caller_is_served_as_its_child() -> None:
    found, exporter = tracing()

    async def work() -> int:
        return 7

    request = call_request(f"00-{TRACE_ID}-{SPAN_ID}-01")
    assert await found.serve("clf", request, context_with_request_id("r1"), work()) == 7
    (span,) = exporter.get_finished_spans()
    assert span.name == "serve clf/predict" and span.parent is not None
    assert f"{span.context.trace_id:032x}" == TRACE_ID and f"{span.parent.span_id:016x}" == SPAN_ID
    assert span.attributes is not None and span.attributes["kubento.request_id"] == "r1"
    assert not span.links


async def test_a_coalesced_call_is_a_new_trace_linked_to_each_valid_caller() -> None:
    found, exporter = tracing()
    other = "1" * 32

    async def work() -> None:
        return None

    request = call_request(
        f"00-{TRACE_ID}-{SPAN_ID}-01", "00-zz-bad-01", f"00-{other}-{'2' * 16}-01"
    )
    await found.serve("clf", request, context_with_request_id("bad id!"), work())
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert f"{span.context.trace_id:032x}" not in (TRACE_ID, other)
    linked = {f"{link.context.trace_id:032x}" for link in span.links}
    assert linked == {TRACE_ID, other}  # the invalid caller is left out, the others kept
    assert span.attributes is not None and span.attributes["kubento.callers"] == 3
    assert "kubento.request_id" not in span.attributes  # not a valid request id


async def test_a_batch_of_two_calls_links_both_and_each_call_gets_its_queue_wait() -> None:
    found, exporter = tracing()
    release = asyncio.Event()

    async def model(x: np.ndarray) -> np.ndarray:
        await release.wait()
        return x * 2

    dispatcher = Dispatcher(
        model,
        BatchingConfig(max_batch_size=8, max_latency_ms=1000, max_concurrency=1),
        name="clf",
        method="predict",
        tracing=found.dispatcher("clf", "predict"),
    )
    tracer = found.tracer

    async def caller(name: str, rows: int) -> Any:
        with tracer.start_as_current_span(name):
            return await dispatcher.submit(np.ones((rows, 1)))

    first = asyncio.create_task(caller("first", 1))  # runs alone, holding the model
    await asyncio.sleep(0.01)
    rest = asyncio.gather(caller("second", 2), caller("third", 3))
    await asyncio.sleep(0.05)
    release.set()
    await first
    await rest
    await dispatcher.close()
    spans = exporter.get_finished_spans()
    callers = {span.name: span for span in spans if span.name in ("first", "second", "third")}
    shared = [
        span
        for span in named(spans, "batch clf/predict")
        if span.attributes is not None and span.attributes["kubento.batch.rows"] == 5
    ]
    assert len(shared) == 1
    batch = shared[0]
    assert batch.parent is None  # two calls: a trace of its own, linked to both
    assert {link.context.span_id for link in batch.links} == {
        callers["second"].context.span_id,
        callers["third"].context.span_id,
    }
    (model_span,) = [s for s in named(spans, "model clf/predict") if s.parent == batch.context]
    waits = {
        span.parent.span_id: span for span in named(spans, "queue wait") if span.parent is not None
    }
    assert set(waits) == {span.context.span_id for span in callers.values()}
    second_wait = waits[callers["second"].context.span_id]
    assert second_wait.start_time is not None and second_wait.end_time is not None
    assert (second_wait.end_time - second_wait.start_time) / 1e9 >= 0.04  # queued behind first
    assert model_span.start_time is not None and batch.start_time is not None
    assert model_span.start_time >= batch.start_time


async def test_a_model_error_marks_the_model_span() -> None:
    found, exporter = tracing()

    async def model(x: np.ndarray) -> np.ndarray:
        raise ValueError("broken weights")

    dispatcher = Dispatcher(
        model,
        BatchingConfig(max_batch_size=8, max_latency_ms=10),
        tracing=found.dispatcher("clf", "predict"),
    )
    with pytest.raises(ValueError, match="broken weights"):
        await dispatcher.submit(np.ones((1, 1)))
    await dispatcher.close()
    (model_span,) = named(exporter.get_finished_spans(), "model clf/predict")
    assert not model_span.status.is_ok
    assert model_span.events and model_span.events[0].name == "exception"


def test_a_call_to_an_http_dependency_carries_the_current_span_as_traceparent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubento._remote.http import HTTPService

    found, _ = tracing()
    other = HTTPService("http://other-api:3000")
    monkeypatch.setattr(_tracing, "_tracing", None)
    assert "traceparent" not in other._request("predict", {})[2]
    monkeypatch.setattr(_tracing, "_tracing", found)
    with found.tracer.start_as_current_span("handler") as span:
        headers = other._request("predict", {})[2]
    sent = parse([headers["traceparent"]])
    assert sent is not None and sent.span_id == span.get_span_context().span_id
