"""`helm install` of the operator chart into a real API server, and the operator running with
exactly the identity the chart gives it (its ServiceAccount's token, nothing more).

The chart is installed in namespaced mode, watching one namespace of its own, so the
operator started here never touches other tests' BentoDeployments.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from kubento.serve import free_port
from tests.cluster.controlplane import ControlPlane, find_binaries

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubento-operator"
EXAMPLE = REPO / "examples" / "quickstart" / "bentodeployment.yaml"
RELEASE = "kubento"
FULLNAME = "kubento-kubento-operator"


@dataclass(frozen=True)
class Release:
    namespace: str
    """Where the operator Deployment, ServiceAccount and metrics Service live."""
    watched: str
    """The one namespace the operator watches."""
    service_account: str


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


@pytest.fixture(scope="module")
def release(cluster: ControlPlane) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    namespace, watched = f"kubento-system-{suffix}", f"kubento-apps-{suffix}"
    for ns in (namespace, watched):
        cluster.kubectl("create", "namespace", ns)
    # The operator pod must be admitted under the restricted Pod Security Standard.
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    helm(
        cluster,
        "install",
        RELEASE,
        str(CHART),
        "--namespace",
        namespace,
        "--set",
        "watch.allNamespaces=false",
        "--set",
        f"watch.namespaces={{{watched}}}",
        "--wait",
        "--timeout",
        "2m",
    )
    yield Release(namespace=namespace, watched=watched, service_account=FULLNAME)
    helm(cluster, "uninstall", RELEASE, "--namespace", namespace, "--wait", "--timeout", "2m")
    for ns in (namespace, watched):
        cluster.kubectl("delete", "namespace", ns, "--wait=false", check=False)


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
    deployment = cluster.get_json("deployment", FULLNAME, "--namespace", release.namespace)
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


@pytest.fixture
def operator_as_service_account(
    cluster: ControlPlane, release: Release, tmp_path: Path
) -> Iterator[Path]:
    """The operator as a local process, authenticated only by the chart ServiceAccount's token."""
    token = cluster.kubectl(
        "create", "token", release.service_account, "--namespace", release.namespace
    ).stdout.strip()
    kubeconfig = cluster.token_kubeconfig(token, tmp_path / "operator.kubeconfig")
    log_path = tmp_path / "operator.log"
    env = {**os.environ, "KUBECONFIG": str(kubeconfig)}
    args = [
        sys.executable,
        "-m",
        "kubento_operator.cli",
        "run",
        "--namespace",
        release.watched,
        "--standalone",
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


def test_operator_with_the_chart_identity_reconciles_the_quickstart_to_ready(
    cluster: ControlPlane, release: Release, operator_as_service_account: Path
) -> None:
    manifest = yaml.safe_load(EXAMPLE.read_text())
    name = manifest["metadata"]["name"]
    cluster.kubectl(
        "apply", "--namespace", release.watched, "-f", "-", input=yaml.safe_dump(manifest)
    )
    try:
        result = cluster.kubectl(
            "wait",
            "--namespace",
            release.watched,
            "--for=condition=Ready",
            f"bentodeployment/{name}",
            "--timeout=180s",
            check=False,
            timeout=210,
        )
        log = operator_as_service_account.read_text()
        assert result.returncode == 0, (
            f"{name} did not become Ready: {result.stderr}\noperator log:\n{log[-4000:]}"
        )
        assert "forbidden" not in log.lower(), f"the operator hit RBAC denials:\n{log[-4000:]}"
        selector = f"serving.kubento.io/deployment={name}"
        deployments = cluster.get_json("deployments", "-n", release.watched, "-l", selector)
        assert len(deployments["items"]) == 1 + len(manifest["spec"]["runners"])
    finally:
        cluster.kubectl(
            "delete", "--namespace", release.watched, "bentodeployment", name, "--wait=false"
        )
