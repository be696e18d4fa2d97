"""`make bench` part two: the four-service diamond of examples/graph through real processes.

`Graph` calls `ModelA` and `ModelB` concurrently; both call the shared `Embed`
(batchable, max_batch_size 64, max_latency_ms 20); one 256-float row per JSON request
`{"x": [[...]]}`. Drives `POST /classify` with wrk at each concurrency through
`kubento serve service:Graph` (one process per service) and, with `--bentoml VENV`, the
same diamond under `bentoml serve` (bench/services/bentoml_graph.py), counting BentoML's
error answers as responses as the issue's anchor does. Also measures one `depends()` hop:
an identity method, one row, sequential calls, in-process gRPC client to a served worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import envs  # noqa: E402
from run import LUA, PYTHON, ensure_wrk, stop_process, wait_ready  # noqa: E402

from kubento import contract  # noqa: E402
from kubento._local.supervisor import free_port  # noqa: E402

EXAMPLE = BENCH.parent / "examples" / "graph"
HOP_SERVICE = BENCH / "services"


@contextlib.contextmanager
def kubento_graph(env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    argv = [PYTHON, "-m", "kubento", "serve", "service:Graph", "--working-dir", str(EXAMPLE)]
    process = subprocess.Popen(
        [*argv, "--port", str(port), "--log-level", "warning"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, "kubento serve service:Graph")
        yield url
    finally:
        stop_process(process)


@contextlib.contextmanager
def bentoml_graph(venv: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [str(venv / "bin" / "bentoml"), "serve", "bentoml_graph:Graph", "--port", str(port)],
        cwd=BENCH / "services",
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, "bentoml serve bentoml_graph:Graph")
        yield url
    finally:
        stop_process(process)


def wrk_point(wrk: str, url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "5s"]
    done = subprocess.run(
        [*argv, "-s", str(script), url + "/classify"], capture_output=True, text=True
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRK_RESULT "):
            result = dict(json.loads(line.removeprefix("WRK_RESULT ")))
            ok = result["statuses"].get("200", 0)
            result["ok"] = ok
            result["errors"] = result["requests"] - ok + result["socket_errors"]
            result["per_s"] = result["requests"] / (result["duration_us"] / 1e6)
            return result
    raise RuntimeError(f"wrk printed no result: {done.stderr or done.stdout}")


def hop_overhead(calls: int) -> dict[str, float]:
    """p50/p99 of one depends() hop: an identity method on one row, called sequentially."""
    from kubento._remote.services import ServiceClient

    port, metrics = free_port(), free_port()
    argv = contract.service_command(
        "hop:Caller", "Identity", host="127.0.0.1", port=port, metrics_port=metrics
    )
    process = subprocess.Popen(
        [PYTHON, "-m", "kubento", *argv[1:], "--working-dir", str(HOP_SERVICE)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_ready(process, f"http://127.0.0.1:{metrics}", "the identity service")

        async def measure() -> list[float]:
            client = ServiceClient("identity", f"127.0.0.1:{port}", service="Identity", timeout_s=5)
            row = np.zeros((1, 256), dtype=np.float32)
            for _ in range(200):
                await client.call("same", (row,))
            took = []
            for _ in range(calls):
                started = time.perf_counter()
                await client.call("same", (row,))
                took.append(time.perf_counter() - started)
            await client.close()
            return took

        took = sorted(asyncio.run(measure()))
    finally:
        stop_process(process)
    return {
        "p50_ms": statistics.median(took) * 1e3,
        "p99_ms": took[int(len(took) * 0.99)] * 1e3,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description="Kubento service-graph benchmark")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", default="64")
    parser.add_argument("--bentoml", type=Path, metavar="VENV")
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads per process")
    args = parser.parse_args()
    wrk = ensure_wrk()
    env = {name: str(args.threads) for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    body = json.dumps({"x": np.random.default_rng(1).standard_normal((1, 256)).round(4).tolist()})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "graph.lua"
        script.write_text(LUA % {"body": body})
        servers: list[tuple[str, Any]] = [("kubento", lambda: kubento_graph(env))]
        if args.bentoml:
            venv = envs.ensure("bentoml", args.bentoml)
            servers.append(("bentoml", lambda: bentoml_graph(venv, env)))
        for name, start in servers:
            with start() as url:
                wrk_point(wrk, url, script, 16, 3)  # warm-up
                for connections in (int(c) for c in args.connections.split(",")):
                    point = wrk_point(wrk, url, script, connections, args.seconds)
                    rows.append((name, connections, point))
                    print(f"bench graph: {name} c={connections} {point}", flush=True)
    hop = hop_overhead(2000)
    print("\n| server | connections | responses/s | 200s | errors | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, connections, p in rows:
        print(
            f"| {name} | {connections} | {p['per_s']:.0f} | {p['ok']} | {p['errors']} | "
            f"{p['p50_us'] / 1e3:.1f} | {p['p99_us'] / 1e3:.1f} |"
        )
    print(
        f"\none depends() hop (identity, one row): p50 {hop['p50_ms']:.3f} ms, "
        f"p99 {hop['p99_ms']:.3f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
