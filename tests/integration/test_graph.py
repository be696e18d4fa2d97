"""Service graphs through real processes: one gRPC worker per dependency service, the
entry as the HTTP API server, wired by the runner map as `kubento serve` wires them."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from kubento import contract
from kubento._local.supervisor import free_port
from tests.integration.processes import spawn, stop, wait_http

MODULE = "graph"
CALLERS = 512


class Worker:
    """One dependency service's worker process, restartable on the same port."""

    def __init__(self, entry: str, name: str, env: dict[str, str], logs: Path) -> None:
        self.entry, self.name, self.env = entry, name, env
        self.port, self.metrics_port = free_port(), free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = logs / f"{name}.log"

    @property
    def label(self) -> str:
        return contract.service_label(self.name)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, runner_map: dict[str, str]) -> None:
        argv = contract.service_command(
            self.entry, self.name, host="127.0.0.1", port=self.port, metrics_port=self.metrics_port
        )
        env = {**self.env, contract.ENV_RUNNER_MAP: contract.encode_runner_map(runner_map)}
        self.process = spawn(argv, env, log_path=self.log_path)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait(self) -> None:
        assert self.process is not None
        url = f"http://127.0.0.1:{self.metrics_port}{contract.READINESS_PATH}"
        wait_http(url, timeout=60, watch=[self.process])

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)


class Graph:
    def __init__(self, url: str, workers: dict[str, Worker], runner_map: dict[str, str]) -> None:
        self.url, self.workers, self.runner_map = url, workers, runner_map

    def restart(self, name: str) -> None:
        worker = self.workers[name]
        worker.start(self.runner_map)
        worker.wait()


@pytest.fixture(scope="module")
def flaky_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("graph") / "mode"


def running_graph(entry: str, services: list[str], env: dict[str, str]) -> Iterator[Graph]:
    logs = Path(tempfile.mkdtemp(prefix="graph-logs-"))
    workers = {name: Worker(entry, name, env, logs) for name in services}
    runner_map = {w.label: w.target for w in workers.values()}
    port = free_port()
    api = None
    try:
        for worker in workers.values():  # all at once: two cores load them in parallel
            worker.start(runner_map)
        api = spawn(
            contract.api_command(entry, host="127.0.0.1", port=port),
            {**env, contract.ENV_RUNNER_MAP: contract.encode_runner_map(runner_map)},
        )
        for worker in workers.values():
            worker.wait()
        url = f"http://127.0.0.1:{port}"
        wait_http(url + contract.READINESS_PATH, timeout=60, watch=[api])
        yield Graph(url, workers, runner_map)
    finally:
        if api is not None:
            stop(api)
        for worker in workers.values():
            worker.stop()
        shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="module")
def diamond() -> Iterator[Graph]:
    yield from running_graph(f"{MODULE}:Diamond", ["Embed", "ModelA", "ModelB"], {})


@pytest.fixture(scope="module")
def fragile(flaky_file: Path) -> Iterator[Graph]:
    env = {"GRAPH_FLAKY_FILE": str(flaky_file)}
    yield from running_graph(f"{MODULE}:Fragile", ["Unreliable", "Embed", "Relay"], env)


def rows(i: int) -> list[list[float]]:
    return [[float(i), i + 0.5, -float(i), i / 7.0]]


async def many(url: str, route: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        return await asyncio.gather(*(client.post(route, json=body) for body in bodies))


def test_diamond_answers_each_of_512_concurrent_callers_with_its_own_rows(diamond: Graph) -> None:
    bodies = [{"x": rows(i), "tag": str(i)} for i in range(CALLERS)]
    replies = asyncio.run(many(diamond.url, "/score", bodies))
    for i, reply in enumerate(replies):
        assert reply.status_code == 200, reply.text
        x = np.asarray(rows(i), dtype=np.float32)
        body = reply.json()
        assert body["tag"] == str(i)
        np.testing.assert_allclose(body["a"], (x + 1) * 2, rtol=1e-6)
        np.testing.assert_allclose(body["b"], -(x + 1), rtol=1e-6)


def batch_stats(worker: Worker) -> tuple[float, float]:
    """(model calls, rows) of a service worker's batchable methods, from its metrics."""
    text = httpx.get(f"http://127.0.0.1:{worker.metrics_port}{contract.METRICS_PATH}").text
    calls = rows_ = 0.0
    for line in text.splitlines():
        if line.startswith("kubento_runner_batch_size_count"):
            calls += float(line.rsplit(" ", 1)[1])
        elif line.startswith("kubento_runner_batch_size_sum"):
            rows_ += float(line.rsplit(" ", 1)[1])
    return calls, rows_


def test_the_shared_service_batches_rows_from_both_of_its_callers(diamond: Graph) -> None:
    calls_before, rows_before = batch_stats(diamond.workers["Embed"])
    bodies = [{"x": rows(i)} for i in range(256)]
    replies = asyncio.run(many(diamond.url, "/score", bodies))
    assert all(reply.status_code == 200 for reply in replies)
    calls, rows_ = batch_stats(diamond.workers["Embed"])
    assert rows_ - rows_before == 2 * 256  # ModelA's and ModelB's rows, each once
    assert (rows_ - rows_before) / (calls - calls_before) > 2  # batched, not one by one


def test_sequential_calls_through_two_services_return_each_callers_rows(diamond: Graph) -> None:
    bodies = [{"x": rows(i)} for i in range(CALLERS)]
    replies = asyncio.run(many(diamond.url, "/chain", bodies))
    for i, reply in enumerate(replies):
        assert reply.status_code == 200, reply.text
        x = np.asarray(rows(i), dtype=np.float32)
        np.testing.assert_allclose(reply.json(), -((x + 1) * 2 + 1), rtol=1e-6)


def test_a_bad_field_is_a_400_naming_it(diamond: Graph) -> None:
    reply = httpx.post(diamond.url + "/score", json={"x": [[1.0, 2.0]]})
    assert reply.status_code == 400
    assert reply.json()["error"] == "field 'x': expected an array of shape (*, 4), got (1, 2)"
    reply = httpx.post(diamond.url + "/score", json={"rows": [[1.0, 2.0, 3.0, 4.0]]})
    assert reply.status_code == 400 and "field 'x'" in reply.json()["error"]


def test_a_single_array_api_takes_and_answers_npy(diamond: Graph) -> None:
    import io

    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    buffer = io.BytesIO()
    np.save(buffer, x)
    npy = "application/octet-stream"
    reply = httpx.post(
        diamond.url + "/chain",
        content=buffer.getvalue(),
        headers={"content-type": npy, "accept": npy},
    )
    assert reply.status_code == 200 and reply.headers["content-type"] == npy
    np.testing.assert_array_equal(np.load(io.BytesIO(reply.content)), -((x + 1) * 2 + 1))


def test_readiness_covers_the_entrys_dependencies(diamond: Graph) -> None:
    reply = httpx.get(diamond.url + contract.READINESS_PATH)
    assert reply.json() == {"status": "ready", "runners": ["model-a", "model-b"]}


def post_both(url: str) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    reply = httpx.post(url + "/both", json={"x": rows(1)}, timeout=30)
    return reply, time.monotonic() - started


def test_a_raising_dependency_is_a_500_naming_it_and_recovers(
    fragile: Graph, flaky_file: Path
) -> None:
    flaky_file.write_text("raise")
    reply, _ = post_both(fragile.url)
    assert reply.status_code == 500
    assert (
        "service 'Unreliable' method 'work' failed: ValueError: the model broke"
        in (reply.json()["error"])
    )
    flaky_file.write_text("ok")
    reply, _ = post_both(fragile.url)
    assert reply.status_code == 200, reply.text


def test_the_request_id_reaches_a_dependency_of_a_dependency(
    fragile: Graph, flaky_file: Path
) -> None:
    """API -> Relay's worker -> Unreliable's worker: the last hop logs the caller's id."""
    flaky_file.write_text("raise")
    try:
        reply = httpx.post(
            fragile.url + "/relayed",
            json={"x": rows(2)},
            headers={"x-request-id": "two-hops-42"},
            timeout=30,
        )
    finally:
        flaky_file.write_text("ok")
    assert reply.status_code == 500, reply.text
    assert reply.json()["detail"] == {"request_id": "two-hops-42"}
    deadline = time.monotonic() + 10
    while "request_id=two-hops-42 " not in fragile.workers["Unreliable"].log():
        assert time.monotonic() < deadline, fragile.workers["Unreliable"].log()[-2000:]
        time.sleep(0.1)
    assert "request_id=two-hops-42 " in fragile.workers["Relay"].log()


def test_a_dependency_slower_than_the_deadline_is_a_504_within_it(
    fragile: Graph, flaky_file: Path
) -> None:
    flaky_file.write_text("slow")  # 3 s of work; the entry's traffic timeout is 1 s
    reply, took = post_both(fragile.url)
    assert reply.status_code == 504, reply.text
    assert reply.json()["error"] == (
        "service 'Unreliable' method 'work' did not answer within the request's time"
    )
    assert reply.json()["detail"] == {"dependency": "Unreliable"}
    assert took < 1.5
    # The other branch does not wait for it.
    started = time.monotonic()
    other = httpx.post(fragile.url + "/embed_only", json={"x": rows(2)}, timeout=30)
    assert other.status_code == 200 and time.monotonic() - started < 0.5
    flaky_file.write_text("ok")
    time.sleep(3)  # let the slow call drain from the worker's single thread
    assert post_both(fragile.url)[0].status_code == 200


def test_a_dependency_that_is_down_is_a_503_naming_it_and_recovers(fragile: Graph) -> None:
    fragile.workers["Unreliable"].stop()
    try:
        reply, took = post_both(fragile.url)
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"].startswith("service 'Unreliable' method 'work' is unavailable")
        assert reply.headers["retry-after"] == "1"
        assert took < 1.5
        assert httpx.post(fragile.url + "/embed_only", json={"x": rows(2)}).status_code == 200
    finally:
        fragile.restart("Unreliable")
    deadline = time.monotonic() + 10
    while post_both(fragile.url)[0].status_code != 200:
        assert time.monotonic() < deadline, "never recovered"
        time.sleep(0.2)


def test_an_entry_without_an_address_for_a_dependency_refuses_to_start() -> None:
    port = free_port()
    api = spawn(
        contract.api_command(f"{MODULE}:Diamond", host="127.0.0.1", port=port),
        {contract.ENV_RUNNER_MAP: contract.encode_runner_map({"model-a": "127.0.0.1:1"})},
    )
    try:
        assert api.wait(timeout=60) == 2
    finally:
        stop(api)


def test_a_dependency_service_without_an_address_for_its_own_dependency_exits(
    tmp_path: Path,
) -> None:
    worker = Worker(f"{MODULE}:Diamond", "ModelA", {}, tmp_path)
    worker.start({})
    assert worker.process is not None
    try:
        assert worker.process.wait(timeout=60) != 0
    finally:
        worker.stop()


def serve_graph(*extra: str) -> tuple[subprocess.Popen[str], str]:
    import sys

    from tests.integration.processes import SERVICES_DIR

    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kubento", "serve", f"{MODULE}:Diamond"),
            *("--working-dir", SERVICES_DIR, "--port", str(port), *extra),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("extra", [(), ("--single-process",)], ids=["processes", "one-process"])
def test_kubento_serve_runs_the_graph(extra: tuple[str, ...]) -> None:
    from tests.integration.processes import children_of

    process, url = serve_graph(*extra)
    try:
        wait_http(url + contract.READINESS_PATH, timeout=90, watch=[process])  # type: ignore[list-item]
        reply = httpx.post(url + "/chain", json={"x": rows(3)})
        x = np.asarray(rows(3), dtype=np.float32)
        np.testing.assert_allclose(reply.json(), -((x + 1) * 2 + 1), rtol=1e-6)
        # One process per service (three dependencies and the API server), or none.
        assert len(children_of(process.pid)) == (0 if extra else 4)
    finally:
        stop(process)  # type: ignore[arg-type]
    assert process.returncode == 0


def test_a_service_outside_the_graph_is_called_over_http_and_named_when_down(
    diamond: Graph,
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    api = spawn(
        contract.api_command(f"{MODULE}:Outside", host="127.0.0.1", port=port),
        {"GRAPH_DIAMOND_URL": diamond.url},
    )
    down_port = free_port()
    down = spawn(
        contract.api_command(f"{MODULE}:Outside", host="127.0.0.1", port=down_port),
        {"GRAPH_DIAMOND_URL": f"http://127.0.0.1:{free_port()}"},
    )
    try:
        wait_http(url + contract.READINESS_PATH, timeout=60, watch=[api])
        x = np.asarray(rows(5), dtype=np.float32)
        for route in ("/relay", "/relay_sync"):
            reply = httpx.post(url + route, json={"x": rows(5)})
            assert reply.status_code == 200, reply.text
            np.testing.assert_allclose(reply.json(), -((x + 1) * 2 + 1), rtol=1e-6)
        wait_http(f"http://127.0.0.1:{down_port}{contract.READINESS_PATH}", watch=[down])
        reply = httpx.post(f"http://127.0.0.1:{down_port}/relay", json={"x": rows(5)})
        assert reply.status_code == 503
        assert reply.json()["error"].startswith("service at http://127.0.0.1:")
        assert "api 'chain' is unavailable" in reply.json()["error"]
    finally:
        stop(api)
        stop(down)


def test_serve_runs_runners_and_services_together_and_names_a_dying_service() -> None:
    import os
    import signal
    import sys

    from tests.integration.processes import SERVICES_DIR, children_of

    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "kubento", "serve", f"{MODULE}:Mixed"),
            *("--working-dir", SERVICES_DIR, "--port", str(port)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + contract.READINESS_PATH, timeout=90, watch=[process])  # type: ignore[list-item]
        reply = httpx.post(url + "/both", json={"x": rows(4)})
        x = np.asarray(rows(4), dtype=np.float32)
        np.testing.assert_allclose(reply.json(), (x + 1) * 3, rtol=1e-6)
        embed = next(
            pid
            for pid in children_of(process.pid)
            if b"Embed" in Path(f"/proc/{pid}/cmdline").read_bytes()
        )
        os.kill(embed, signal.SIGKILL)
        assert process.wait(timeout=30) == 1
        assert process.stderr is not None
        assert "service 'Embed' killed by signal 9" in process.stderr.read()
    finally:
        stop(process)  # type: ignore[arg-type]


def test_the_entry_serves_its_openapi_document(diamond: Graph) -> None:
    reply = httpx.get(diamond.url + "/docs.json")
    assert reply.status_code == 200
    assert set(reply.json()["paths"]) >= {"/score", "/chain"}
