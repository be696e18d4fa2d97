"""The HTTP edge against bad and hostile input, through real API and runner processes:
no caller can fail another, errors tell the truth, and limits hold."""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from kubento import contract
from tests.integration.processes import (
    RunnerProcess,
    alive,
    children_of,
    running_service,
    spawn,
    stop,
    wait_http,
)

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    env = {contract.ENV_MAX_REQUEST_BYTES: str(LIMIT)}
    with running_service("tagger:svc", ["tagger"], env=env) as (url, _):
        yield url


def rows(seed: int, count: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, 3)).round(6)


async def test_no_request_id_can_fail_the_callers_it_shares_a_runner_call_with(url: str) -> None:
    hostile: dict[int, str | bytes] = {
        0: "bad\tid",
        1: "x" * 20_000,
        2: "k=v level=ERROR",
        3: "ünï".encode(),
    }
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for round_ in range(5):
            inputs = [rows(round_ * 100 + i, 1 + i % 3) for i in range(40)]
            ids = [hostile.get(i, "y" * 300 if i % 2 else f"honest-{i}") for i in range(40)]
            replies = await asyncio.gather(
                *(
                    client.post("/tag", json=x.tolist(), headers={"x-request-id": rid})
                    for x, rid in zip(inputs, ids, strict=True)
                )
            )
            assert [r.status_code for r in replies] == [200] * 40, [r.text for r in replies]
            for x, reply, rid in zip(inputs, replies, ids, strict=True):
                np.testing.assert_allclose(np.asarray(reply.json()), x * 2 + 1)
                echoed = reply.headers["x-request-id"]
                if isinstance(rid, str) and contract.valid_request_id(rid):
                    assert echoed == rid
                else:
                    assert len(echoed) == 32, "an unsafe id is replaced by a generated one"


def raw_request(url: str, data: bytes, timeout: float = 10) -> bytes:
    """Send bytes as they are; return whatever the server answers before closing."""
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_oversized_headers_get_431_and_the_server_keeps_serving(url: str) -> None:
    big = b"POST /shout HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (200 * 1024) + b"\r\n\r\n"
    try:
        answer = raw_request(url, big)
    except ConnectionResetError:  # refused while the rest was still on its way
        answer = b"HTTP/1.1 431"
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    many = b"GET /livez HTTP/1.1\r\nHost: t\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(200))
    assert raw_request(url, many + b"\r\n").startswith(b"HTTP/1.1 431")
    assert httpx.post(url + "/shout", content="ok").text == "OK"


def test_a_trailing_slash_never_redirects_to_the_host_header(url: str) -> None:
    reply = httpx.post(url + "/tag/", json=[[1, 2, 3]], headers={"host": "evil.example"})
    assert reply.status_code == 404
    assert "location" not in reply.headers


def test_nan_and_infinity_in_json_are_a_400(url: str) -> None:
    reply = httpx.post(
        url + "/tag", content=b"[[NaN, 1, 2]]", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert "not valid JSON" in reply.json()["error"]


def test_a_huge_npy_header_with_a_tiny_body_is_a_400(url: str) -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 3)))
    body = buffer.getvalue()[:128].replace(b"(1, 3)", b"(99999999999, 3)") + b"\0" * 16
    reply = httpx.post(
        url + "/tag", content=body, headers={"content-type": "application/octet-stream"}
    )
    assert reply.status_code == 400
    assert "declares shape" in reply.json()["error"]


def test_a_request_larger_than_the_runner_queue_is_a_400_not_a_429(url: str) -> None:
    # The tagger's queue holds the default 1,024 rows: 2,000 can never fit, retry or not.
    reply = httpx.post(url + "/tag", content=json.dumps([[0, 0, 0]] * 2000))
    assert reply.status_code == 400, reply.text
    assert "more than the queue holds" in reply.json()["error"]
    assert "retry-after" not in reply.headers


SMALL_QUEUE = contract.BatchingOverrides(max_batch_size=4, max_queue_size=8)


@pytest.mark.parametrize("wiring", ["kubento serve", "kubernetes"])
async def test_the_api_sizes_calls_by_the_limits_the_deployment_gives_the_runner(
    wiring: str,
) -> None:
    # The tagger declares max_batch_size=64; its deployment allows batches of 4 and a queue
    # of 8. Coalescing by the declared 64 sent groups the runner can never queue, and every
    # caller in them got a 400 for rows it never sent; a full queue is a 429, honestly.
    env = SMALL_QUEUE.to_env()  # what the runner's pod (or every `kubento serve` process) has
    if wiring == "kubernetes":  # the API pod gets the runner's overrides by name instead
        batching = contract.encode_runner_batching({"tagger": SMALL_QUEUE})
        env = {**env, contract.ENV_RUNNER_BATCHING: batching}
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=40)
    with running_service("tagger:svc", ["tagger"], env=env) as (url, _):
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            served = 0
            for round_ in range(3):
                inputs = [rows(round_ * 100 + i, 1) for i in range(40)]
                replies = await asyncio.gather(
                    *(client.post("/tag", json=x.tolist()) for x in inputs)
                )
                wrong = [r.text for r in replies if r.status_code not in (200, 429)]
                assert not wrong, f"{len(wrong)} of 40 failed, first: {wrong[0]}"
                for x, reply in zip(inputs, replies, strict=True):
                    if reply.status_code == 200:
                        served += 1
                        np.testing.assert_allclose(np.asarray(reply.json()), x * 2 + 1)
                    else:
                        assert "queue is full" in reply.json()["error"]
            assert served >= 3 * 8
            assert (await client.post("/stats", json={})).json()["max_batch"] <= 4


def test_the_api_refuses_a_call_that_can_never_be_queued_without_forwarding_it() -> None:
    # Only the API is told of a queue of 8 (the runner keeps its default 1,024): a 9-row
    # request answered 400 was refused by the API itself, its bytes never sent.
    batching = contract.encode_runner_batching({"tagger": SMALL_QUEUE})
    with running_service(
        "tagger:svc", ["tagger"], env={contract.ENV_RUNNER_BATCHING: batching}
    ) as (
        url,
        _,
    ):
        reply = httpx.post(url + "/tag", json=rows(0, 9).tolist())
        assert reply.status_code == 400, reply.text
        assert "more than the queue holds (max_queue_size=8)" in reply.json()["error"]
        assert httpx.post(url + "/stats", json={}).json()["calls"] == 0
        assert httpx.post(url + "/tag", json=rows(0, 8).tolist()).status_code == 200


OVER = b"x" * (LIMIT * 16)


def check_413(status: int, body: bytes) -> None:
    assert status == 413
    assert "limit" in json.loads(body)["error"]


def test_413_reaches_urllib(url: str) -> None:
    request = urllib.request.Request(url + "/reverse", data=OVER, method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    check_413(info.value.code, info.value.read())


def test_413_reaches_http_client_with_connection_close(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request("POST", "/reverse", body=OVER, headers={"Connection": "close"})
    reply = connection.getresponse()
    check_413(reply.status, reply.read())
    connection.close()


def test_413_reaches_httpx_with_and_without_a_content_length(url: str) -> None:
    reply = httpx.post(url + "/reverse", content=OVER, timeout=10)
    check_413(reply.status_code, reply.content)

    def chunks() -> Iterator[bytes]:
        for _ in range(16):
            yield b"x" * LIMIT

    reply = httpx.post(url + "/reverse", content=chunks(), timeout=10)
    check_413(reply.status_code, reply.content)


def test_413_reaches_curl_which_expects_100_continue(url: str, tmp_path: Path) -> None:
    payload = tmp_path / "big"
    payload.write_bytes(b"x" * (2 * 1024 * 1024))  # curl asks for 100-continue past 1 MiB
    out = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", "--data-binary", f"@{payload}", url + "/reverse"],
        capture_output=True,
        check=True,
        timeout=20,
    ).stdout
    body, _, status = out.rpartition(b"\n")
    check_413(int(status), body)


async def test_bodies_in_flight_are_capped_and_probes_answer_meanwhile(url: str) -> None:
    # Each client trickles a body just under the limit, so the server holds it a while.
    async def slow_body() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b"x" * (LIMIT // 8 - 64)
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        posts = [
            asyncio.create_task(client.post("/reverse", content=slow_body())) for _ in range(24)
        ]
        await asyncio.sleep(0.2)
        started = time.monotonic()
        live = await client.get(contract.LIVENESS_PATH)
        probe_s = time.monotonic() - started
        replies = await asyncio.gather(*posts)
    assert live.status_code == 200
    assert probe_s < 0.5, f"/livez took {probe_s:.3f} s while bodies were in flight"
    statuses = sorted({r.status_code for r in replies})
    assert statuses == [200, 503], statuses  # some held, the excess refused at once
    busy = [r for r in replies if r.status_code == 503]
    assert all("budget" in r.json()["error"] and r.headers["retry-after"] for r in busy)


@pytest.fixture()
def three() -> Iterator[tuple[str, dict[str, RunnerProcess]]]:
    with running_service("three:svc", ["first", "left", "right"]) as running:
        yield running


@pytest.mark.parametrize("callers", [60, 200])
async def test_a_tight_batching_budget_never_sheds_requests_that_fit(
    three: tuple[str, dict[str, RunnerProcess]], callers: int
) -> None:
    url, _ = three
    limits = httpx.Limits(max_connections=callers, max_keepalive_connections=callers)
    semaphore = asyncio.Semaphore(callers)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def post(x: np.ndarray) -> httpx.Response:
            async with semaphore:
                return await client.post("/predict", json=x.tolist())

        for run in range(3):
            inputs = [
                np.random.default_rng(run * 1000 + i).normal(size=(1 + i % 3, 4)).round(6)
                for i in range(callers * 3)
            ]
            replies = await asyncio.gather(*(post(x) for x in inputs))
            failed = [r.text for r in replies if r.status_code != 200]
            assert not failed, f"run {run}: {len(failed)} failed, first: {failed[0]}"
            for x, reply in zip(inputs, replies, strict=True):
                np.testing.assert_allclose(np.asarray(reply.json()), 4 * x + 7)


async def test_a_runner_shutting_down_under_load_answers_503_never_500(
    three: tuple[str, dict[str, RunnerProcess]],
) -> None:
    url, runners = three
    statuses: list[int] = []
    stop = asyncio.Event()

    async def load(client: httpx.AsyncClient) -> None:
        while not stop.is_set():
            reply = await client.post("/predict", json=[[1.0, 2.0, 3.0, 4.0]])
            statuses.append(reply.status_code)
            if reply.status_code == 503:
                assert reply.headers["retry-after"]

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        tasks = [asyncio.create_task(load(client)) for _ in range(16)]
        await asyncio.sleep(0.5)
        process = runners["left"].process
        assert process is not None
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 30)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*tasks)
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert 200 in statuses and 503 in statuses


def raw_post(path: str, body: bytes) -> bytes:
    """A JSON POST as bytes, for a test that writes requests on a socket itself."""
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def raw_answers(sock: socket.socket, count: int) -> list[tuple[int, dict[str, str], bytes]]:
    """The next `count` responses on `sock`: status, headers (lower-case names) and body."""
    reader = sock.makefile("rb")
    got = []
    for _ in range(count):
        status = int(reader.readline().split()[1])
        headers = {}
        while (line := reader.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            headers[name.lower()] = value.strip()
        got.append((status, headers, reader.read(int(headers["content-length"]))))
    return got


@pytest.fixture(scope="module")
def pipelined() -> Iterator[str]:
    """The pipelined service with 1 s end to end."""
    env = {contract.ENV_REQUEST_TIMEOUT: "1"}
    with running_service("pipelined:svc", [], env=env) as (url, _):
        yield url


def test_a_requests_time_counts_from_its_arrival_not_from_when_the_loop_gets_to_it(
    pipelined: str,
) -> None:
    """Two requests pipelined on one connection: the second is parsed at once but runs only
    after the first held the loop for 0.8 s; with 1 s end to end its 0.4 s no longer fits."""
    host, port = pipelined.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(raw_post("/hog", b"0.8") + raw_post("/wait", b"0.4"))
        answers = [(status, json.loads(body)) for status, _, body in raw_answers(sock, 2)]
    assert answers[0] == (200, "hogged")
    status, body = answers[1]
    assert status == 504, body
    assert "did not finish within the request's time" in body["error"]


@pytest.mark.parametrize(
    ("within", "seconds", "status"),
    [
        ("0.2", 0.4, 504),  # the caller's shorter time counts
        ("5", 0.4, 200),
        ("5", 1.2, 504),  # never longer than the server's own
        ("soon", 0.4, 200),  # not a number of seconds: ignored
        ("-1", 0.4, 200),
    ],
)
def test_a_caller_may_shorten_a_requests_time_with_finish_within(
    pipelined: str, within: str, seconds: float, status: int
) -> None:
    started = time.monotonic()
    reply = httpx.post(
        pipelined + "/wait",
        json=seconds,
        headers={contract.FINISH_WITHIN_METADATA: within},
        timeout=10,
    )
    took = time.monotonic() - started
    assert reply.status_code == status, reply.text
    if status == 504:
        assert took < min(float(within), 1.0) + 0.3
        assert "did not finish within the request's time" in reply.json()["error"]


def test_the_probe_port_answers_while_the_loop_is_busy_and_fails_when_it_is_stuck() -> None:
    """Pods are probed on API_PROBE_PORT, answered by a process of their own from what the
    loop last published: a probe does not wait for the loop, but a loop that stops
    publishing for STALLED_S turns both probes to 503."""
    from kubento._api.probe_process import STALLED_S
    from kubento._local.supervisor import free_port

    probe_port = free_port()
    with running_service("pipelined:svc", [], probe_port=probe_port) as (url, _):
        probes = f"http://127.0.0.1:{probe_port}"
        for path in (contract.LIVENESS_PATH, contract.READINESS_PATH):
            on_probe_port, on_http_port = httpx.get(probes + path), httpx.get(url + path)
            assert on_probe_port.status_code == on_http_port.status_code == 200
            assert on_probe_port.json() == on_http_port.json()
        with socket.create_connection(("127.0.0.1", probe_port), timeout=10) as idle:
            # A connection that sends nothing holds no probe back, and each answer closes its.
            reply = httpx.get(probes + contract.LIVENESS_PATH)
            assert (reply.status_code, reply.headers["connection"]) == (200, "close")
            idle.settimeout(0.05)
            with pytest.raises(TimeoutError):
                idle.recv(1)  # still open: the probe did not wait for it to time out
        missing = httpx.get(probes + "/docs")
        assert (missing.status_code, missing.json()["error"]) == (404, "not a probe path")
        refused = httpx.post(probes + contract.LIVENESS_PATH, content=b"{}")
        assert refused.status_code == 501
        assert refused.json()["error"] == "Unsupported method ('POST')"

        def hog(seconds: float) -> tuple[httpx.Response, list[httpx.Response]]:
            """POST /hog for `seconds`; probe /livez on the probe port meanwhile."""
            with ThreadPoolExecutor(1) as pool:
                hogging = pool.submit(httpx.post, url + "/hog", json=seconds, timeout=30)
                time.sleep(0.3)  # the hog has the loop now
                seen = []  # the probes answered while the hog still held the loop
                while True:
                    answer = httpx.get(probes + contract.LIVENESS_PATH, timeout=5)
                    if hogging.done():
                        break
                    seen.append(answer)
                    time.sleep(0.2)
                return hogging.result(), seen

        reply, seen = hog(1.0)
        assert reply.json() == "hogged"
        assert seen and {r.status_code for r in seen} == {200}, "a busy loop is not a dead one"

        reply, seen = hog(STALLED_S + 1.5)
        assert reply.json() == "hogged"
        stuck = [r for r in seen if r.status_code == 503]
        assert stuck, [r.status_code for r in seen]
        assert stuck[-1].json()["error"].startswith("the event loop has not run for ")
        assert httpx.get(probes + contract.LIVENESS_PATH).status_code == 200  # it runs again


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_the_probe_process_ends_with_its_api_server(how: signal.Signals) -> None:
    """The probe port's process lives exactly as long as its API server: stopped or killed,
    the server leaves no process answering probes for it."""
    from kubento._local.supervisor import free_port

    probe_port, api_port = free_port(), free_port()
    argv = contract.api_command(
        "pipelined:svc", host="127.0.0.1", port=api_port, probe_port=probe_port
    )
    api = spawn(argv, {contract.ENV_RUNNER_MAP: "{}"})
    try:
        wait_http(f"http://127.0.0.1:{probe_port}{contract.READINESS_PATH}", watch=[api])
        (probe_process,) = children_of(api.pid)
        api.send_signal(how)
        api.wait(timeout=30)
        for _ in range(100):
            if not alive(probe_process):
                break
            time.sleep(0.05)
        assert not alive(probe_process), "the probe process outlived its API server"
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", probe_port), timeout=1).close()
    finally:
        stop(api)


def test_probes_answered_as_parsed_keep_the_connection_and_its_order() -> None:
    """/livez and /readyz are answered by the protocol itself when the connection is idle: it is
    well-formed, keep-alive still works for what follows, `Connection: close` closes, and a
    /livez queued behind a slow request waits its turn."""
    with running_service("pipelined:svc", []) as (url, _):
        host, port = url.removeprefix("http://").split(":")
        live = b"GET /livez HTTP/1.1\r\nHost: t\r\n\r\n"
        hog = raw_post("/hog", b"0.3")

        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(live)
            sock.sendall(live + hog + live)  # the second /livez waits for the hog's answer
            (a, b, c, d) = raw_answers(sock, 4)
            assert [a[0], b[0], c[0], d[0]] == [200, 200, 200, 200]
            assert json.loads(a[2]) == json.loads(b[2]) == json.loads(d[2]) == {"status": "alive"}
            assert a[1]["content-type"] == "application/json"
            # Which way each went: uvicorn adds `server` and `date` to what the app answers.
            assert "date" not in a[1] and "date" not in b[1] and "date" in d[1]
            assert json.loads(c[2]) == "hogged"
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            ((status, headers, _),) = raw_answers(sock, 1)
            assert (status, headers["connection"]) == (200, "close")
            assert sock.recv(1) == b""  # closed by the server
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n")
            ((status, headers, body),) = raw_answers(sock, 1)
            assert (status, json.loads(body)) == (200, {"status": "ready", "runners": []})
            assert "date" not in headers
        # With a body or a query, the app's route answers the same.
        reply = httpx.request("GET", url + "/livez?x=1", content=b"{}")
        assert (reply.status_code, reply.json()) == (200, {"status": "alive"})
        assert "date" in reply.headers  # the app's answer
        reply = httpx.get(url + "/readyz?x=1")
        assert (reply.status_code, reply.json()) == (200, {"status": "ready", "runners": []})
        assert "date" in reply.headers
