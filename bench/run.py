"""`make bench`: adaptive batching vs no batching, end to end through `kubento serve`.

For each bench service (bench/services/mlp.py: `heavy` and `light`) and each
mode (batching: max_batch_size 64, max_latency_ms 100; baseline: the same with
KUBENTO_MAX_BATCH_SIZE=1), start `kubento serve`, warm it up, then drive
POST /predict (one JSON row per request) with `wrk` at each concurrency and
read the runner's Prometheus metrics before and after each run. Prints one
table, plus the in-process limits (bare model at batch 64; the dispatcher
alone with 64 callers), and the batching/baseline ratio per concurrency.

wrk comes from Debian (`apt-get install wrk`); when it is missing and this
runs as root with apt-get, it is installed, otherwise the bench stops and says
how to get it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVICES = BENCH / "services"
PYTHON = sys.executable
sys.path.insert(0, str(SERVICES))

from lr_model import FEATURES as LR_FEATURES  # noqa: E402
from mlp_model import MODELS  # noqa: E402

from kubento._local.supervisor import free_port  # noqa: E402
from kubento._runner.processes import THREAD_VARS  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%(body)s]==]
local threads = {}
function setup(thread) table.insert(threads, thread) end
statuses = {}
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      merged[tostring(status)] = (merged[tostring(status)] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do
    table.insert(parts, string.format('"%%s":%%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%%d,"duration_us":%%d,"p50_us":%%d,"p99_us":%%d,"max_us":%%d,' ..
    '"socket_errors":%%d,"statuses":{%%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.timeout, table.concat(parts, ",")))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("bench: wrk not found; installing it with apt-get (Debian package wrk)", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run(install, env=env, check=True)
        found = shutil.which("wrk")
        if found:
            return found
    sys.exit(
        "bench: the load generator wrk is not installed. Install it (Debian/Ubuntu: "
        "`sudo apt-get install wrk`, macOS: `brew install wrk`) and run `make bench` again."
    )


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (from /proc: the bench runs on Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found.extend(children)
        frontier.extend(children)
    return found


def runner_metrics_url(serve_pid: int) -> str:
    """The runner's metrics port, read from the argv `kubento serve` gave it."""
    for pid in descendants(serve_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if "runner" in argv and "--metrics-port" in argv:
            return f"http://127.0.0.1:{argv[argv.index('--metrics-port') + 1]}/metrics"
    raise RuntimeError("kubento serve started no runner with a --metrics-port")


@contextlib.contextmanager
def kubento_serve(service: str, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(API URL, runner metrics URL) of `kubento serve` of a bench model, stopped on exit."""
    port = free_port()
    argv = [
        PYTHON,
        "-m",
        "kubento",
        "serve",
        SERVICE_OF[service],
        "--working-dir",
        str(SERVICES),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, f"kubento serve {service}")
        yield url, runner_metrics_url(process.pid)
    finally:
        stop_process(process)


def wait_ready(process: subprocess.Popen[bytes], url: str, what: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}")
        with (
            contextlib.suppress(urllib.error.URLError, OSError),
            urllib.request.urlopen(url + "/readyz", timeout=1) as reply,
        ):
            if reply.status == 200:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after 120 s")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


BENTOML_VERSION = "1.4.38"
BENTOML_BATCH_SIZE = "bentoml_service_adaptive_batch_size"
BENTOML_CLASSES = {
    "heavy": "bentoml_mlp:HeavyMLP",
    "light": "bentoml_mlp:LightMLP",
    "sklearn": "bentoml_lr:LogisticRegression",
}
SERVICE_OF = {"heavy": "mlp:heavy", "light": "mlp:light", "sklearn": "sklearn_lr:svc"}
FEATURES = {"heavy": MODELS["heavy"][0], "light": MODELS["light"][0], "sklearn": LR_FEATURES}
STORED = ("sklearn",)
"""Models served from a model store (Kubento's and BentoML's own): no in-process limit."""


def ensure_bentoml(venv: Path) -> None:
    """A virtual environment with BentoML for the side-by-side run; never Kubento's own."""
    python = venv / "bin" / "python"
    sklearn = f"scikit-learn=={sklearn_version()}"  # the same estimator code on both sides
    if (venv / "bin" / "bentoml").exists():
        has = subprocess.run([python, "-c", "import sklearn"], capture_output=True).returncode
        if has != 0:
            subprocess.run([python, "-m", "pip", "install", "-q", sklearn], check=True)
        return
    print(f"bench: creating {venv} with bentoml=={BENTOML_VERSION}", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"bentoml=={BENTOML_VERSION}", "numpy", sklearn], check=True)


def sklearn_version() -> str:
    from importlib.metadata import version

    return version("scikit-learn")


def save_stored_models(python: str, store: str, home: Path) -> dict[str, str]:
    """Save the stored bench models into a fresh store; the env that points servers at it."""
    variable = "KUBENTO_HOME" if store == "kubento" else "BENTOML_HOME"
    env = {**os.environ, variable: str(home)}
    subprocess.run([python, "lr_model.py", store], cwd=SERVICES, env=env, check=True)
    return {variable: str(home)}


@contextlib.contextmanager
def bentoml_serve(venv: Path, model: str, env: dict[str, str]) -> Iterator[tuple[str, str]]:
    """(URL, metrics URL) of `bentoml serve` on the same model, stopped on exit."""
    port = free_port()
    argv = [str(venv / "bin" / "bentoml"), "serve", BENTOML_CLASSES[model]]
    process = subprocess.Popen(
        [*argv, "--port", str(port)],
        cwd=SERVICES,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, f"bentoml serve {model}")
        yield url, url + "/metrics"
    finally:
        stop_process(process)


SAMPLE = re.compile(r"^((?:kubento_runner|bentoml_service)_[a-z_]+)\{([^}]*)\} (\S+)$")


def scrape(metrics_url: str) -> dict[str, float]:
    """Batching samples, keyed `name{labels}` (sums over runners, methods and workers)."""
    with urllib.request.urlopen(metrics_url, timeout=5) as reply:
        text = reply.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        keep = ",".join(
            part for part in labels.split(",") if part.startswith(("le=", "reason=")) and part
        )
        key = f"{name}{{{keep}}}"
        samples[key] = samples.get(key, 0.0) + float(value)
    return samples


def histogram_quantile(
    before: dict[str, float], after: dict[str, float], name: str, q: float
) -> float:
    """Upper bucket bound holding quantile q of the observations between two scrapes."""
    buckets = []
    for key, value in after.items():
        match = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', key)
        if match:
            buckets.append((float(match.group(1)), value - before.get(key, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return float("nan")
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


@dataclass
class Row:
    model: str
    mode: str
    connections: int
    ok_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    statuses: dict[str, int]
    mean_batch: float
    queue_wait_p99_ms: float
    load: float


def run_wrk(wrk: str, url: str, script: Path, connections: int, seconds: float) -> dict[str, Any]:
    argv = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url + "/predict",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    out = done.stdout
    for line in out.splitlines():
        if line.startswith("WRK_RESULT "):
            return dict(json.loads(line.removeprefix("WRK_RESULT ")))
    raise RuntimeError(f"wrk printed no result:\n{out}")


def measure(
    wrk: str,
    model: str,
    mode: str,
    server: contextlib.AbstractContextManager[tuple[str, str]],
    connections: list[int],
    seconds: float,
    script: Path,
) -> list[Row]:
    batch_size = BENTOML_BATCH_SIZE if mode == "bentoml" else "kubento_runner_batch_size"
    rows = []
    with server as (url, metrics_url):
        run_wrk(wrk, url, script, 16, min(3.0, seconds))  # warm-up: caches, latency model
        for conns in connections:
            load = os.getloadavg()[0]
            before = scrape(metrics_url)
            result = run_wrk(wrk, url, script, conns, seconds)
            after = scrape(metrics_url)
            duration = result["duration_us"] / 1e6
            statuses = {k: int(v) for k, v in result["statuses"].items()}
            ok = statuses.get("200", 0)
            batches = after.get(f"{batch_size}_count{{}}", 0) - before.get(
                f"{batch_size}_count{{}}", 0
            )
            batch_rows = after.get(f"{batch_size}_sum{{}}", 0) - before.get(
                f"{batch_size}_sum{{}}", 0
            )
            row = Row(
                model=model,
                mode=mode,
                connections=conns,
                ok_per_s=ok / duration,
                p50_ms=result["p50_us"] / 1000,
                p99_ms=result["p99_us"] / 1000,
                errors=result["requests"] - ok + result["socket_errors"],
                statuses=statuses,
                mean_batch=batch_rows / batches if batches else float("nan"),
                queue_wait_p99_ms=1000
                * histogram_quantile(before, after, "kubento_runner_queue_wait_seconds", 0.99),
                load=load,
            )
            rows.append(row)
            print(f"bench: {format_row(row)}", flush=True)
    return rows


def inprocess(model: str, seconds: float, callers: int, env: dict[str, str]) -> dict[str, Any]:
    argv = [PYTHON, str(BENCH / "inprocess.py"), model, "--seconds", str(seconds)]
    if callers:
        argv += ["--callers", str(callers)]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, env={**os.environ, **env}
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def describe_limit(limit: dict[str, Any]) -> str:
    text = (
        f"model alone at batch 64 = {limit['limit']['rows_per_s']:.0f} rows/s "
        f"({limit['limit']['ms_per_call']:.1f} ms/call)"
    )
    if "limit_all_threads" in limit:
        every = limit["limit_all_threads"]
        text += (
            f", with BLAS on every core {every['rows_per_s']:.0f} rows/s "
            f"({every['ms_per_call']:.1f} ms/call)"
        )
    dispatcher = limit["dispatcher"]
    return text + (
        f"; dispatcher alone (64 callers, no HTTP/gRPC) = {dispatcher['requests_per_s']:.0f} "
        f"req/s, mean batch {dispatcher['mean_batch']:.1f}"
    )


HEADER = (
    "| model | mode | conns | ok req/s | p50 ms | p99 ms | errors | mean batch | "
    "queue wait p99 ms | load | throughput ratio |"
)


def format_row(row: Row, ratio: str = "") -> str:
    errors = str(row.errors)
    failed = {k: v for k, v in row.statuses.items() if k != "200"}
    if failed:
        errors += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(failed.items())) + ")"
    return (
        f"| {row.model} | {row.mode} | {row.connections} | {row.ok_per_s:.0f} | "
        f"{row.p50_ms:.1f} | {row.p99_ms:.1f} | {errors} | {row.mean_batch:.1f} | "
        f"{row.queue_wait_p99_ms:.0f} | {row.load:.1f} | {ratio} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description="Kubento batching benchmark (see bench/README)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per load point")
    parser.add_argument("--models", default="heavy,light,sklearn")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--overload", type=int, default=1024, help="extra point, heavy model")
    parser.add_argument(
        "--runner-threads",
        type=int,
        default=1,
        help="OMP/OpenBLAS/MKL threads of the runner (0: the runtime's default); the API "
        "server and wrk share these cores, and spinning BLAS threads on an oversubscribed "
        "machine slow batched matmuls several times over",
    )
    parser.add_argument(
        "--bentoml",
        type=Path,
        metavar="VENV",
        help=f"also measure BentoML {BENTOML_VERSION} side by side, from this virtual "
        "environment (created with pip when missing; never Kubento's own)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    wrk = ensure_wrk()
    if args.bentoml:
        args.bentoml = args.bentoml.resolve()  # the servers run from another directory
        ensure_bentoml(args.bentoml)
    models = args.models.split(",")
    connections = [int(c) for c in args.connections.split(",")]

    threads: dict[str, str] = {}
    if args.runner_threads:
        threads = {name: str(args.runner_threads) for name in THREAD_VARS}

    limits = {}
    for model in models:
        if model in STORED:
            continue
        limits[model] = inprocess(model, min(args.seconds, 5.0), 64, threads)
        if threads:
            every = inprocess(model, min(args.seconds, 5.0), 0, {})
            limits[model]["limit_all_threads"] = every["limit"]
        print(f"bench: {model} in-process: {describe_limit(limits[model])}", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, dict[str, str]] = {"kubento": {}, "bentoml": {}}
        if any(model in STORED for model in models):
            stores["kubento"] = save_stored_models(PYTHON, "kubento", Path(tmp) / "kubento")
            if args.bentoml:
                bentoml_python = str(args.bentoml / "bin" / "python")
                stores["bentoml"] = save_stored_models(
                    bentoml_python, "bentoml", Path(tmp) / "bentoml"
                )
        for model in models:
            body = json.dumps(
                np.random.default_rng(1).standard_normal((1, FEATURES[model])).round(4).tolist()
            )
            script = Path(tmp) / f"{model}.lua"
            script.write_text(LUA % {"body": body})
            points = connections + ([args.overload] if model == "heavy" and args.overload else [])
            for mode, env in (
                ("batching", {**threads, **stores["kubento"]}),
                ("baseline", {**threads, **stores["kubento"], "KUBENTO_MAX_BATCH_SIZE": "1"}),
            ):
                server = kubento_serve(model, env)
                rows += measure(wrk, model, mode, server, points, args.seconds, script)
            if args.bentoml:
                bento_script = Path(tmp) / f"{model}-bentoml.lua"
                bento_script.write_text(LUA % {"body": json.dumps({"x": json.loads(body)})})
                server = bentoml_serve(args.bentoml, model, {**threads, **stores["bentoml"]})
                rows += measure(wrk, model, "bentoml", server, points, args.seconds, bento_script)

    print()
    for model in limits:
        print(f"{model} in-process: {describe_limit(limits[model])}")
    print()
    print(HEADER)
    print("|---" * (HEADER.count("|") - 1) + "|")
    baseline = {(r.model, r.connections): r for r in rows if r.mode == "baseline"}
    bentoml = {(r.model, r.connections): r for r in rows if r.mode == "bentoml"}
    for row in rows:
        ratios = []
        for name, reference in (("baseline", baseline), ("bentoml", bentoml)):
            other = reference.get((row.model, row.connections))
            if row.mode == "batching" and other is not None and other.ok_per_s > 0:
                ratios.append(f"{row.ok_per_s / other.ok_per_s:.2f}x {name}")
        print(format_row(row, ", ".join(ratios)))
    print(
        f"\nload: the 1-minute load average before each point on this {os.cpu_count()}-CPU "
        "machine; well above the CPU count, other processes share the cores and the numbers "
        "move. queue wait p99: upper histogram bucket, from the runner's metrics."
    )
    if args.json:
        args.json.write_text(
            json.dumps({"limits": limits, "rows": [row.__dict__ for row in rows]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
