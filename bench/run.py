"""`make bench`: Kubento against no batching, BentoML and Ray Serve, end to end, in one run.

For each bench service (bench/services/mlp.py: `heavy` and `light`, written with
Runner defaults but max_batch_size 64, max_latency_ms 100) and each mode
(batching: `kubento serve` as a user gets it; baseline: the same with
KUBENTO_MAX_BATCH_SIZE=1; bentoml and ray: BentoML 1.4.38 and Ray Serve 2.60 on
the same model, batch size and wait, each from its own venv that `bench/envs.py`
creates in the cache), start the server, warm it up, then drive POST /predict (one
JSON row per request) with `wrk` at each concurrency and read the server's batch
metrics before and after each run. Prints one table with the ratios against every
other mode at the same concurrency, plus the in-process limits (bare model at
batch 64 on one thread, on all cores, and as one lane per core; the dispatcher
alone with 64 callers).

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
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SERVICES = BENCH / "services"
PYTHON = sys.executable
sys.path.insert(0, str(SERVICES))

import envs  # noqa: E402
from lr_model import FEATURES as LR_FEATURES  # noqa: E402
from mlp_model import MODELS  # noqa: E402

from kubento._local.supervisor import free_port  # noqa: E402
from kubento._runner.cpus import THREAD_VARS  # noqa: E402

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


@dataclass(frozen=True)
class Server:
    url: str
    metrics_url: str
    pid: int
    """The server's process; its CPU is this process's and every descendant's."""


CPU_TICK_S = 1 / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) so far of `pid` and its descendants: Kubento's runner
    processes (`kubento runner` in their argv) apart from the rest, the API server's side."""
    used = {"api": 0.0, "runner": 0.0}
    for each in (pid, *descendants(pid)):
        try:
            stat = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{each}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue  # gone in between
        role = "runner" if b"kubento" in argv and b"runner" in argv else "api"
        used[role] += (int(stat[11]) + int(stat[12])) * CPU_TICK_S  # utime, stime
    return used


def children_cpu_seconds() -> float:
    """CPU seconds of this process's children that have ended and been waited for (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@contextlib.contextmanager
def kubento_serve(service: str, env: dict[str, str], extra: Sequence[str] = ()) -> Iterator[Server]:
    """`kubento serve` of a bench model (its metrics URL is the runner's), stopped on exit;
    `extra`: more flags for `kubento serve`."""
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
        *extra,
    ]
    process = subprocess.Popen(argv, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, f"kubento serve {service}")
        yield Server(url, runner_metrics_url(process.pid), process.pid)
    finally:
        stop_process(process)


def wait_ready(process: subprocess.Popen[bytes], url: str, what: str) -> None:
    deadline = time.monotonic() + 180
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
            raise TimeoutError(f"{what} not ready after 180 s")
        time.sleep(0.2)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


BENTOML_BATCH_SIZE = "bentoml_service_adaptive_batch_size"
RAY_BATCH_SIZE = "ray_bench_batch_size"
BENTOML_CLASSES = {
    "heavy": "bentoml_mlp:HeavyMLP",
    "light": "bentoml_mlp:LightMLP",
    "sklearn": "bentoml_lr:LogisticRegression",
}
SERVICE_OF = {"heavy": "mlp:heavy", "light": "mlp:light", "sklearn": "sklearn_lr:svc"}
FEATURES = {"heavy": MODELS["heavy"][0], "light": MODELS["light"][0], "sklearn": LR_FEATURES}
STORED = ("sklearn",)
"""Models served from a model store (Kubento's and BentoML's own): no in-process limit,
and no Ray Serve side (Ray has no model store)."""
AT_THE_LIMIT = ("heavy",)
"""Compute-bound models: their end-to-end rate is compared with the in-process limit."""
HAND_TUNED = {"heavy": "2", "light": "1", "sklearn": "1"}
"""`--compare hand-tuned`: the max_concurrency main's bench set by hand, with one BLAS thread."""


def save_stored_models(python: str, store: str, home: Path) -> dict[str, str]:
    """Save the stored bench models into a fresh store; the env that points servers at it."""
    variable = "KUBENTO_HOME" if store == "kubento" else "BENTOML_HOME"
    env = {**os.environ, variable: str(home)}
    subprocess.run([python, "lr_model.py", store], cwd=SERVICES, env=env, check=True)
    return {variable: str(home)}


@contextlib.contextmanager
def _other_server(argv: list[str], env: dict[str, str], what: str) -> Iterator[Server]:
    """Another framework's server of a bench model (`argv` plus
    `--port`), run in bench/services and stopped on exit."""
    port = free_port()
    process = subprocess.Popen(
        [*argv, "--port", str(port)],
        cwd=SERVICES,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, what)
        yield Server(url, url + "/metrics", process.pid)
    finally:
        stop_process(process)


def bentoml_serve(
    venv: Path, model: str, env: dict[str, str]
) -> contextlib.AbstractContextManager[Server]:
    """`bentoml serve` on the same model."""
    argv = [str(venv / "bin" / "bentoml"), "serve", BENTOML_CLASSES[model]]
    return _other_server(argv, env, f"bentoml serve {model}")


def ray_serve(
    venv: Path, model: str, env: dict[str, str]
) -> contextlib.AbstractContextManager[Server]:
    """Ray Serve on the same model (bench/services/ray_mlp.py)."""
    argv = [str(venv / "bin" / "python"), "ray_mlp.py", model]
    return _other_server(argv, env, f"ray serve {model}")


SAMPLE = re.compile(
    r"^((?:kubento_runner|kubento_api|bentoml_service|ray_bench)_[a-z_]+)\{([^}]*)\} (\S+)$"
)


def scrape(metrics_url: str) -> dict[str, float]:
    """Batching samples, keyed `name{labels}` (sums over runners, methods and workers); none
    when the server is too busy to answer (an overloaded BentoML), so the point still counts."""
    try:
        with urllib.request.urlopen(metrics_url, timeout=15) as reply:
            text = reply.read().decode()
    except (OSError, urllib.error.URLError) as exc:
        print(f"bench: no metrics from {metrics_url}: {exc}", flush=True)
        return {}
    samples: dict[str, float] = {}
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if not match:
            continue
        name, labels, value = match.groups()
        kept = ("le=", "reason=", "status=")
        keep = ",".join(part for part in labels.split(",") if part.startswith(kept))
        key = f"{name}{{{keep}}}"
        samples[key] = samples.get(key, 0.0) + float(value)
    return samples


def bucket_counts(
    before: dict[str, float], after: dict[str, float], name: str, labels: str = ""
) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of each bucket of histogram `name` between two scrapes,
    lowest first (of the series with `labels`, as `scrape` keeps them: 'status="503"')."""
    buckets = []
    after_le = "," + labels if labels else ""  # kept labels sort after `le`
    for key, value in after.items():
        match = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"{after_le}\}}', key)
        if match:
            buckets.append((float(match.group(1)), value - before.get(key, 0.0)))
    return sorted(buckets)


def histogram_quantile(
    before: dict[str, float], after: dict[str, float], name: str, q: float, labels: str = ""
) -> float:
    """Upper bucket bound holding quantile q of the observations between two scrapes (of the
    series with `labels`, as `scrape` keeps them: 'status="503"')."""
    buckets = bucket_counts(before, after, name, labels)
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
    lanes: str
    load: float
    cpu_ms: dict[str, float]
    """CPU milliseconds per answer: the server's (`api`: every process but Kubento's
    runners, so all of BentoML's or Ray's; `runner`) and the load generator's (`wrk`)."""

    def cpu_ceiling(self, cores: int) -> float:
        """Answers/s if these processes had every core and nothing else ran."""
        return 1000 * cores / max(1e-9, sum(self.cpu_ms.values()))


def lanes(before: dict[str, float], after: dict[str, float]) -> str:
    """The runner's lanes (max_concurrency or what auto chose) before and after a point."""
    key = "kubento_runner_lanes{}"
    if key not in after:
        return "-"
    was, now = int(before.get(key, 0)), int(after[key])
    return str(now) if was == now else f"{was}->{now}"


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
    server: contextlib.AbstractContextManager[Server],
    connections: list[int],
    seconds: float,
    script: Path,
) -> list[Row]:
    batch_size = {"bentoml": BENTOML_BATCH_SIZE, "ray": RAY_BATCH_SIZE}.get(
        mode, "kubento_runner_batch_size"
    )
    rows = []
    with server as running:
        url, metrics_url = running.url, running.metrics_url
        run_wrk(wrk, url, script, 16, min(3.0, seconds))  # warm-up: caches, latency model
        for conns in connections:
            load = os.getloadavg()[0]
            before = scrape(metrics_url)
            cpu_before, wrk_before = cpu_seconds(running.pid), children_cpu_seconds()
            result = run_wrk(wrk, url, script, conns, seconds)
            cpu_after, wrk_after = cpu_seconds(running.pid), children_cpu_seconds()
            after = scrape(metrics_url)
            duration = result["duration_us"] / 1e6
            answers = max(1, result["requests"])
            cpu_ms = {
                role: 1000 * (cpu_after[role] - cpu_before[role]) / answers for role in cpu_after
            }
            cpu_ms["wrk"] = 1000 * (wrk_after - wrk_before) / answers
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
                lanes=lanes(before, after),
                load=load,
                cpu_ms=cpu_ms,
            )
            rows.append(row)
            print(f"bench: {format_row(row)}", flush=True)
    return rows


def inprocess(
    model: str, seconds: float, env: dict[str, str], *, callers: int = 0, lanes: int = 1
) -> dict[str, Any]:
    argv = [PYTHON, str(BENCH / "inprocess.py"), model, "--seconds", str(seconds)]
    argv += ["--lanes", str(lanes)]
    if callers:
        argv += ["--callers", str(callers)]
    out = subprocess.run(
        argv, capture_output=True, text=True, check=True, env={**os.environ, **env}
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def two_core_limit(limit: dict[str, Any]) -> float:
    """The model's rows/s on every core: the better of BLAS threads and one lane per core."""
    return max(limit["limit_all_threads"]["rows_per_s"], limit["limit_lanes"]["rows_per_s"])


def describe_limit(limit: dict[str, Any]) -> str:
    one, every, lanes = limit["limit"], limit["limit_all_threads"], limit["limit_lanes"]
    dispatcher = limit["dispatcher"]
    return (
        f"model alone at batch 64 = {one['rows_per_s']:.0f} rows/s on one thread "
        f"({one['ms_per_call']:.1f} ms/call), {every['rows_per_s']:.0f} with BLAS on every "
        f"core, {lanes['rows_per_s']:.0f} as {lanes['lanes']} one-thread lanes; dispatcher "
        f"alone (64 callers, no HTTP/gRPC) = {dispatcher['requests_per_s']:.0f} req/s, "
        f"mean batch {dispatcher['mean_batch']:.1f}"
    )


HEADER = (
    "| model | mode | conns | ok req/s | p50 ms | p99 ms | errors | mean batch | "
    "queue wait p99 ms | lanes | CPU ms per answer | load | throughput ratio |"
)


def format_row(row: Row, ratio: str = "") -> str:
    errors = str(row.errors)
    failed = {k: v for k, v in row.statuses.items() if k != "200"}
    if failed:
        errors += " (" + ", ".join(f"{k}: {v}" for k, v in sorted(failed.items())) + ")"
    return (
        f"| {row.model} | {row.mode} | {row.connections} | {row.ok_per_s:.0f} | "
        f"{row.p50_ms:.1f} | {row.p99_ms:.1f} | {errors} | {row.mean_batch:.1f} | "
        f"{row.queue_wait_p99_ms:.0f} | {row.lanes} | {describe_cpu(row.cpu_ms)} | "
        f"{row.load:.1f} | {ratio} |"
    )


def describe_cpu(cpu_ms: dict[str, float]) -> str:
    server = f"{cpu_ms['api']:.2f}"
    if cpu_ms["runner"]:
        server = f"API {cpu_ms['api']:.2f} + runner {cpu_ms['runner']:.2f}"
    return f"{server}, wrk {cpu_ms['wrk']:.2f}"


COMPARE = ("baseline", "bentoml", "ray", "hand-tuned")


def servers(
    args: argparse.Namespace, model: str, stores: dict[str, dict[str, str]]
) -> Iterator[tuple[str, contextlib.AbstractContextManager[Server], bool]]:
    """(mode, server, Kubento's JSON body?) of every mode to measure for one model."""
    kubento_env = {**args.threads, **stores["kubento"]}
    yield "batching", kubento_serve(model, kubento_env), True
    if "baseline" in args.compare:
        yield "baseline", kubento_serve(model, {**kubento_env, "KUBENTO_MAX_BATCH_SIZE": "1"}), True
    if "hand-tuned" in args.compare:
        tuned = {**kubento_env, **{name: "1" for name in THREAD_VARS}}
        tuned["KUBENTO_MAX_CONCURRENCY"] = HAND_TUNED[model]
        yield "hand-tuned", kubento_serve(model, tuned), True
    if "bentoml" in args.compare:
        yield (
            "bentoml",
            bentoml_serve(args.bentoml, model, {**args.others, **stores["bentoml"]}),
            False,
        )
    if "ray" in args.compare and model not in STORED:
        yield "ray", ray_serve(args.ray, model, args.others), True


def main() -> int:
    parser = argparse.ArgumentParser(description="Kubento batching benchmark (see the README)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per load point")
    parser.add_argument("--models", default="heavy,light,sklearn")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--overload", type=int, default=1024, help="extra point, heavy model")
    parser.add_argument(
        "--compare",
        default="baseline,bentoml,ray",
        help=f"modes besides Kubento's own, comma-separated, from {','.join(COMPARE)} "
        "(hand-tuned: max_concurrency and one BLAS thread set by hand, as main's bench did), "
        "or none",
    )
    parser.add_argument(
        "--runner-threads",
        type=int,
        default=0,
        help="OMP/OpenBLAS/MKL threads of Kubento's runner (0: its own thread budget, as a "
        "user gets it)",
    )
    parser.add_argument(
        "--other-threads",
        type=int,
        default=1,
        help="the same for BentoML's and Ray Serve's model (default 1, what main's bench "
        "gave every server: on a 2-core machine shared with wrk, spinning BLAS threads slow "
        "them down; 0: their own defaults)",
    )
    parser.add_argument(
        "--bentoml",
        type=Path,
        metavar="VENV",
        help=f"BentoML {envs.BENTOML_VERSION}'s virtual environment (default: "
        f"{envs.default_path('bentoml')}, created with pip when missing)",
    )
    parser.add_argument(
        "--ray",
        type=Path,
        metavar="VENV",
        help=f"Ray Serve {envs.RAY_VERSION}'s virtual environment (default: "
        f"{envs.default_path('ray')}, created with pip when missing)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    args.compare = [] if args.compare == "none" else args.compare.split(",")
    unknown = sorted(set(args.compare) - set(COMPARE))
    if unknown:
        parser.error(f"--compare: unknown modes {unknown}; choose from {', '.join(COMPARE)}")
    wrk = ensure_wrk()
    if "bentoml" in args.compare:
        args.bentoml = envs.ensure("bentoml", args.bentoml)
    if "ray" in args.compare:
        args.ray = envs.ensure("ray", args.ray)
    models = args.models.split(",")
    connections = [int(c) for c in args.connections.split(",")]
    args.threads = {}
    if args.runner_threads:
        args.threads = {name: str(args.runner_threads) for name in THREAD_VARS}
    args.others = {}
    if args.other_threads:
        args.others = {name: str(args.other_threads) for name in THREAD_VARS}

    one_thread = {name: "1" for name in THREAD_VARS}
    cores = len(os.sched_getaffinity(0))
    limits = {}
    for model in models:
        if model in STORED:
            continue
        seconds = min(args.seconds, 5.0)
        limits[model] = inprocess(model, seconds, one_thread, callers=64)
        limits[model]["limit_all_threads"] = inprocess(model, seconds, {})["limit"]
        lanes = inprocess(model, seconds, one_thread, lanes=cores)
        limits[model]["limit_lanes"] = lanes["limit"]
        print(f"bench: {model} in-process: {describe_limit(limits[model])}", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, dict[str, str]] = {"kubento": {}, "bentoml": {}}
        if any(model in STORED for model in models):
            stores["kubento"] = save_stored_models(PYTHON, "kubento", Path(tmp) / "kubento")
            if "bentoml" in args.compare:
                bentoml_python = str(args.bentoml / "bin" / "python")
                stores["bentoml"] = save_stored_models(
                    bentoml_python, "bentoml", Path(tmp) / "bentoml"
                )
        for model in models:
            body = json.dumps(
                np.random.default_rng(1).standard_normal((1, FEATURES[model])).round(4).tolist()
            )
            scripts = {True: Path(tmp) / f"{model}.lua", False: Path(tmp) / f"{model}-x.lua"}
            scripts[True].write_text(LUA % {"body": body})
            scripts[False].write_text(LUA % {"body": json.dumps({"x": json.loads(body)})})
            points = connections + ([args.overload] if model == "heavy" and args.overload else [])
            for mode, server, plain in servers(args, model, stores):
                rows += measure(wrk, model, mode, server, points, args.seconds, scripts[plain])

    print()
    for model in limits:
        print(f"{model} in-process: {describe_limit(limits[model])}")
    print()
    print(HEADER)
    print("|---" * (HEADER.count("|") - 1) + "|")
    by_mode = {(r.mode, r.model, r.connections): r for r in rows}
    for row in rows:
        ratios = []
        for name in COMPARE:
            other = by_mode.get((name, row.model, row.connections))
            if row.mode == "batching" and other is not None and other.ok_per_s > 0:
                ratios.append(f"{row.ok_per_s / other.ok_per_s:.2f}x {name}")
        if row.mode == "batching" and row.model in limits and row.model in AT_THE_LIMIT:
            share = row.ok_per_s / two_core_limit(limits[row.model])
            ratios.append(f"{100 * share:.0f}% of the in-process {cores}-core limit")
            ceiling = row.cpu_ceiling(cores)
            ratios.append(
                f"{100 * row.ok_per_s / ceiling:.0f}% of its CPU ceiling ({ceiling:.0f}/s, "
                f"{100 * ceiling / two_core_limit(limits[row.model]):.0f}% of that limit)"
            )
        print(format_row(row, ", ".join(ratios)))
    print(
        f"\nload: the 1-minute load average before each point on this {os.cpu_count()}-CPU "
        "machine; well above the CPU count, other processes share the cores and the numbers "
        "move. queue wait p99: upper histogram bucket, from the runner's metrics. CPU ms per "
        "answer: the server's processes (API and runner for Kubento) and wrk's, over the "
        f"point. Its CPU ceiling is {cores} cores' milliseconds over their sum: the rate "
        "these processes would reach with every core to themselves. Over the in-process "
        "limit, it is the best share of that limit these costs per answer allow."
    )
    if args.json:
        args.json.write_text(
            json.dumps({"limits": limits, "rows": [row.__dict__ for row in rows]}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
