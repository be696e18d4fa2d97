"""`--workers N`: N runner processes behind one port, each serving calls, stopped together."""

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from kubento import contract
from kubento._local.supervisor import free_port
from kubento._remote.client import RunnerClient
from tests.integration.processes import (
    RunnerProcess,
    alive,
    children_of,
    spawn,
    stop,
    wait_http,
)


@pytest.fixture
def two_workers() -> Iterator[RunnerProcess]:
    runner = RunnerProcess("tagger:svc", "tagger", workers=2)
    runner.start()
    try:
        yield runner
    finally:
        runner.stop()


async def call_many(target: str, method: str, count: int, *args: object) -> list[object]:
    # 16 connections: the kernel hands each to one worker, so all 16 landing on
    # the same one of two workers has a chance of 2**-15.
    client = RunnerClient("tagger", target, connections=16)
    try:
        return list(await asyncio.gather(*(client.call(method, args) for _ in range(count))))
    finally:
        await client.close()


def test_calls_are_served_by_every_worker_process(two_workers: RunnerProcess) -> None:
    assert two_workers.process is not None
    workers = children_of(two_workers.process.pid)
    assert len(workers) == 2
    # Only the first worker is known to be ready; the second may still be loading
    # and not yet listening, so ask with fresh connections until it answers too.
    answered_by: set[object] = set()
    deadline = time.monotonic() + 30
    while answered_by != workers and time.monotonic() < deadline:
        answered_by |= set(asyncio.run(call_many(two_workers.target, "whoami", 64)))
    assert answered_by == workers


def test_batched_calls_through_several_workers_keep_their_rows(two_workers: RunnerProcess) -> None:
    async def run() -> None:
        client = RunnerClient("tagger", two_workers.target, connections=16)
        rows = [np.full((1 + i % 3, 3), float(i)) for i in range(200)]
        try:
            answers = await asyncio.gather(*(client.call("tag", (x,)) for x in rows))
        finally:
            await client.close()
        for x, answer in zip(rows, answers, strict=True):
            np.testing.assert_array_equal(answer, x * 2 + 1)

    asyncio.run(run())


def test_sigterm_stops_every_worker(two_workers: RunnerProcess) -> None:
    assert two_workers.process is not None
    workers = children_of(two_workers.process.pid)
    two_workers.stop(signal.SIGTERM)
    assert two_workers.process.returncode == 0
    assert not any(alive(pid) for pid in workers)


def test_a_dead_worker_takes_the_pod_down_so_kubernetes_restarts_it(
    two_workers: RunnerProcess,
) -> None:
    assert two_workers.process is not None
    victim = sorted(children_of(two_workers.process.pid))[-1]
    os.kill(victim, signal.SIGKILL)
    assert two_workers.process.wait(timeout=30) != 0


def test_api_server_with_several_workers_serves_and_stops_cleanly() -> None:
    runner = RunnerProcess("tagger:svc", "tagger")
    runner.start()
    port = free_port()
    argv = [*contract.api_command("tagger:svc", host="127.0.0.1", port=port), "--workers", "2"]
    api = spawn(
        argv, {contract.ENV_RUNNER_MAP: contract.encode_runner_map({"tagger": runner.target})}
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + contract.READINESS_PATH, watch=[api])
        assert len(children_of(api.pid)) >= 2
        replies = [httpx.post(url + "/tag", json=[[float(i), 0.0, 1.0]]) for i in range(20)]
        assert [r.json() for r in replies] == [[[2.0 * i + 1, 1.0, 3.0]] for i in range(20)]
        children = children_of(api.pid)
        stop(api)
        assert api.returncode == 0
        # multiprocessing's resource tracker leaves a moment after its parent.
        deadline = time.monotonic() + 5
        while any(alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(alive(pid) for pid in children)
    finally:
        stop(api)
        runner.stop()


def test_each_worker_gets_its_own_slice_of_the_pods_gpus() -> None:
    runner = RunnerProcess(
        "gpu_probe:svc", "vision", env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, workers=2
    )
    runner.start()
    try:
        seen: set[object] = set()
        deadline = time.monotonic() + 30
        while len(seen) < 2 and time.monotonic() < deadline:
            seen |= set(asyncio.run(call_many(runner.target, "devices", 64)))
        assert seen == {"0,1", "2,3"}
        assert "gpus=0,1" in runner.log() and "gpus=2,3" in runner.log()
    finally:
        runner.stop()


def test_a_cpu_runnable_sees_no_gpu_even_when_the_pod_has_some() -> None:
    runner = RunnerProcess("gpu_probe:svc", "tokens", env={"NVIDIA_VISIBLE_DEVICES": "GPU-a,GPU-b"})
    runner.start()
    try:
        assert asyncio.run(call_many(runner.target, "devices", 1)) == [""]
    finally:
        runner.stop()


def test_each_worker_logs_its_share_of_the_cpus_and_its_threads_at_startup(
    two_workers: RunnerProcess,
) -> None:
    from kubento._runner.cpus import available_cpus

    share = max(1, available_cpus().count // 2)
    expected = (
        f"runner=tagger event=threads cpus={share} cpus_from=--workers_share lanes=1..1 "
        "threads_per_call=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"
    )  # RowTagger does not declare SUPPORTS_CPU_MULTI_THREADING: one lane, one thread
    deadline = time.monotonic() + 30
    while two_workers.log().count(expected) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert two_workers.log().count(expected) == 2, two_workers.log()
