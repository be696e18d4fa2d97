"""Fixtures for tests against a real control plane (see controlplane.py).

`cluster` (session-scoped) starts a private kwokctl cluster for this pytest run, yields the
ControlPlane (kubeconfig path, `kubectl(*args)`, `get_json(...)`, `environ()`), and tears it
down at the end. Every component's log is copied to .kubento/test-cluster-logs/<cluster>/;
a failing test's report names that directory and shows the end of each log.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterator

import pytest

from tests.cluster.controlplane import REPO, ControlPlane, ControlPlaneError, find_binaries
from tests.cluster.operator_process import STARTED

WORKDIR = REPO / ".kubento" / "test-clusters"
LOGS = REPO / ".kubento" / "test-cluster-logs"
NAME_PREFIX = "kubento-test-"
LOG_TAIL_LINES = 15
KEEP_LOG_RUNS = 5

_state: dict[str, ControlPlane | bool | float] = {"failed": False}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _test_cluster(name: str) -> ControlPlane:
    return ControlPlane(name=name, workdir=WORKDIR, kubeconfig=WORKDIR / f"{name}.kubeconfig")


def _prune_old_logs() -> None:
    """Keep the component logs of the last few runs only."""
    if not LOGS.is_dir():
        return
    runs = sorted(LOGS.glob(f"{NAME_PREFIX}*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in runs[KEEP_LOG_RUNS:]:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale_clusters() -> None:
    """Delete clusters left by pytest runs that died before their teardown."""
    clusters = WORKDIR / "clusters"
    if not clusters.is_dir():
        return
    for path in clusters.glob(f"{NAME_PREFIX}*"):
        pid = path.name.removeprefix(NAME_PREFIX)
        if pid.isdigit() and not _pid_alive(int(pid)):
            try:
                _test_cluster(path.name).down()
            except ControlPlaneError as err:  # a broken leftover must not fail this run
                warnings.warn(f"could not delete stale cluster {path.name}: {err}", stacklevel=1)


def _binaries_problem() -> str | None:
    try:
        find_binaries()
    except ControlPlaneError as err:
        return str(err)
    return None


@pytest.fixture(scope="session")
def cluster() -> Iterator[ControlPlane]:
    """A running control plane with kwok nodes, private to this pytest run."""
    problem = _binaries_problem()
    if problem:
        pytest.fail(problem, pytrace=False)
    _remove_stale_clusters()
    _prune_old_logs()
    plane = _test_cluster(f"{NAME_PREFIX}{os.getpid()}")
    plane.down()
    _state["cluster"] = plane
    started = time.monotonic()
    try:
        plane.up()
    except ControlPlaneError as err:
        problem = f"{err}\ncomponent logs kept in {plane.keep_logs(LOGS / plane.name)}"
        plane.down()
    if problem:
        pytest.fail(problem, pytrace=False)
    _state["startup_seconds"] = time.monotonic() - started
    try:
        yield plane
    finally:
        plane.keep_logs(LOGS / plane.name)
        plane.down()


@pytest.fixture
def namespace(cluster: ControlPlane) -> Iterator[str]:
    """A fresh namespace for one test, deleted (without waiting) afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    for _ in range(120):  # pods are admitted once the namespace has its default ServiceAccount
        if cluster.kubectl("-n", name, "get", "sa", "default", check=False).returncode == 0:
            break
        time.sleep(0.25)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    plane = _state.get("cluster")
    if not report.failed or "cluster" not in getattr(item, "fixturenames", ()):
        return
    _state["failed"] = True
    if not isinstance(plane, ControlPlane):
        return
    parts = [f"kept after the run in {LOGS / plane.name}/ (live: {plane.logs_dir}/)"]
    for component in plane.logs():
        parts.append(
            f"--- {component} (last {LOG_TAIL_LINES} lines)\n"
            f"{plane.log_tail(component, LOG_TAIL_LINES)}"
        )
    report.sections.append(("control plane logs", "\n".join(parts)))
    for operator in STARTED:
        report.sections.append(("operator log", operator.tail()))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    plane = _state.get("cluster")
    if not isinstance(plane, ControlPlane):
        return
    startup = _state.get("startup_seconds")
    if isinstance(startup, float):
        terminalreporter.write_line(f"control plane {plane.name} started in {startup:.1f}s")
    if _state["failed"]:
        terminalreporter.write_line(
            f"control plane logs (etcd, kube-apiserver, kube-controller-manager, "
            f"kube-scheduler, kwok-controller): {LOGS / plane.name}/",
            red=True,
        )
