"""`kubento deploy` against a real API server: a service graph becomes a BentoDeployment
that the operator brings to Ready, one Deployment per service."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
import yaml

from tests.cluster.controlplane import IMAGE, ControlPlane
from tests.cluster.operator_process import (
    REPO,
    Operator,
    install_crd,
    names,
    running_operator,
    wait_condition,
)

pytestmark = pytest.mark.cluster

EXAMPLE = REPO / "examples" / "graph"


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as running:
        yield running


def deploy(cluster: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "kubento", "deploy", "service:Graph", "--image", IMAGE),
            *("--working-dir", str(EXAMPLE), "--kubeconfig", str(cluster.kubeconfig), *args),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_creates_a_bento_deployment_that_becomes_ready_with_a_deployment_per_service(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    done = deploy(cluster, "-f", str(EXAMPLE / "deploy.yaml"), "--namespace", namespace)
    assert done.returncode == 0, done.stderr
    assert f"bentodeployment.serving.kubento.io/graph applied in namespace {namespace}" in (
        done.stdout
    )
    wait_condition(cluster, namespace, "graph", "Ready")
    expected = {"graph-api", "graph-embed", "graph-model-a", "graph-model-b"}
    assert names(cluster, namespace, "deployment") == expected
    bd = cluster.get_json("-n", namespace, "bentodeployment", "graph", "--show-managed-fields")
    assert bd["status"]["servicesReady"] == "3/3"
    assert bd["status"]["readyComponents"] == "4/4"
    assert "3/3" in cluster.kubectl("-n", namespace, "get", "bd").stdout
    managers = {m["manager"] for m in bd["metadata"]["managedFields"]}
    assert "kubento-deploy" in managers


def test_deploy_again_is_an_idempotent_server_side_apply(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    for _ in range(2):
        done = deploy(cluster, "--namespace", namespace, "--name", "again")
        assert done.returncode == 0, done.stderr
    bd = cluster.get_json("-n", namespace, "bentodeployment", "again")
    assert bd["metadata"]["generation"] == 1


def test_the_dry_run_yaml_is_what_kubectl_apply_accepts(
    cluster: ControlPlane, namespace: str
) -> None:
    install_crd(cluster)
    done = deploy(cluster, "--dry-run", "--namespace", namespace, "--name", "dry")
    assert done.returncode == 0, done.stderr
    applied = subprocess.run(
        ["kubectl", "--kubeconfig", str(cluster.kubeconfig), "apply", "-f", "-"],
        input=done.stdout,
        capture_output=True,
        text=True,
    )
    assert applied.returncode == 0, applied.stderr
    assert yaml.safe_load(done.stdout)["metadata"] == {"name": "dry", "namespace": namespace}
