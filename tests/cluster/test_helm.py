"""`helm install` of the operator chart into a real API server, and the operator running with
exactly the identity the chart gives it (its ServiceAccount's token, nothing more).

The chart is installed in namespaced mode, watching one namespace of its own, so the
operators started here never touch other tests' BentoDeployments. Two replicas must elect
one leader through the kopf peering object the chart creates.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubento._local.supervisor import free_port
from tests.cluster.controlplane import REPO, ControlPlane, find_binaries
from tests.cluster.operator_process import wait_for

pytestmark = pytest.mark.cluster

CHART = REPO / "charts" / "kubento-operator"
EXAMPLE = REPO / "examples" / "quickstart" / "bentodeployment.yaml"
RELEASE = "kubento"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    """Where the operator Deployment, ServiceAccount and metrics Service live."""
    watched: str
    """The one namespace the operator watches."""
    service_account: str
    """Also the name of the kopf peering objects (the chart's default)."""


def helm(cluster: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(find_binaries()["helm"]), *args],
        env=cluster.environ(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stderr}"
    return result


@contextmanager
def installed(cluster: ControlPlane, name: str, *values: str) -> Iterator[Release]:
    """The chart installed as release `name`, watching one fresh namespace; then uninstalled."""
    suffix = uuid.uuid4().hex[:6]
    namespace, watched = f"kubento-system-{suffix}", f"kubento-apps-{suffix}"
    for ns in (namespace, watched):
        cluster.kubectl("create", "namespace", ns)
    # The operator pods must be admitted under the restricted Pod Security Standard.
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    settings = ["watch.allNamespaces=false", f"watch.namespaces={{{watched}}}", *values]
    helm(
        cluster,
        "install",
        name,
        str(CHART),
        "--namespace",
        namespace,
        *(arg for setting in settings for arg in ("--set", setting)),
        "--wait",
        "--timeout",
        "2m",
    )
    try:
        yield Release(
            name=name,
            namespace=namespace,
            watched=watched,
            service_account=f"{name}-kubento-operator",
        )
    finally:
        helm(cluster, "uninstall", name, "--namespace", namespace, "--wait", "--timeout", "2m")
        for ns in (namespace, watched):
            cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="module")
def release(cluster: ControlPlane) -> Iterator[Release]:
    with installed(cluster, RELEASE) as release:
        yield release


@pytest.fixture(scope="module")
def ha_release(cluster: ControlPlane) -> Iterator[Release]:
    with installed(cluster, "kubento-ha", "replicas=2") as release:
        yield release


def can_i(cluster: ControlPlane, release: Release, verb: str, resource: str, ns: str) -> bool:
    result = cluster.kubectl(
        "auth",
        "can-i",
        verb,
        resource,
        "--namespace",
        ns,
        f"--as=system:serviceaccount:{release.namespace}:{release.service_account}",
        check=False,
    )
    return result.stdout.strip() == "yes"


def test_install_runs_the_operator_with_the_chart_command_args_and_env(
    cluster: ControlPlane, release: Release
) -> None:
    deployment = cluster.get_json(
        "deployment", release.service_account, "--namespace", release.namespace
    )
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == release.service_account
    assert container["command"] == ["kubento-operator"]
    assert container["args"] == [
        "run",
        "--namespace",
        release.watched,
        "--standalone",
        "--health-port",
        "8080",
        "--metrics-port",
        "9091",
        "--log-format",
        "json",
    ]
    assert [(e["name"], e["valueFrom"]["fieldRef"]["fieldPath"]) for e in container["env"]] == [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ]
    assert deployment["status"].get("readyReplicas") == 1  # kwok runs the pod


def test_install_puts_the_crds_in_place(cluster: ControlPlane, release: Release) -> None:
    for crd in (
        "bentodeployments.serving.kubento.io",
        "kopfpeerings.kopf.dev",
        "clusterkopfpeerings.kopf.dev",
    ):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=30s")


def test_service_account_may_manage_children_only_in_the_watched_namespace(
    cluster: ControlPlane, release: Release
) -> None:
    assert can_i(cluster, release, "patch", "deployments.apps", release.watched)
    assert can_i(cluster, release, "watch", "bentodeployments.serving.kubento.io", release.watched)
    assert not can_i(cluster, release, "patch", "deployments.apps", "default")
    assert not can_i(cluster, release, "list", "bentodeployments.serving.kubento.io", "default")
    assert not can_i(cluster, release, "get", "secrets", release.watched)
    assert not can_i(cluster, release, "list", "namespaces", "")


@contextmanager
def operator_process(
    cluster: ControlPlane, release: Release, log_path: Path, *mode: str
) -> Iterator[Path]:
    """The operator as a local process, authenticated only by the chart ServiceAccount's token."""
    token = cluster.kubectl(
        "create", "token", release.service_account, "--namespace", release.namespace
    ).stdout.strip()
    kubeconfig = cluster.token_kubeconfig(token, log_path.with_suffix(".kubeconfig"))
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    args = [
        sys.executable,
        "-m",
        "kubento_operator.cli",
        "run",
        "--namespace",
        release.watched,
        *mode,
        "--health-port",
        str(free_port()),
        "--metrics-port",
        str(free_port()),
        "--verbose",
    ]
    with log_path.open("w") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield log_path
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def apply_example_and_wait_ready(
    cluster: ControlPlane, release: Release, logs: list[Path], timeout: int
) -> dict[str, Any]:
    """Apply the quickstart in the watched namespace; fail with the operators' logs unless it
    becomes Ready in `timeout` seconds."""
    manifest: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    name = manifest["metadata"]["name"]
    cluster.kubectl(
        "apply", "--namespace", release.watched, "-f", "-", input=yaml.safe_dump(manifest)
    )
    result = cluster.kubectl(
        "wait",
        "--namespace",
        release.watched,
        "--for=condition=Ready",
        f"bentodeployment/{name}",
        f"--timeout={timeout}s",
        check=False,
        timeout=timeout + 30,
    )
    tails = "\n".join(f"--- {log.name}\n{log.read_text()[-3000:]}" for log in logs)
    assert result.returncode == 0, f"{name} did not become Ready: {result.stderr}\n{tails}"
    return manifest


def test_operator_with_the_chart_identity_reconciles_the_quickstart_to_ready(
    cluster: ControlPlane, release: Release, tmp_path: Path
) -> None:
    with operator_process(cluster, release, tmp_path / "operator.log", "--standalone") as log:
        manifest = apply_example_and_wait_ready(cluster, release, [log], timeout=180)
        text = log.read_text()
        assert "forbidden" not in text.lower(), f"the operator hit RBAC denials:\n{text[-4000:]}"
        name = manifest["metadata"]["name"]
        selector = f"serving.kubento.io/deployment={name}"
        deployments = cluster.get_json("deployments", "-n", release.watched, "-l", selector)
        assert len(deployments["items"]) == 1 + len(manifest["spec"]["runners"])
        cluster.kubectl("delete", "--namespace", release.watched, "bentodeployment", name)


def test_replicas_install_a_kopf_peering_in_the_watched_namespace(
    cluster: ControlPlane, ha_release: Release
) -> None:
    peering = cluster.get_json(
        "kopfpeerings.kopf.dev", ha_release.service_account, "--namespace", ha_release.watched
    )
    assert peering["metadata"]["name"] == ha_release.service_account
    deployment = cluster.get_json(
        "deployment", ha_release.service_account, "--namespace", ha_release.namespace
    )
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--peering") + 1] == ha_release.service_account
    assert deployment["status"].get("readyReplicas") == 2


def test_two_peered_replicas_reconcile_with_one_leader(
    cluster: ControlPlane, ha_release: Release, tmp_path: Path
) -> None:
    peering = ("--peering", ha_release.service_account)
    with (
        operator_process(cluster, ha_release, tmp_path / "replica-1.log", *peering) as first,
        operator_process(cluster, ha_release, tmp_path / "replica-2.log", *peering) as second,
    ):
        wait_for(
            "both replicas to register in the peering object",
            lambda: (
                len(
                    cluster.get_json(
                        "kopfpeerings.kopf.dev", *peering[1:], "--namespace", ha_release.watched
                    ).get("status")
                    or {}
                )
                == 2
            ),
            timeout=60,
        )
        manifest = apply_example_and_wait_ready(cluster, ha_release, [first, second], timeout=60)
        cluster.kubectl(
            "delete",
            "--namespace",
            ha_release.watched,
            "bentodeployment",
            manifest["metadata"]["name"],
        )
