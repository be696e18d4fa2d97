"""Overload: what callers of the heavy model see far past capacity. `kubento serve mlp:heavy`
with an end-to-end request timeout (`KUBENTO_REQUEST_TIMEOUT_S`, counted from a request's
first byte at the API server); wrk holds CONNECTIONS keep-alive
connections POSTing one JSON row after another for SECONDS, and alongside it a few sampling
connections from this process (Python) record each answer's status and time, since wrk
reports latency only over all answers.

Reports, from the samples, the share of admitted requests (200) answered within the timeout
(target: all) and how fast the excess is turned away (429/503; target: p99 under 5 ms): as
the samplers saw it, and as the API server measured it from each request's first byte
(`kubento_api_shed_duration_seconds`; the difference is the time a request waited in its
socket before the loop read it). Then wrk's totals, and how fast `/livez` and `/readyz`
answer on the HTTP port, on the probe port API pods are probed on, and on the runner's
metrics port, where runner pods are (target: 100 ms).
Everything shares the machine's cores with the server.

    .venv/bin/python bench/overload.py [--connections 1024] [--seconds 20] [--timeout-ms 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from run import (  # bench/run.py
    FEATURES,
    LUA,
    bucket_counts,
    ensure_wrk,
    free_port,
    histogram_quantile,
    kubento_serve,
    run_wrk,
    scrape,
)

from kubento import contract

SAMPLERS = 64
"""Sampling connections, alongside wrk's: enough that the few requests turned away at
capacity show up among their answers."""
PROBE_EVERY_S = 0.1
PROBES = (contract.LIVENESS_PATH, contract.READINESS_PATH)
"""Asked on the HTTP port, where the event loop answers them, on the probe port, where a
process of their own does (`--probe-port`, as API pods are probed), and on the runner's
metrics port (as runner pods are)."""


async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    """Send `request`, read the whole answer; its status."""
    writer.write(request)
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


async def connection(
    port: int, request: bytes, pause_s: float, until: float, seen: list[tuple[int, float]]
) -> None:
    """One keep-alive connection asking `request` every `pause_s`, as a client does."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            started = time.monotonic()
            seen.append((await answer(reader, writer, request), time.monotonic() - started))
            await asyncio.sleep(pause_s)  # a sample, not load
    except (ConnectionError, asyncio.IncompleteReadError):
        seen.append((-1, time.monotonic() - started))
    finally:
        writer.close()


def probe_timings(port: int, path: str, seconds: float) -> list[tuple[int, float]]:
    """(status, seconds) of `GET path` every PROBE_EVERY_S for `seconds`, a new connection
    each time as the kubelet's probes are, timed from the connect. Run in a process of its
    own, so that the samplers' event loop does not delay it."""
    request = f"GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n".encode()
    seen: list[tuple[int, float]] = []
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        started = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(request)
                reply = sock.makefile("rb").read()  # the server closes after its answer
            seen.append((int(reply.split(maxsplit=2)[1]), time.monotonic() - started))
        except (OSError, IndexError, ValueError):
            seen.append((-1, time.monotonic() - started))
        time.sleep(PROBE_EVERY_S)
    return seen


def port_of(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None, url
    return port


def quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


async def drive(url: str, connections: int, seconds: float) -> list[tuple[int, float]]:
    """(status, seconds) of the sampled POSTs."""
    port = port_of(url)
    body = json.dumps([[0.5] * FEATURES["heavy"]]).encode()
    post = (
        f"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    seen: list[tuple[int, float]] = []
    until = time.monotonic() + seconds
    await asyncio.gather(*(connection(port, post, 0.02, until, seen) for _ in range(connections)))
    return seen


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--timeout-ms", type=int, default=1000)
    args = parser.parse_args()
    wrk = ensure_wrk()
    env = {contract.ENV_REQUEST_TIMEOUT: str(args.timeout_ms / 1000)}
    probe_port = free_port()
    with (
        tempfile.TemporaryDirectory() as tmp,
        kubento_serve("heavy", env, ["--probe-port", str(probe_port)]) as server,
    ):
        url = server.url
        script = Path(tmp) / "post.lua"
        body = json.dumps([[0.5] * FEATURES["heavy"]])
        script.write_text(LUA % {"body": body})
        run_wrk(wrk, url, script, 16, 3)  # warm-up: the latency model learns the batch costs
        before = scrape(url + contract.METRICS_PATH)
        with ThreadPoolExecutor(1) as pool:
            load = pool.submit(run_wrk, wrk, url, script, args.connections, args.seconds)
            time.sleep(1)  # sample once the load is on
            ports = {
                "http": port_of(url),
                "probes": probe_port,
                "runner": port_of(server.metrics_url),
            }
            with ProcessPoolExecutor(len(ports) * len(PROBES)) as prober:
                asked = {
                    (name, path): prober.submit(probe_timings, port, path, args.seconds - 2)
                    for name, port in ports.items()
                    for path in PROBES
                }
                seen = asyncio.run(drive(url, SAMPLERS, args.seconds - 2))
                probes = {key: future.result() for key, future in asked.items()}
            result = load.result()
        after = scrape(url + contract.METRICS_PATH)
    statuses = Counter(status for status, _ in seen)
    served = [s for status, s in seen if status == 200]
    refused = [s for status, s in seen if status in (429, 503)]
    timeout_s = args.timeout_ms / 1000
    met = sum(s <= timeout_s for s in served)
    duration = result["duration_us"] / 1e6
    print(f"heavy, {args.connections} connections (wrk), {duration:.0f} s, timeout {timeout_s} s")
    print(
        f"wrk: {result['requests'] / duration:.0f} answers/s, statuses {result['statuses']}, "
        f"p50 {result['p50_us'] / 1000:.0f} ms, p99 {result['p99_us'] / 1000:.0f} ms"
    )
    print(f"samples ({SAMPLERS} connections): {dict(sorted(statuses.items()))}")
    print(
        f"admitted (200): {len(served)}, within the timeout: {met} "
        f"({100 * met / max(1, len(served)):.1f}%), p50 {1000 * quantile(served, 0.5):.0f} ms, "
        f"p99 {1000 * quantile(served, 0.99):.0f} ms"
    )
    print(
        f"turned away (429/503): {len(refused)}, time to the answer p50 "
        f"{1000 * quantile(refused, 0.5):.1f} ms, p99 {1000 * quantile(refused, 0.99):.1f} ms"
    )
    latency = "kubento_api_request_duration_seconds"
    admitted = 'status="200"'
    buckets = dict(bucket_counts(before, after, latency, admitted))
    answered, met_at_server = buckets.get(float("inf"), 0.0), buckets.get(timeout_s)
    if answered and met_at_server is not None:
        print(
            f"200s at the server (first byte to the answer): {answered:.0f}, within the "
            f"timeout {met_at_server:.0f} ({100 * met_at_server / answered:.1f}%), p99 <= "
            f"{1000 * histogram_quantile(before, after, latency, 0.99, admitted):g} ms"
        )
    shed = "kubento_api_shed_duration_seconds"
    for status in ("429", "503", "504"):
        kept = f'status="{status}"'
        count = f"{shed}_count{{{kept}}}"
        if not (sheds := after.get(count, 0.0) - before.get(count, 0.0)):
            continue
        print(
            f"{status}s at the server (first byte to the answer, upper bucket): {sheds:.0f}, "
            f"p50 <= {1000 * histogram_quantile(before, after, shed, 0.5, kept):g} ms, "
            f"p99 <= {1000 * histogram_quantile(before, after, shed, 0.99, kept):g} ms"
        )
    for (port, path), answers in probes.items():
        ok = [s for status, s in answers if status == 200]
        print(
            f"{path} on the {port} port every {PROBE_EVERY_S:g} s: "
            f"{len(ok)} of {len(answers)} answered 200, "
            f"p50 {1000 * quantile(ok, 0.5):.1f} ms, p99 {1000 * quantile(ok, 0.99):.1f} ms, "
            f"max {1000 * max(ok, default=0):.1f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
