"""`--workers N` and max_concurrency: the worker supervisor, model threads (the thread
budget itself: test_cpus.py)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import numpy as np

import kubento
from kubento._runner.cpus import ENV_WORKER_CPUS, plan, thread_env
from kubento._runner.processes import ENV_WORKER_INDEX, run_workers
from kubento._runner.worker import RunnerWorker
from kubento.contract import BatchingOverrides


def test_workers_get_their_index_threads_and_a_shared_metrics_dir(tmp_path: Path) -> None:
    script = (
        "import json, os, sys, time; "
        "keys = ['KUBENTO_WORKER_INDEX', 'OMP_NUM_THREADS', 'PROMETHEUS_MULTIPROC_DIR', "
        "'KUBENTO_WORKER_CPUS']; "
        "open(sys.argv[1], 'w').write(json.dumps({k: os.environ.get(k) for k in keys})); "
        "time.sleep(0.5 if os.environ['KUBENTO_WORKER_INDEX'] == '0' else 30)"
    )
    started = time.monotonic()
    code = run_workers(
        lambda index: [sys.executable, "-c", script, str(tmp_path / f"{index}.json")],
        2,
        budget=plan(True, 1, cpus=3, env={}),
        env={},
    )
    seen = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2)]
    assert [s[ENV_WORKER_INDEX] for s in seen] == ["0", "1"]
    assert [s["OMP_NUM_THREADS"] for s in seen] == ["3", "3"]
    assert [s[ENV_WORKER_CPUS] for s in seen] == ["3", "3"]
    assert seen[0]["PROMETHEUS_MULTIPROC_DIR"] == seen[1]["PROMETHEUS_MULTIPROC_DIR"]
    assert not Path(seen[0]["PROMETHEUS_MULTIPROC_DIR"]).exists()
    # Worker 0 exiting on its own stops worker 1 instead of leaving the pod half-served.
    assert code == 1
    assert time.monotonic() - started < 20


def test_a_crashed_workers_exit_code_is_returned() -> None:
    code = run_workers(
        lambda index: [sys.executable, "-c", f"import sys, time; time.sleep({index}); sys.exit(3)"],
        2,
        budget=plan(True, 1, cpus=1, env={}),
        env={},
    )
    assert code == 3


class Napper(kubento.Runnable):
    """Counts how many of its calls overlap; each call blocks its thread like numpy does."""

    instances: ClassVar[list[Napper]] = []

    def __init__(self) -> None:
        Napper.instances.append(self)
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    @kubento.Runnable.method(batchable=True)
    def nap(self, x: np.ndarray) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        time.sleep(0.05)
        with self.lock:
            self.running -= 1
        return x


async def run_naps(overrides: BatchingOverrides) -> int:
    runner = kubento.Runner(Napper, name="napper", max_batch_size=1)
    worker = RunnerWorker(runner, overrides)
    await worker.load()
    calls = [worker.methods["nap"]((np.full((1, 1), i),), None) for i in range(4)]
    results = await asyncio.gather(*calls)
    assert [int(r[0, 0]) for r in results] == [0, 1, 2, 3]
    await worker.close()
    return Napper.instances[-1].most


async def test_a_worker_runs_max_concurrency_batches_at_once_on_model_threads() -> None:
    assert await run_naps(BatchingOverrides(max_concurrency=2)) == 2


async def test_a_worker_runs_one_batch_at_a_time_by_default() -> None:
    assert await run_naps(BatchingOverrides()) == 1


def test_model_threads_split_the_cpus_like_workers_do() -> None:
    runner = kubento.Runner(Napper, name="napper", method_configs={"nap": {"max_concurrency": 2}})
    assert runner.model_threads() == 2
    assert runner.model_threads(BatchingOverrides(max_concurrency=4)) == 4
    budget = plan(True, runner.concurrency(), cpus=8 // 2, env={})  # one of 2 workers
    assert thread_env(budget, env={}) == {
        name: "2" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }


def test_a_method_under_auto_gets_the_workers_lane_bound_of_model_threads() -> None:
    runner = kubento.Runner(Napper, name="napper")
    assert runner.concurrency() == "auto"
    assert runner.model_threads(auto=3) == 3
    assert runner.model_threads(BatchingOverrides(max_concurrency=2), auto=3) == 2
