"""`kubento-operator run` as a real process against the test cluster, and small kubectl helpers.

Shared by the operator suites (test_operator.py, test_operator_lifecycle.py): each module
starts one operator with `running_operator(...)` in a module-scoped fixture, so two
all-namespace operators never run at the same time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubento._local.supervisor import free_port
from tests.cluster.controlplane import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "bentodeployments.serving.kubento.io.yaml"
OPERATOR = str(Path(sys.executable).parent / "kubento-operator")
STARTUP_TIMEOUT_S = 60
LOG_TAIL_LINES = 40

STARTED: list[Operator] = []
"""The operators of the test modules running now, for the failure report (conftest.py)."""


def wait_for(what: str, condition: Callable[[], Any], timeout: float = 90) -> Any:
    """Poll `condition` until it returns something truthy; fail the test naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def install_crd(cluster: ControlPlane) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(CRD))
    cluster.kubectl(
        "wait", "--for=condition=Established", "crd/bentodeployments.serving.kubento.io"
    )


@dataclass
class Operator:
    """One `kubento-operator run --all-namespaces` process; `start()` again after `kill()`."""

    cluster: ControlPlane
    log: Path
    health: int = 0  # ports are chosen by start()
    metrics: int = 0
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process and wait until it serves /healthz, or fail with its log.

        Each start takes fresh ports: one freed by a kill may be taken meanwhile by any
        process on the machine, and an operator that cannot bind its ports exits.
        """
        self.health, self.metrics = free_port(), free_port()
        with self.log.open("a") as out:
            self.process = subprocess.Popen(
                [
                    OPERATOR,
                    "run",
                    "--all-namespaces",
                    "--standalone",
                    f"--health-port={self.health}",
                    f"--metrics-port={self.metrics}",
                    "--log-format=json",
                ],
                env=self.cluster.environ(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if self not in STARTED:
            STARTED.append(self)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.healthy():
            if not self.running():
                pytest.fail(f"the operator exited at startup:\n{self.tail()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"the operator never served /healthz:\n{self.tail()}", pytrace=False)
            time.sleep(0.2)

    def healthy(self) -> bool:
        url = f"http://127.0.0.1:{self.health}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The process state and the last lines of its log."""
        state = "running" if self.running() else f"exited ({self.process and self.process.poll()})"
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return "\n".join([f"operator {state}, log {self.log}:", *text.splitlines()[-lines:]])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no chance to finish what it was doing."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if not self.running():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


@contextmanager
def running_operator(cluster: ControlPlane, workdir: Path) -> Iterator[Operator]:
    """The CRD installed and the operator running until the block ends.

    Set KUBENTO_SHOW_OPERATOR_LOG=1 to print its log afterwards.
    """
    install_crd(cluster)
    operator = Operator(cluster, workdir / "operator.log")
    operator.start()
    try:
        yield operator
    finally:
        operator.stop()
        STARTED.remove(operator)
        if os.environ.get("KUBENTO_SHOW_OPERATOR_LOG"):
            print(operator.log.read_text())


def apply(cluster: ControlPlane, namespace: str, obj: dict[str, Any], check: bool = True) -> Any:
    """`kubectl apply -f -` of one object given as a dict."""
    return cluster.kubectl("-n", namespace, "apply", "-f", "-", input=json.dumps(obj), check=check)


def condition(cluster: ControlPlane, namespace: str, name: str, kind: str) -> dict[str, Any]:
    """The BentoDeployment's condition of type `kind`, or {} if it has none yet."""
    bd = cluster.get_json("-n", namespace, "bentodeployment", name)
    for found in bd.get("status", {}).get("conditions", []):
        if found["type"] == kind:
            return found  # type: ignore[no-any-return]
    return {}


def wait_condition(
    cluster: ControlPlane, namespace: str, name: str, kind: str, status: str = "True"
) -> dict[str, Any]:
    """Wait until the BentoDeployment's condition `kind` has `status`; return that condition."""

    def reached() -> dict[str, Any]:
        found = condition(cluster, namespace, name, kind)
        return found if found.get("status") == status else {}

    return wait_for(f"{name} {kind}={status}", reached)  # type: ignore[no-any-return]


def names(cluster: ControlPlane, namespace: str, kind: str, *selector: str) -> set[str]:
    """Names of the objects of `kind` in the namespace (optionally `-l SELECTOR`)."""
    items = cluster.get_json("-n", namespace, kind, *selector)["items"]
    return {item["metadata"]["name"] for item in items}
