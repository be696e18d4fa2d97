"""API server -> gRPC -> runner worker, as real processes on loopback."""

import asyncio
import io
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubento import contract
from tests.integration.processes import RunnerProcess, api_statuses, running_service

SERVICE = "tagger:svc"


@pytest.fixture(scope="module")
def api_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("api") / "api.log"


@pytest.fixture(scope="module")
def tagger(api_log: Path) -> Iterator[tuple[str, dict[str, RunnerProcess]]]:
    with running_service(
        SERVICE,
        ["tagger"],
        env={contract.ENV_MAX_REQUEST_BYTES: str(64 * 1024)},
        api_log=api_log,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def url(tagger: tuple[str, dict[str, RunnerProcess]]) -> str:
    return tagger[0]


async def test_concurrent_requests_each_get_their_own_rows_back(url: str) -> None:
    rng = np.random.default_rng(7)
    inputs = [rng.normal(size=(1 + i % 5, 3)).round(6) for i in range(1000)]
    # 1,000 calls in flight at once from the API's point of view; httpx itself is slow
    # with hundreds of sockets, so a few dozen connections carry them.
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        replies = await asyncio.gather(*(client.post("/tag", json=x.tolist()) for x in inputs))
        stats = (await client.post("/stats", json={})).json()
    assert [r.status_code for r in replies] == [200] * len(inputs)
    for x, reply in zip(inputs, replies, strict=True):
        np.testing.assert_allclose(np.asarray(reply.json()), x * 2 + 1)
    assert stats["rows"] >= sum(len(x) for x in inputs)
    assert stats["max_batch"] > 5, "concurrent calls of mixed row counts were never batched"


def coalescing_samples(url: str) -> tuple[float, float]:
    """(runner calls, callers in them) of the tagger's `tag` method, from the API's metrics."""
    text = httpx.get(url + contract.METRICS_PATH).text
    calls = callers = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("method") != "tag":
                continue
            if sample.name == "kubento_api_runner_call_callers_count":
                calls = sample.value
            elif sample.name == "kubento_api_runner_call_callers_sum":
                callers = sample.value
    return calls, callers


async def test_concurrent_callers_share_runner_calls(url: str) -> None:
    calls_before, callers_before = coalescing_samples(url)
    inputs = [np.full((1, 3), i, dtype=np.float64) for i in range(200)]
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        replies = await asyncio.gather(*(client.post("/tag", json=x.tolist()) for x in inputs))
    for x, reply in zip(inputs, replies, strict=True):
        np.testing.assert_allclose(np.asarray(reply.json()), x * 2 + 1)
    calls_after, callers_after = coalescing_samples(url)
    assert callers_after - callers_before == len(inputs)
    assert calls_after - calls_before < len(inputs), "no two callers ever shared a runner call"


def test_npy_in_and_out(url: str) -> None:
    array = np.arange(6, dtype=np.float64).reshape(2, 3)
    buffer = io.BytesIO()
    np.save(buffer, array)
    reply = httpx.post(
        url + "/tag",
        content=buffer.getvalue(),
        headers={"content-type": "application/octet-stream", "accept": "application/octet-stream"},
    )
    assert reply.status_code == 200
    np.testing.assert_array_equal(np.load(io.BytesIO(reply.content)), array * 2 + 1)


def test_an_array_with_no_rows_is_the_callers_mistake_not_a_500(url: str) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((0, 3)))
    reply = httpx.post(
        url + "/tag",
        content=buffer.getvalue(),
        headers={"content-type": "application/octet-stream"},
    )
    assert reply.status_code == 400, reply.text
    assert "0 rows" in reply.json()["error"]


def test_a_client_that_disconnects_mid_body_is_counted_apart_and_not_logged_as_an_error(
    tmp_path: Path,
) -> None:
    api_log = tmp_path / "api.log"
    with running_service(SERVICE, ["tagger"], api_log=api_log) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(
                b"POST /shout HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\n"
                b"Content-Length: 1000\r\n\r\nonly part of it"
            )
        statuses: dict[str, float] = {}
        for _ in range(50):  # the server notices the closed socket on its next read
            counted = api_statuses(url, "kubento_api_requests_total", api="shout")
            statuses = {status: value for (_, status), value in counted.items()}
            if statuses:
                break
            time.sleep(0.1)
        assert statuses == {"499": 1.0}
        assert httpx.post(url + "/shout", content="still here").text == "STILL HERE"
    log = api_log.read_text()
    assert "Traceback" not in log and "ERROR" not in log, log


def test_request_latency_is_counted_by_status(url: str) -> None:
    """The latency histogram splits by status, so the admitted requests' own times can be
    read apart from fast refusals and errors; each status's count matches the counter's."""
    before = api_statuses(url, "kubento_api_request_duration_seconds_count", api="tag")
    assert httpx.post(url + "/tag", json=[[1.0, 2.0, 3.0]]).status_code == 200
    assert httpx.post(url + "/tag", json=[["not", "numbers"]]).status_code == 400
    after = api_statuses(url, "kubento_api_request_duration_seconds_count", api="tag")
    grown = {key: value - before.get(key, 0.0) for key, value in after.items()}
    assert grown == {("tag", "200"): 1.0, ("tag", "400"): 1.0}
    counted = api_statuses(url, "kubento_api_requests_total", api="tag")
    assert counted == after


def test_request_id_is_echoed(url: str) -> None:
    reply = httpx.post(url + "/shout", content="hi", headers={"x-request-id": "abc-123"})
    assert reply.text == "HI"
    assert reply.headers["x-request-id"] == "abc-123"


def test_a_runner_error_is_a_500_naming_the_request_id_the_runner_logged(
    tagger: tuple[str, dict[str, RunnerProcess]],
) -> None:
    url, runners = tagger
    reply = httpx.post(url + "/fail", content="boom", headers={"x-request-id": "req-42"})
    assert reply.status_code == 500
    assert "RuntimeError: boom" in reply.json()["error"]
    assert reply.json()["detail"] == {"request_id": "req-42"}
    assert "request_id=req-42 error=RuntimeError('boom')" in runners["tagger"].log()


async def test_coalesced_callers_see_only_their_own_request_id_in_a_runner_error(
    tagger: tuple[str, dict[str, RunnerProcess]], api_log: Path
) -> None:
    url, runners = tagger
    ids = [f"caller-{i}" for i in range(40)]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        replies = await asyncio.gather(
            *(
                client.post("/refuse", json=[[1.0, 2.0, 3.0]], headers={"x-request-id": rid})
                for rid in ids
            )
        )
    for rid, reply in zip(ids, replies, strict=True):
        assert reply.status_code == 500, reply.text
        assert "ValueError: refused a batch of" in reply.json()["error"]
        assert "caller-" not in reply.json()["error"]
        assert reply.json()["detail"] == {"request_id": rid}
    # A shared call carries one call id, never the callers' ids; the API's line for each
    # caller names both, so every caller's 500 ties to the runner's log line.
    runner_log, calls_seen = runners["tagger"].log(), set()
    for rid in ids:
        line = re.search(rf"request_id={rid} runner_call=(\S+)", api_log.read_text())
        assert line, f"the API logged no line for {rid}"
        call = line.group(1)
        assert call == "-" or f"request_id={call} " in runner_log
        calls_seen.add(call)
    assert any(call.startswith("call-") for call in calls_seen), "no callers shared a call"
    assert not re.search(r"request_id=caller-\d+,", runner_log), "callers' ids were joined"


def test_text_file_and_model_apis(url: str) -> None:
    assert httpx.post(url + "/reverse", content=b"\x00\x01\x02").content == b"\x02\x01\x00"
    assert httpx.post(url + "/norm", json={"x": 3, "y": 4}).json() == {"norm": 5.0}


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "message"),
    [
        ("/tag", b"[[1, 2, 3", {}, 400, "not valid JSON"),
        ("/tag", b"[[1, 2]]", {}, 400, "expected an array of shape (*, 3), got (1, 2)"),
        ("/tag", b'[["a", "b", "c"]]', {}, 400, "nested list of numbers"),
        ("/tag", b"\x93NUMPY garbage", {"content-type": "application/octet-stream"}, 400, ".npy"),
        ("/norm", b'{"x": "east"}', {}, 400, "does not match Point"),
        ("/shout", b"\xff\xfe", {}, 400, "UTF-8"),
        ("/nope", b"{}", {}, 404, "Not Found"),
        ("/tag", b"x" * (64 * 1024 + 1), {}, 413, "over the 65536-byte limit"),
        ("/fail", b"model exploded", {}, 500, "RuntimeError: model exploded"),
        ("/broken", b"boom", {}, 500, "api 'broken' failed: KeyError"),
    ],
)
def test_bad_requests_get_a_status_and_a_json_error(
    url: str, path: str, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    reply = httpx.post(url + path, content=body, headers=headers)
    assert reply.status_code == status
    payload = reply.json()
    assert message in payload["error"]
    assert "Traceback" not in reply.text


def test_wrong_method_is_a_json_405(url: str) -> None:
    reply = httpx.get(url + "/tag")
    assert reply.status_code == 405
    assert reply.json()["error"] == "Method Not Allowed"


def test_metrics_count_requests_by_api_and_status(url: str) -> None:
    httpx.post(url + "/shout", content="x")
    text = httpx.get(url + "/metrics").text
    assert 'kubento_api_requests_total{api="shout",status="200"}' in text
