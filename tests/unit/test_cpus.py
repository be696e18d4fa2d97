"""The thread budget: CPUs from the container's cgroup (v1 and v2 fixture trees), and
workers x lanes x threads fitting them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kubento._runner import cpus
from kubento._runner.cpus import Cpus, ThreadBudget, plan, thread_env

V2_SELF = "0::/kubepods/pod1/ctr\n"
V1_SELF = (
    "12:memory:/kubepods/pod1/ctr\n"
    "4:cpu,cpuacct:/kubepods/pod1/ctr\n"
    "3:cpuset:/kubepods/pod1/ctr\n"
    "0::/\n"
)


def write(root: Path, relative: str, text: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def v2_tree(root: Path, **files: str) -> Path:
    write(root, "cgroup.controllers", "cpuset cpu memory\n")
    for name, text in files.items():
        write(root, f"kubepods/pod1/ctr/{name.replace('_', '.')}", text)
    return root


def affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_a_cgroup_v2_quota_is_rounded_up_to_whole_cpus(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, cpu_max="150000 100000\n")
    assert cpus.cgroup_cpus(root, V2_SELF) == [Cpus(2, "cgroup cpu.max 150000 100000")]


def test_a_cgroup_v2_without_a_quota_sets_no_limit(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, cpu_max="max 100000\n")
    assert cpus.cgroup_cpus(root, V2_SELF) == []


def test_the_smallest_quota_along_the_cgroups_ancestors_wins(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, cpu_max="400000 100000\n")
    write(root, "kubepods/pod1/cpu.max", "100000 100000\n")  # the pod's limit, one level up
    assert cpus.cgroup_cpus(root, V2_SELF) == [Cpus(1, "cgroup cpu.max 100000 100000")]


def test_a_cgroup_v2_cpuset_counts_its_effective_cpus(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, cpu_max="max 100000\n", cpuset_cpus_effective="0-2,5\n")
    assert cpus.cgroup_cpus(root, V2_SELF) == [Cpus(4, "cgroup cpuset 0-2,5")]


def test_a_container_sees_its_own_cgroup_at_the_mounts_root(tmp_path: Path) -> None:
    # No cgroup namespace: /proc/self/cgroup names a host path the container's mount lacks.
    write(tmp_path, "cgroup.controllers", "cpu\n")
    write(tmp_path, "cpu.max", "200000 100000\n")
    assert cpus.cgroup_cpus(tmp_path, V2_SELF) == [Cpus(2, "cgroup cpu.max 200000 100000")]


def test_a_cgroup_v1_cfs_quota_and_period_cap_the_cpus(tmp_path: Path) -> None:
    write(tmp_path, "cpu,cpuacct/kubepods/pod1/ctr/cpu.cfs_quota_us", "250000\n")
    write(tmp_path, "cpu,cpuacct/kubepods/pod1/ctr/cpu.cfs_period_us", "100000\n")
    assert cpus.cgroup_cpus(tmp_path, V1_SELF) == [Cpus(3, "cgroup cpu.cfs_quota_us 250000/100000")]


def test_a_cgroup_v1_quota_of_minus_one_is_no_limit(tmp_path: Path) -> None:
    write(tmp_path, "cpu,cpuacct/cpu.cfs_quota_us", "-1\n")
    write(tmp_path, "cpu,cpuacct/cpu.cfs_period_us", "100000\n")
    assert cpus.cgroup_cpus(tmp_path, V1_SELF) == []


def test_a_cgroup_v1_cpuset_counts_its_cpus(tmp_path: Path) -> None:
    write(tmp_path, "cpuset/kubepods/pod1/ctr/cpuset.cpus", "2-3\n")
    assert cpus.cgroup_cpus(tmp_path, V1_SELF) == [Cpus(2, "cgroup cpuset 2-3")]


def test_unreadable_or_malformed_cgroup_files_set_no_limit(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, cpu_max="lots\n")
    assert cpus.cgroup_cpus(root, V2_SELF) == []
    assert cpus.cgroup_cpus(tmp_path / "missing", V2_SELF) == []


def test_the_cgroup_caps_the_affinity_mask_never_raises_it(tmp_path: Path) -> None:
    root = v2_tree(tmp_path, cpu_max="100000 100000\n")
    assert cpus.available_cpus(root, V2_SELF) == Cpus(1, "cgroup cpu.max 100000 100000")
    roomy = v2_tree(tmp_path / "roomy", cpu_max=f"{(affinity() + 4) * 100000} 100000\n")
    assert cpus.available_cpus(roomy, V2_SELF) == Cpus(affinity(), "affinity")


def test_a_workers_share_comes_from_its_supervisor() -> None:
    assert cpus.worker_cpus({cpus.ENV_WORKER_CPUS: "3"}) == Cpus(3, "--workers share")


def test_an_explicit_concurrency_splits_a_multi_threaded_runnables_cpus() -> None:
    assert plan(True, 2, cpus=8, env={}) == ThreadBudget(8, lanes=2, threads=4, auto=False)
    assert plan(True, 4, cpus=2, env={}).threads == 1  # never fewer than one


def test_a_single_threaded_runnable_gets_one_thread_per_call() -> None:
    assert plan(False, 1, cpus=8, env={}) == ThreadBudget(8, lanes=1, threads=1, auto=False)


def test_auto_gives_a_multi_threaded_runnable_a_lane_per_cpu_of_one_thread_each() -> None:
    assert plan(True, "auto", cpus=4, env={}) == ThreadBudget(4, lanes=4, threads=1, auto=True)


def test_auto_keeps_a_runnable_without_multi_threading_to_one_lane() -> None:
    assert plan(False, "auto", cpus=4, env={}) == ThreadBudget(4, lanes=1, threads=1, auto=True)


def test_under_auto_threads_the_user_set_bound_the_lanes() -> None:
    budget = plan(True, "auto", cpus=8, env={"OMP_NUM_THREADS": "4"})
    assert (budget.lanes, budget.threads) == (2, 4)


def test_thread_variables_the_user_set_are_kept() -> None:
    env = thread_env(plan(True, 1, cpus=8, env={}), env={"OMP_NUM_THREADS": "3"})
    assert env == {"OPENBLAS_NUM_THREADS": "8", "MKL_NUM_THREADS": "8"}


def test_a_concurrency_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="concurrency must be >= 1 or 'auto', got 0"):
        plan(True, 0, cpus=2, env={})


@pytest.mark.parametrize(("text", "count"), [("0", 1), ("0-3", 4), ("0-1,4,6-7\n", 5)])
def test_cpu_lists_are_counted(text: str, count: int) -> None:
    assert cpus.parse_cpu_list(text) == count
