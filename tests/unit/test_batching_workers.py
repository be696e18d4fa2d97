"""`--workers N` and max_concurrency: thread budget, the worker supervisor, model threads."""

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
from kubento._runner.processes import ENV_WORKER_INDEX, available_cpus, run_workers, thread_env
from kubento._runner.worker import RunnerWorker
from kubento.contract import BatchingOverrides


def test_a_multi_threaded_runnable_shares_the_cpus_between_workers() -> None:
    env = thread_env(True, model_threads=2, cpus=8, env={})
    assert env == {"OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}


def test_a_single_threaded_runnable_gets_one_thread_per_worker() -> None:
    assert set(thread_env(False, model_threads=1, cpus=8, env={}).values()) == {"1"}


def test_every_worker_gets_at_least_one_thread() -> None:
    assert set(thread_env(True, model_threads=4, cpus=2, env={}).values()) == {"1"}


def test_thread_variables_the_user_set_are_kept() -> None:
    env = thread_env(True, model_threads=1, cpus=8, env={"OMP_NUM_THREADS": "3"})
    assert "OMP_NUM_THREADS" not in env
    assert env["MKL_NUM_THREADS"] == "8"


def test_a_cgroup_cpu_quota_caps_the_cpu_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert available_cpus(tmp_path) == min(2, available_cpus(tmp_path / "missing"))


def test_an_unlimited_cgroup_leaves_the_affinity_count(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(tmp_path) == available_cpus(tmp_path / "missing")


def test_workers_get_their_index_threads_and_a_shared_metrics_dir(tmp_path: Path) -> None:
    script = (
        "import json, os, sys, time; "
        "keys = ['KUBENTO_WORKER_INDEX', 'OMP_NUM_THREADS', 'PROMETHEUS_MULTIPROC_DIR']; "
        "open(sys.argv[1], 'w').write(json.dumps({k: os.environ.get(k) for k in keys})); "
        "time.sleep(0.5 if os.environ['KUBENTO_WORKER_INDEX'] == '0' else 30)"
    )
    started = time.monotonic()
    code = run_workers(
        lambda index: [sys.executable, "-c", script, str(tmp_path / f"{index}.json")],
        2,
        supports_cpu_multi_threading=False,
        env={},
    )
    seen = [json.loads((tmp_path / f"{i}.json").read_text()) for i in range(2)]
    assert [s[ENV_WORKER_INDEX] for s in seen] == ["0", "1"]
    assert [s["OMP_NUM_THREADS"] for s in seen] == ["1", "1"]
    assert seen[0]["PROMETHEUS_MULTIPROC_DIR"] == seen[1]["PROMETHEUS_MULTIPROC_DIR"]
    assert not Path(seen[0]["PROMETHEUS_MULTIPROC_DIR"]).exists()
    # Worker 0 exiting on its own stops worker 1 instead of leaving the pod half-served.
    assert code == 1
    assert time.monotonic() - started < 20


def test_a_crashed_workers_exit_code_is_returned() -> None:
    code = run_workers(
        lambda index: [sys.executable, "-c", f"import sys, time; time.sleep({index}); sys.exit(3)"],
        2,
        supports_cpu_multi_threading=True,
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
    assert thread_env(True, model_threads=2 * runner.model_threads(), cpus=8, env={}) == {
        name: "2" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    }
