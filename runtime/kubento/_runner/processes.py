"""`--workers N`: several runner worker processes in one pod, and their thread budget.

Each worker is a full runner process (gRPC server, dispatchers, model) bound to
the same port; gRPC servers set SO_REUSEPORT, so the kernel spreads incoming
*connections* over the workers (a client balances calls across them by opening
several connections). The supervisor here starts the workers, forwards
SIGTERM/SIGINT, and when one dies unexpectedly stops the rest and exits with
its code so Kubernetes restarts the pod rather than leaving it half-served.

Thread budget: each worker gets its share of the pod's CPUs (`KUBENTO_WORKER_CPUS`)
and the thread variables of its `cpus.ThreadBudget`; `cpus.py` decides both.

Metrics: workers share one multiprocess directory (PROMETHEUS_MULTIPROC_DIR);
the worker that serves the metrics port reads all of them through
`metrics_registry()`.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from kubento._runner.cpus import ENV_WORKER_CPUS, ThreadBudget, thread_env

ENV_WORKER_INDEX = "KUBENTO_WORKER_INDEX"
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
STOP_TIMEOUT_S = 30.0


def metrics_registry(own: CollectorRegistry) -> CollectorRegistry:
    """The registry to expose: every worker's samples under `--workers N`, else `own`, the
    registry this process created its metrics in."""
    directory = os.environ.get(MULTIPROC_DIR)
    if not directory:
        return own
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return registry


def run_workers(
    argv_for: Callable[[int], Sequence[str]],
    workers: int,
    *,
    budget: ThreadBudget,
    env: Mapping[str, str] | None = None,
    worker_envs: Sequence[Mapping[str, str]] = (),
) -> int:
    """Run `workers` processes (`argv_for(index)` each) until a signal or a death; return a code.

    Every worker gets the thread variables of its `budget` (one worker's share of the
    CPUs), its index in KUBENTO_WORKER_INDEX and the shared metrics directory, plus its
    `worker_envs` entry (its GPUs, from `gpus.worker_envs`). SIGTERM/SIGINT are
    forwarded; the return code is 0 after a requested stop, else the first dead worker's.
    """
    base = dict(os.environ if env is None else env)
    directory = tempfile.mkdtemp(prefix="kubento-metrics-")
    base.update(thread_env(budget, base))
    base[ENV_WORKER_CPUS] = str(budget.cpus)
    base[MULTIPROC_DIR] = directory
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(workers):
            own = worker_envs[index] if index < len(worker_envs) else {}
            child_env = {**base, **own, ENV_WORKER_INDEX: str(index)}
            children.append(subprocess.Popen(list(argv_for(index)), env=child_env))
        code = 0
        while True:
            dead = next((c for c in children if c.poll() is not None), None)
            if dead is not None:
                if not stopping:
                    code = dead.returncode or 1
                    forward(signal.SIGTERM, None)
                break
            time.sleep(0.2)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        shutil.rmtree(directory, ignore_errors=True)
