"""The CPUs a runner worker may use and the threads it runs on them: the one place that
decides (GPUs are `gpus.py`'s).

CPUs come from the container, not the host: the affinity mask, the cgroup's cpuset and
its CPU quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`, the
smallest along the cgroup's ancestors), rounded up to whole CPUs. `--workers N` split
them; each worker runs up to `lanes` model calls at once (its model threads) with
`threads` BLAS/OpenMP/torch threads each, so workers x lanes x threads fit the CPUs:

- a runnable that declares SUPPORTS_CPU_MULTI_THREADING gets its share //
  lanes threads per call; with `max_concurrency="auto"` its lanes may grow to the
  share, so each call gets 1 thread and the lanes use the cores;
- one that does not gets 1 thread per call and, under "auto", 1 lane.

Thread counts are set in the environment (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS,
MKL_NUM_THREADS) before the worker process imports numpy or torch, and torch's own
count (`torch.set_num_threads`) once the runnable has loaded it. Variables the user
set are kept, and under "auto" they bound the lanes instead.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kubento.contract import AUTO, KNOBS

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
ENV_WORKER_CPUS = "KUBENTO_WORKER_CPUS"
"""Set by `--workers N` for each worker process: its share of the pod's CPUs."""
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
MAX_LANES = int(KNOBS["max_concurrency"].maximum or 1)


@dataclass(frozen=True)
class Cpus:
    """How many CPUs this process may use, and what said so."""

    count: int
    source: str


def parse_cpu_list(text: str) -> int:
    """CPUs in a cpuset list such as `0-3,8,10-11` (12 would be 7)."""
    count = 0
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        count += int(high or low) - int(low) + 1
    return count


def _cgroup_paths(proc_cgroup: str) -> tuple[str | None, dict[str, str]]:
    """The unified (v2) path and each v1 controller's path from /proc/self/cgroup."""
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            unified = path
        for controller in controllers.split(","):
            if controller:
                v1[controller] = path
    return unified, v1


def _ancestors(root: Path, path: str) -> list[Path]:
    """`root/path` and each parent up to `root`, the ones that exist. A container sees its
    own cgroup at the root of its mount, whatever path /proc says (no cgroup namespace)."""
    parts = [part for part in path.split("/") if part]
    found = [root.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]
    existing = [directory for directory in found if directory.is_dir()]
    return existing or [root]


def _read(path: Path) -> str | None:
    with contextlib.suppress(OSError):
        return path.read_text().strip()
    return None


def _v1_dir(root: Path, controller: str) -> Path | None:
    """Where a v1 controller is mounted: `cpu,cpuacct`, `cpu` (often a link to it), ..."""
    mounts = sorted(d for d in root.iterdir() if controller in d.name.split(",") and d.is_dir())
    return mounts[0] if mounts else None


def _quota(directory: Path, unified: bool) -> tuple[float, str] | None:
    if unified:
        text = _read(directory / "cpu.max")
        if not text:
            return None
        quota, _, period = text.partition(" ")
        if quota == "max":
            return None
        return int(quota) / int(period or 100_000), f"cpu.max {text}"
    quota_text = _read(directory / "cpu.cfs_quota_us")
    period_text = _read(directory / "cpu.cfs_period_us")
    if quota_text is None or period_text is None or int(quota_text) <= 0:
        return None
    return int(quota_text) / int(period_text), f"cpu.cfs_quota_us {quota_text}/{period_text}"


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> list[Cpus]:
    """The limits this process's cgroup puts on CPUs (quota, cpuset), none when it sets none."""
    text = (_read(PROC_CGROUP) or "") if proc_cgroup is None else proc_cgroup
    with contextlib.suppress(OSError, ValueError):
        return _cgroup_cpus(root, text)
    return []


def _cgroup_cpus(root: Path, proc_cgroup: str) -> list[Cpus]:
    unified, v1 = _cgroup_paths(proc_cgroup)
    limits: list[Cpus] = []
    quota_dirs: list[tuple[Path, bool]] = []
    cpuset_dirs: list[tuple[Path, bool]] = []
    if "cpu" in v1:
        base = _v1_dir(root, "cpu")
        if base is not None:
            quota_dirs = [(d, False) for d in _ancestors(base, v1["cpu"])]
    if "cpuset" in v1:
        base = _v1_dir(root, "cpuset")
        if base is not None:
            cpuset_dirs = [(d, False) for d in _ancestors(base, v1["cpuset"])]
    if unified is not None and (root / "cgroup.controllers").exists():
        if not quota_dirs:
            quota_dirs = [(d, True) for d in _ancestors(root, unified)]
        if not cpuset_dirs:
            cpuset_dirs = [(d, True) for d in _ancestors(root, unified)]
    quotas = [found for d, v2 in quota_dirs if (found := _quota(d, v2)) is not None]
    if quotas:
        cpus, quota = min(quotas)
        limits.append(Cpus(max(1, math.ceil(cpus - 1e-9)), f"cgroup {quota}"))
    for directory, v2 in cpuset_dirs:
        names = ("cpuset.cpus.effective",) if v2 else ("cpuset.effective_cpus", "cpuset.cpus")
        cpuset = next((t for name in names if (t := _read(directory / name))), None)
        if cpuset:
            limits.append(Cpus(parse_cpu_list(cpuset), f"cgroup cpuset {cpuset}"))
            break
    return limits


def available_cpus(root: Path = CGROUP_ROOT, proc_cgroup: str | None = None) -> Cpus:
    """CPUs this process may use: the affinity mask, capped by the cgroup's quota and cpuset."""
    if hasattr(os, "sched_getaffinity"):
        best = Cpus(len(os.sched_getaffinity(0)) or 1, "affinity")
    else:
        best = Cpus(os.cpu_count() or 1, "cpu count")
    for limit in cgroup_cpus(root, proc_cgroup):
        if limit.count < best.count:
            best = limit
    return best


def worker_cpus(env: Mapping[str, str] | None = None) -> Cpus:
    """This worker's CPUs: its share under `--workers N`, else what the process may use."""
    share = (os.environ if env is None else env).get(ENV_WORKER_CPUS)
    if share and share.isdigit() and int(share) > 0:
        return Cpus(int(share), "--workers share")
    return available_cpus()


@dataclass(frozen=True)
class ThreadBudget:
    """One worker's plan: `lanes` model threads (the most batches at once; "auto" moves
    between 1 and it), `threads` BLAS/OpenMP/torch threads in each model call."""

    cpus: int
    lanes: int
    threads: int
    auto: bool


def threads_per_call(env: Mapping[str, str] | None = None) -> int | None:
    """The threads one model call may use, as the worker's environment says (the budget
    the supervisor set, or the user's own); None when nothing says."""
    return _user_threads(os.environ if env is None else env)


def _user_threads(env: Mapping[str, str]) -> int | None:
    for name in THREAD_VARS:
        value = env.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return None


def plan(
    supports_cpu_multi_threading: bool,
    concurrency: int | str,
    cpus: int,
    env: Mapping[str, str] | None = None,
) -> ThreadBudget:
    """The thread budget of one worker with `cpus` CPUs whose methods' largest
    max_concurrency is `concurrency` (a number, or "auto")."""
    if cpus < 1:
        raise ValueError(f"cpus must be >= 1, got {cpus}")
    current = os.environ if env is None else env
    if concurrency == AUTO:
        if not supports_cpu_multi_threading:
            return ThreadBudget(cpus, 1, 1, auto=True)
        given = _user_threads(current)
        lanes = max(1, min(MAX_LANES, cpus // (given or 1)))
        return ThreadBudget(cpus, lanes, given or max(1, cpus // lanes), auto=True)
    lanes = int(concurrency)
    if lanes < 1:
        raise ValueError(f"concurrency must be >= 1 or {AUTO!r}, got {concurrency!r}")
    threads = max(1, cpus // lanes) if supports_cpu_multi_threading else 1
    return ThreadBudget(cpus, lanes, threads, auto=False)


def thread_env(budget: ThreadBudget, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The thread-count variables of a budget that `env` (the process's) does not set."""
    current = os.environ if env is None else env
    return {name: str(budget.threads) for name in THREAD_VARS if not current.get(name)}


def apply_torch(budget: ThreadBudget) -> int | None:
    """torch's intra-op threads set to the budget when the runnable imported torch (the
    worker never imports it); the count torch then reports, None without torch."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    threads = _user_threads(os.environ) or budget.threads
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return int(torch.get_num_threads())


def effective_threads() -> dict[str, int]:
    """The thread counts the loaded BLAS/OpenMP libraries report (threadpoolctl, when it is
    installed: scikit-learn brings it), by library."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {}
    found: dict[str, int] = {}
    for pool in threadpool_info():
        name = str(pool.get("internal_api") or pool.get("prefix") or "blas")
        found[name] = min(found.get(name, 1 << 30), int(pool.get("num_threads") or 0))
    return found


def describe(budget: ThreadBudget, cpus: Cpus, torch_threads: int | None) -> str:
    """The budget as one key=value log line's fields."""
    lanes = f"1..{budget.lanes}" if budget.auto else str(budget.lanes)
    fields = [
        f"cpus={cpus.count}",
        f"cpus_from={cpus.source.replace(' ', '_')}",
        f"lanes={lanes}",
        f"threads_per_call={budget.threads}",
        *(f"{name}={os.environ.get(name, '-')}" for name in THREAD_VARS),
        *(f"effective_{name}={count}" for name, count in sorted(effective_threads().items())),
        f"torch_threads={'-' if torch_threads is None else torch_threads}",
    ]
    return " ".join(fields)
