"""Memory stays bounded under a flood of large request bodies, is given back afterwards,
and the API's probes keep answering meanwhile (real API and runner processes)."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from kubento import contract
from kubento._local.supervisor import free_port
from tests.integration.processes import children_of, running_service

MIB = 1024 * 1024
ROWS = 30  # 1 MiB a row (services/wide.py): a 30 MiB .npy, just under the 32 MiB default
CALLERS = 40
ROUNDS = 3

PROBE = """
import http.client, sys, time
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
while True:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    started = time.monotonic()
    connection.request("GET", path)
    status = connection.getresponse().status
    print(status, time.monotonic() - started, flush=True)
    connection.close()
    time.sleep(0.05)
"""


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for pid {pid}")


def settled_rss(pid: int, bound: float, within_s: float = 10.0) -> float:
    """The process's RSS once it is under `bound`, or what it is after `within_s`."""
    ends = time.monotonic() + within_s
    while (rss := rss_mib(pid)) > bound and time.monotonic() < ends:
        time.sleep(0.1)
    return rss


async def flood(url: str, body: bytes) -> list[int]:
    limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
    headers = {"content-type": "application/octet-stream"}
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        statuses = []
        for _ in range(ROUNDS):
            replies = await asyncio.gather(
                *(client.post("/mean", content=body, headers=headers) for _ in range(CALLERS))
            )
            for reply in replies:
                if reply.status_code == 200:
                    np.testing.assert_allclose(reply.json(), [[1.0]] * ROWS)
                else:
                    assert reply.status_code == 503, reply.text
                    assert "budget" in reply.json()["error"]
            statuses += [reply.status_code for reply in replies]
    return statuses


def test_large_bodies_are_bounded_given_back_and_never_stall_the_probes() -> None:
    buffer = io.BytesIO()
    np.save(buffer, np.ones((ROWS, 256 * 1024), dtype=np.float32))
    body = buffer.getvalue()
    in_flight = contract.BODIES_IN_FLIGHT * contract.DEFAULT_MAX_REQUEST_BYTES / MIB  # 128 MiB
    probe_port = free_port()
    with running_service("wide:svc", ["wide"], probe_port=probe_port) as (url, workers):
        process = workers["wide"].process
        assert process is not None
        runner = process.pid
        (api,) = children_of(os.getpid()) - {runner}
        start = {"api": rss_mib(api), "runner": rss_mib(runner)}
        host, port = url.removeprefix("http://").split(":")
        # The HTTP port's /livez, and the probe port's, which is where pods are probed.
        probers = {
            where: subprocess.Popen(
                [sys.executable, "-c", PROBE, host, str(at), contract.LIVENESS_PATH],
                stdout=subprocess.PIPE,
                text=True,
            )
            for where, at in (("http", port), ("probes", probe_port))
        }
        try:
            statuses = asyncio.run(flood(url, body))
        finally:
            for prober in probers.values():
                prober.kill()
        probes = {
            where: [line.split() for line in prober.communicate()[0].splitlines()]
            for where, prober in probers.items()
        }
        peak = {"api": rss_mib(api, "VmHWM"), "runner": rss_mib(runner, "VmHWM")}
        after = {
            "api": settled_rss(api, start["api"] + in_flight / 8),
            "runner": settled_rss(runner, start["runner"] + in_flight / 8),
        }
    served = statuses.count(200)
    assert served >= ROUNDS, f"{served} served"  # the budget admits some of every round
    # Each admitted body is held a few times over (the body, its array, the gRPC message and
    # its wire copy); the bodies in flight are capped, so memory is too.
    assert peak["api"] - start["api"] < 8 * in_flight, (start, peak)
    assert peak["runner"] - start["runner"] < 8 * in_flight, (start, peak)
    # Freed memory goes back to the system, not kept by the allocator: without the trim both
    # stayed 160-210 MiB above their start; with it, 10-154 on a loaded machine (one run in
    # ten over 128 for the API); with the mmap threshold pinned too, both settle within
    # 2-9 MiB of their start.
    assert after["api"] - start["api"] < in_flight / 4, (start, after)
    assert after["runner"] - start["runner"] < in_flight / 4, (start, after)
    print(f"rss MiB start {start} peak {peak} after {after}")
    for where, answers in probes.items():
        latencies = sorted(float(seconds) for status, seconds in answers if status == "200")
        assert len(latencies) == len(answers) > 10, (where, answers)
        p99 = latencies[int(len(latencies) * 0.99)]
        # Kubernetes' default probe timeout is 1 s; large bodies are decoded and encoded off
        # the event loop, and the probe port does not wait for the loop at all.
        took = f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms"
        assert p99 < 1.0, f"/livez on the {where} port: {took}"
        print(f"/livez on the {where} port: {took}")
