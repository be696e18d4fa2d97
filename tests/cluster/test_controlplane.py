"""The control-plane fixture is a real cluster: controllers, scheduler, GC, auth and RBAC work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import GPU_RESOURCE, IMAGE, NODES, ControlPlane
from tests.cluster.operator_process import apply, wait_for

pytestmark = pytest.mark.cluster


def deploy_available(cluster: ControlPlane, namespace: str, name: str, replicas: int) -> None:
    """Apply a Deployment of `replicas` pods labelled app=NAME and wait until it is Available."""
    labels = {"app": name}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "app", "image": IMAGE}]},
            },
        },
    }
    apply(cluster, namespace, deployment)
    cluster.kubectl(
        "-n", namespace, "wait", "--for=condition=Available", f"deployment/{name}", "--timeout=60s"
    )


def pod(name: str, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "model",
                    "image": IMAGE,
                    "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
                }
            ]
        },
    }


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions", []):
        if cond["type"] == type_:
            return cond  # type: ignore[no-any-return]
    return None


def test_deployment_pods_become_running_and_ready_on_kwok_nodes(
    cluster: ControlPlane, namespace: str
) -> None:
    deploy_available(cluster, namespace, "web", replicas=2)

    pods = cluster.get_json("-n", namespace, "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    for p in pods:
        assert p["status"]["phase"] == "Running"
        ready = condition(p, "Ready")
        assert ready is not None and ready["status"] == "True"
        assert p["spec"]["nodeName"] in {n["name"] for n in NODES}


def test_pod_requesting_gpus_is_scheduled_on_the_gpu_node(
    cluster: ControlPlane, namespace: str
) -> None:
    apply(cluster, namespace, pod("fits", gpus=4))
    cluster.kubectl("-n", namespace, "wait", "--for=condition=Ready", "pod/fits", "--timeout=60s")

    assert cluster.get_json("-n", namespace, "pod", "fits")["spec"]["nodeName"] == "kwok-gpu-0"


def test_pod_requesting_more_gpus_than_any_node_stays_pending_unschedulable(
    cluster: ControlPlane, namespace: str
) -> None:
    apply(cluster, namespace, pod("too-big", gpus=8))

    def unschedulable() -> dict[str, Any] | None:
        cond = condition(cluster.get_json("-n", namespace, "pod", "too-big"), "PodScheduled")
        return cond if cond and cond["status"] == "False" else None

    scheduled = wait_for("the scheduler to reject pod too-big", unschedulable)
    assert scheduled["reason"] == "Unschedulable"
    assert f"Insufficient {GPU_RESOURCE}" in scheduled["message"]
    events = cluster.kubectl(
        "-n", namespace, "get", "events", "--field-selector", "involvedObject.name=too-big"
    ).stdout
    assert "FailedScheduling" in events
    assert cluster.get_json("-n", namespace, "pod", "too-big")["status"]["phase"] == "Pending"


def test_deleting_a_deployment_garbage_collects_its_replicasets_and_pods(
    cluster: ControlPlane, namespace: str
) -> None:
    deploy_available(cluster, namespace, "doomed", replicas=1)
    assert cluster.get_json("-n", namespace, "replicasets", "-l", "app=doomed")["items"]

    # Background cascade: the API server deletes only the Deployment; the GC does the rest.
    cluster.kubectl("-n", namespace, "delete", "deployment", "doomed", "--cascade=background")

    def nothing_left() -> bool:
        replicasets = cluster.get_json("-n", namespace, "replicasets", "-l", "app=doomed")
        pods = cluster.get_json("-n", namespace, "pods", "-l", "app=doomed")
        return not replicasets["items"] and not pods["items"]

    wait_for("the garbage collector to delete the ReplicaSet and its Pods", nothing_left)


def _service_account_token(cluster: ControlPlane, namespace: str, tmp_path: Path) -> Path:
    """A ServiceAccount allowed to read pods (and nothing else), as a token kubeconfig."""
    cluster.kubectl("-n", namespace, "create", "serviceaccount", "reader")
    cluster.kubectl(
        "-n", namespace, "create", "role", "pod-reader", "--verb=get,list", "--resource=pods"
    )
    cluster.kubectl(
        "-n",
        namespace,
        "create",
        "rolebinding",
        "reader-reads-pods",
        "--role=pod-reader",
        f"--serviceaccount={namespace}:reader",
    )
    token = cluster.kubectl("-n", namespace, "create", "token", "reader").stdout.strip()
    return cluster.token_kubeconfig(token, tmp_path / "reader.kubeconfig")


def _kubectl_as(kubeconfig: Path, cluster: ControlPlane, *args: str) -> Any:
    return ControlPlane(cluster.name, cluster.workdir, kubeconfig).kubectl(*args, check=False)


def test_service_account_token_authenticates_as_the_service_account(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = _service_account_token(cluster, namespace, tmp_path)

    whoami = _kubectl_as(kubeconfig, cluster, "auth", "whoami", "-o", "json")

    assert whoami.returncode == 0, whoami.stderr
    username = json.loads(whoami.stdout)["status"]["userInfo"]["username"]
    assert username == f"system:serviceaccount:{namespace}:reader"
    bogus = cluster.token_kubeconfig("not-a-token", tmp_path / "bogus.kubeconfig")
    rejected = _kubectl_as(bogus, cluster, "-n", namespace, "get", "pods")
    assert rejected.returncode != 0
    assert "Unauthorized" in rejected.stderr or "provide credentials" in rejected.stderr


def test_rbac_denies_what_the_service_account_was_not_granted(
    cluster: ControlPlane, namespace: str, tmp_path: Path
) -> None:
    kubeconfig = _service_account_token(cluster, namespace, tmp_path)

    granted = _kubectl_as(kubeconfig, cluster, "-n", namespace, "get", "pods")
    denied = _kubectl_as(kubeconfig, cluster, "-n", namespace, "get", "secrets")
    other_namespace = _kubectl_as(kubeconfig, cluster, "-n", "kube-system", "get", "pods")

    assert granted.returncode == 0, granted.stderr
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr
    assert f"system:serviceaccount:{namespace}:reader" in denied.stderr
    assert other_namespace.returncode != 0
    assert "forbidden" in other_namespace.stderr
