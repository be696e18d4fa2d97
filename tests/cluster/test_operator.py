"""The operator against a real API server: CRD and CEL rules, apply, prune, honest status."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.cluster.controlplane import IMAGE, ControlPlane
from tests.cluster.operator_process import (
    REPO,
    Operator,
    apply,
    condition,
    install_crd,
    names,
    running_operator,
    wait_condition,
    wait_for,
)

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    """The CRD installed and `kubento-operator run` running as a process against the cluster."""
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as running:
        yield running


def bento(name: str, runners: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubento.io/v1alpha1",
        "kind": "BentoDeployment",
        "metadata": {"name": name},
        "spec": {"image": IMAGE, "service": "service:svc", "runners": runners, **spec},
    }


def test_crd_rejects_min_replicas_above_max_replicas(cluster: ControlPlane, namespace: str) -> None:
    install_crd(cluster)
    bad = bento("bad", [], autoscaling={"minReplicas": 5, "maxReplicas": 2})
    result = apply(cluster, namespace, bad, check=False)
    assert result.returncode != 0
    assert "minReplicas must be less than or equal to maxReplicas" in result.stderr


def test_crd_rejects_runner_names_that_collide(cluster: ControlPlane, namespace: str) -> None:
    install_crd(cluster)
    result = apply(
        cluster, namespace, bento("dup", [{"name": "a_b"}, {"name": "a-b"}]), check=False
    )
    assert result.returncode != 0
    assert "runner names must be unique" in result.stderr


def test_example_becomes_ready_with_owned_children(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    example = yaml.safe_load((REPO / "examples/quickstart/bentodeployment.yaml").read_text())
    example["spec"]["image"] = IMAGE
    apply(cluster, namespace, example)
    wait_condition(cluster, namespace, "quickstart", "Ready")
    bd = cluster.get_json("-n", namespace, "bentodeployment", "quickstart")
    assert bd["status"]["observedGeneration"] == bd["metadata"]["generation"]
    assert bd["status"]["readyComponents"] == "2/2"
    for kind in ("deployment", "service", "hpa"):
        assert names(cluster, namespace, kind) == {"quickstart-api", "quickstart-classifier"}
    child = cluster.get_json(
        "-n", namespace, "deployment", "quickstart-classifier", "--show-managed-fields"
    )
    (owner,) = child["metadata"]["ownerReferences"]
    assert (owner["uid"], owner["controller"]) == (bd["metadata"]["uid"], True)
    managers = {entry["manager"] for entry in child["metadata"]["managedFields"]}
    assert "kubento-operator" in managers
    table = cluster.kubectl("-n", namespace, "get", "bd").stdout
    assert "quickstart" in table and "2/2" in table


def test_removed_runner_is_pruned(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    runners: list[dict[str, Any]] = [
        {"name": "keep"},
        {"name": "drop_me", "autoscaling": {"maxReplicas": 2}},
    ]
    apply(cluster, namespace, bento("prune", runners))
    wait_for("the drop_me runner", lambda: "prune-drop-me" in names(cluster, namespace, "deploy"))
    apply(cluster, namespace, bento("prune", runners[:1]))
    for kind in ("deployment", "service", "hpa"):

        def pruned(kind: str = kind) -> bool:
            return names(cluster, namespace, kind) <= {"prune-api", "prune-keep"}

        wait_for(f"{kind} prune-drop-me to be pruned", pruned)

    def ready_at_new_generation() -> bool:
        bd = cluster.get_json("-n", namespace, "bentodeployment", "prune")
        ready = condition(cluster, namespace, "prune", "Ready")
        return bool(
            bd["status"].get("observedGeneration") == bd["metadata"]["generation"] == 2
            and ready.get("status") == "True"
            and ready.get("observedGeneration") == 2
        )

    wait_for("Ready=True for generation 2", ready_at_new_generation)


def test_spec_the_operator_cannot_honour_is_degraded_naming_the_field(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    obj = bento("reserved", [], envs=[{"name": "KUBENTO_RUNNER_MAP", "value": "{}"}])
    apply(cluster, namespace, obj)
    degraded = wait_condition(cluster, namespace, "reserved", "Degraded")
    assert degraded["reason"] == "InvalidSpec"
    assert degraded["message"].startswith("spec.envs[0].name:")
    assert operator.running()


def test_missing_gpus_show_the_scheduler_message(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    apply(
        cluster, namespace, bento("greedy", [{"name": "llm", "resources": {"limits": {"gpu": 64}}}])
    )
    degraded = wait_condition(cluster, namespace, "greedy", "Degraded")
    assert degraded["reason"] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in degraded["message"]
    events = cluster.get_json("-n", namespace, "events")["items"]
    assert any(e["reason"] == "Unschedulable" and e["type"] == "Warning" for e in events)


def test_health_and_metrics_endpoints(operator: Operator) -> None:
    def get(port: int, path: str) -> tuple[int, str]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()

    def healthy() -> bool:
        try:
            return get(operator.health, "/healthz")[0] == 200
        except OSError:
            return False

    wait_for("/healthz", healthy, timeout=30)
    status, body = get(operator.metrics, "/metrics")
    assert status == 200
    assert "kubento_operator_reconciles_total" in body


MODEL = {"tag": "iris-clf:v1", "source": "s3://models/iris-clf.tar", "sha256": "a" * 64}


def test_crd_rejects_a_model_without_an_exact_tag_or_digest(
    cluster: ControlPlane, namespace: str
) -> None:
    install_crd(cluster)
    for broken, field in (({"tag": "iris-clf"}, "tag"), ({"sha256": "abc"}, "sha256")):
        bad = bento("bad-model", [{"name": "clf", "models": [MODEL | broken]}])
        result = apply(cluster, namespace, bad, check=False)
        assert result.returncode != 0
        assert f"spec.runners[0].models[0].{field}" in result.stderr


def test_declared_models_become_init_containers_the_api_server_accepts(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    apply(cluster, namespace, bento("fetches", [{"name": "clf", "models": [MODEL]}]))
    wait_condition(cluster, namespace, "fetches", "Ready")
    runner = cluster.get_json("-n", namespace, "deployment", "fetches-clf")
    (pull,) = runner["spec"]["template"]["spec"]["initContainers"]
    assert pull["name"] == "model-0"
    assert pull["args"][:4] == ["models", "pull", MODEL["tag"], MODEL["source"]]
    api = cluster.get_json("-n", namespace, "deployment", "fetches-api")
    assert "initContainers" not in api["spec"]["template"]["spec"]
