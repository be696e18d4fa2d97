"""A BentoDeployment's life as users drive it with kubectl: apply, wait, update, fail and
recover, reject, delete; and an operator killed mid-reconcile that converges after restart.

One operator process serves the whole module; each test has its own namespace.
"""

from __future__ import annotations

import copy
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubento import contract
from tests.cluster.controlplane import IMAGE, ControlPlane
from tests.cluster.operator_process import (
    REPO,
    Operator,
    condition,
    install_crd,
    names,
    running_operator,
    wait_condition,
    wait_for,
)

pytestmark = pytest.mark.cluster

EXAMPLE = REPO / "examples" / "composition" / "bentodeployment.yaml"
NAME = "composition"
SELECTOR = f"serving.kubento.io/deployment={NAME}"
COMPONENTS = {"api", "embed-small", "embed-large", "scorer"}
GPU_NODE = "kwok-gpu-0"
CHILD_KINDS = "deployments,replicasets,pods,services,horizontalpodautoscalers,ingresses"


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as running:
        yield running


@pytest.fixture
def crd(cluster: ControlPlane) -> ControlPlane:
    """The cluster with the CRD installed, for tests that need no operator running."""
    install_crd(cluster)
    return cluster


def example() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())  # type: ignore[no-any-return]


def runner(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = (r for r in manifest["spec"]["runners"] if r["name"] == name)
    return found  # type: ignore[no-any-return]


def kubectl_apply(
    cluster: ControlPlane, namespace: str, path: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """`kubectl apply -n NS -f FILE`, as a user types it."""
    return cluster.kubectl("apply", "-n", namespace, "-f", str(path), check=check)


def apply_edited(
    cluster: ControlPlane, namespace: str, manifest: dict[str, Any], tmp_path: Path
) -> None:
    """Write the edited manifest to a file and `kubectl apply` it."""
    path = tmp_path / f"{manifest['metadata']['name']}-edited.yaml"
    path.write_text(yaml.safe_dump(manifest, sort_keys=False))
    kubectl_apply(cluster, namespace, path)


def kubectl_wait_ready(cluster: ControlPlane, namespace: str, name: str = NAME) -> None:
    result = cluster.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=condition=Ready",
        f"bd/{name}",
        "--timeout=120s",
        check=False,
        timeout=150,
    )
    assert result.returncode == 0, f"kubectl wait failed: {result.stderr}"
    assert result.stdout.strip() == f"bentodeployment.serving.kubento.io/{name} condition met"


def bento(cluster: ControlPlane, namespace: str, name: str = NAME) -> dict[str, Any]:
    return cluster.get_json("-n", namespace, "bentodeployment", name)  # type: ignore[no-any-return]


def settled(cluster: ControlPlane, namespace: str, generation: int, name: str = NAME) -> bool:
    """The operator acted on `generation`, every component is ready and fully rolled out."""
    bd = bento(cluster, namespace, name)
    status = bd.get("status", {})
    conditions = {c["type"]: c for c in status.get("conditions", [])}
    ready, progressing = conditions.get("Ready", {}), conditions.get("Progressing", {})
    return (
        bd["metadata"]["generation"] == generation
        and status.get("observedGeneration") == generation
        and ready.get("status") == "True"
        and ready.get("observedGeneration") == generation
        and progressing.get("reason") == "RolloutComplete"
    )


def wait_settled(cluster: ControlPlane, namespace: str, generation: int, name: str = NAME) -> None:
    wait_for(
        f"{name} Ready and rolled out at generation {generation}",
        lambda: settled(cluster, namespace, generation, name),
        timeout=120,
    )


def deploy_example(cluster: ControlPlane, namespace: str) -> None:
    kubectl_apply(cluster, namespace, EXAMPLE)
    kubectl_wait_ready(cluster, namespace)
    wait_settled(cluster, namespace, generation=1)


def child_name(component: str) -> str:
    return f"{NAME}-{component}"


def component_selector(cluster: ControlPlane, namespace: str, component: str) -> str:
    """The label selector of one component's Deployment (matches its ReplicaSets and pods)."""
    deployment = cluster.get_json("-n", namespace, "deployment", child_name(component))
    labels = deployment["spec"]["selector"]["matchLabels"]
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def replicasets(cluster: ControlPlane, namespace: str, component: str) -> dict[str, int]:
    """ReplicaSet name -> spec.replicas, of one component's Deployment."""
    selector = component_selector(cluster, namespace, component)
    items = cluster.get_json("-n", namespace, "replicasets", "-l", selector)["items"]
    return {rs["metadata"]["name"]: rs["spec"]["replicas"] for rs in items}


def pods_of(cluster: ControlPlane, namespace: str, component: str) -> list[dict[str, Any]]:
    """One component's pods that are not being deleted."""
    selector = component_selector(cluster, namespace, component)
    items = cluster.get_json("-n", namespace, "pods", "-l", selector)["items"]
    return [pod for pod in items if not pod["metadata"].get("deletionTimestamp")]


def table(cluster: ControlPlane, namespace: str, *extra: str) -> dict[str, str]:
    """The one row of `kubectl get bd NAME`, keyed by column header."""
    lines = cluster.kubectl("get", "bd", NAME, "-n", namespace, *extra).stdout.splitlines()
    header, row = lines
    return dict(zip(header.split(), row.split(), strict=True))


def test_kubectl_wait_and_get_show_the_composition_ready_with_real_columns(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    deploy_example(cluster, namespace)

    columns = table(cluster, namespace)
    age = columns.pop("AGE")
    assert columns == {
        "NAME": NAME,
        "READY": "True",
        "COMPONENTS": "4/4",
        "API": "1/1",
        "RUNNERS": "3/3",
        "SERVICES": "0/0",
        "ENDPOINT": "http://composition.example.com/",
    }
    assert re.fullmatch(r"\d+s|\dm\d*s?", age), f"AGE should be a few seconds, got {age!r}"
    assert table(cluster, namespace, "-o", "wide")["REASON"] == "AllComponentsReady"
    assert names(cluster, namespace, "deployments", "-l", SELECTOR) == {
        child_name(c) for c in COMPONENTS
    }


def test_adding_a_runner_creates_its_children_and_is_ready_again(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    deploy_example(cluster, namespace)
    uid = bento(cluster, namespace)["metadata"]["uid"]
    manifest = example()
    manifest["spec"]["runners"].append(
        {"name": "re_ranker", "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}
    )
    apply_edited(cluster, namespace, manifest, tmp_path)
    wait_settled(cluster, namespace, generation=2)

    added = child_name("re-ranker")
    for kind in ("deployments", "services", "horizontalpodautoscalers"):
        assert added in names(cluster, namespace, kind, "-l", SELECTOR), kind
    deployment = cluster.get_json("-n", namespace, "deployment", added)
    assert [(o["kind"], o["uid"]) for o in deployment["metadata"]["ownerReferences"]] == [
        ("BentoDeployment", uid)
    ]
    assert deployment["status"]["readyReplicas"] == 1
    hpa = cluster.get_json("-n", namespace, "hpa", added)
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 2)
    assert table(cluster, namespace)["COMPONENTS"] == "5/5"
    assert table(cluster, namespace)["RUNNERS"] == "4/4"


def _set_env(scorer: dict[str, Any]) -> None:
    scorer["envs"] = [{"name": "SCORER_THRESHOLD", "value": "0.75"}]


def _set_resources(scorer: dict[str, Any]) -> None:
    scorer["resources"] = {"requests": {"cpu": "300m", "memory": "384Mi"}}


@pytest.mark.parametrize("edit", [_set_env, _set_resources], ids=["env", "resources"])
def test_changing_a_runner_pod_template_rolls_only_that_runner(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path, edit: Any
) -> None:
    deploy_example(cluster, namespace)
    checksum_key = "serving.kubento.io/config-checksum"

    def checksum() -> str:
        deployment = cluster.get_json("-n", namespace, "deployment", child_name("scorer"))
        return deployment["spec"]["template"]["metadata"]["annotations"][checksum_key]  # type: ignore[no-any-return]

    before = checksum()
    (old_rs,) = replicasets(cluster, namespace, "scorer")
    (old_pod,) = pods_of(cluster, namespace, "scorer")
    untouched = {c: replicasets(cluster, namespace, c) for c in COMPONENTS - {"scorer"}}

    manifest = example()
    edit(runner(manifest, "scorer"))
    apply_edited(cluster, namespace, manifest, tmp_path)
    wait_settled(cluster, namespace, generation=2)

    assert checksum() != before
    current = replicasets(cluster, namespace, "scorer")
    assert current.pop(old_rs) == 0, "the old ReplicaSet should be scaled down to 0"
    assert list(current.values()) == [1], f"one new ReplicaSet expected, got {current}"

    def replaced() -> list[dict[str, Any]]:
        pods = pods_of(cluster, namespace, "scorer")
        names_now = {p["metadata"]["name"] for p in pods}
        return pods if old_pod["metadata"]["name"] not in names_now and len(pods) == 1 else []

    (new_pod,) = wait_for("the old scorer pod to be replaced", replaced)
    container = new_pod["spec"]["containers"][0]
    (new_rs,) = current
    assert new_pod["metadata"]["ownerReferences"][0]["name"] == new_rs
    if edit is _set_env:
        assert {"name": "SCORER_THRESHOLD", "value": "0.75"} in container["env"]
    else:
        assert container["resources"]["requests"] == {"cpu": "300m", "memory": "384Mi"}
    assert {c: replicasets(cluster, namespace, c) for c in untouched} == untouched, (
        "components whose pod template did not change must not roll"
    )


def test_changing_autoscaling_moves_the_hpa_bounds_and_the_replicas(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    deploy_example(cluster, namespace)
    manifest = example()
    runner(manifest, "scorer")["autoscaling"] = {"minReplicas": 2, "maxReplicas": 6}
    runner(manifest, "embed-large")["autoscaling"] = {"minReplicas": 1, "maxReplicas": 3}
    del runner(manifest, "embed-small")["autoscaling"]
    apply_edited(cluster, namespace, manifest, tmp_path)

    def hpa_bounds() -> dict[str, tuple[int, int]]:
        items = cluster.get_json("-n", namespace, "hpa", "-l", SELECTOR)["items"]
        return {
            h["metadata"]["name"]: (h["spec"]["minReplicas"], h["spec"]["maxReplicas"])
            for h in items
        }

    expected = {
        child_name("api"): (1, 5),
        child_name("scorer"): (2, 6),
        child_name("embed-large"): (1, 3),
    }
    wait_for(f"HPAs {expected}", lambda: hpa_bounds() == expected)
    # The HPA controller (not the operator) raises the scorer to its new minimum.
    wait_for(
        "the HPA to scale the scorer Deployment to 2 ready replicas",
        lambda: (
            cluster.get_json("-n", namespace, "deployment", child_name("scorer"))["status"].get(
                "readyReplicas"
            )
            == 2
        ),
        timeout=120,
    )
    wait_settled(cluster, namespace, generation=2)
    scorer = next(
        r for r in bento(cluster, namespace)["status"]["runners"] if r["name"] == "scorer"
    )
    assert (scorer["readyReplicas"], scorer["desiredReplicas"]) == (2, 2)
    small = cluster.get_json("-n", namespace, "deployment", child_name("embed-small"))
    assert small["spec"]["replicas"] == 1, "without autoscaling the operator pins one replica"


def test_gpu_over_request_is_degraded_and_recovers_when_the_spec_is_fixed(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    manifest = example()
    runner(manifest, "embed-large")["resources"]["limits"]["gpu"] = 64
    apply_edited(cluster, namespace, manifest, tmp_path)

    problem = wait_condition(cluster, namespace, NAME, "Degraded")
    assert problem["reason"] == "Unschedulable"
    assert problem["message"].startswith("embed-large: pod composition-embed-large-")
    assert "Insufficient nvidia.com/gpu" in problem["message"]
    assert problem["message"].endswith("(the pod requests nvidia.com/gpu=64)")
    assert condition(cluster, namespace, NAME, "Ready")["reason"] == "Unschedulable"
    assert table(cluster, namespace)["READY"] == "False"

    runner(manifest, "embed-large")["resources"]["limits"]["gpu"] = 1
    apply_edited(cluster, namespace, manifest, tmp_path)
    kubectl_wait_ready(cluster, namespace)
    wait_settled(cluster, namespace, generation=2)

    healthy = condition(cluster, namespace, NAME, "Degraded")
    assert (healthy["status"], healthy["reason"]) == ("False", "Healthy")
    (pod,) = wait_for(
        "one embed-large pod, on the GPU node",
        lambda: pods_of(cluster, namespace, "embed-large"),
    )
    assert pod["spec"]["nodeName"] == GPU_NODE
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


INVALID = {
    "unknown-enum-value": (
        lambda m: m["spec"].update(imagePullPolicy="Sometimes"),
        'spec.imagePullPolicy: Unsupported value: "Sometimes": '
        'supported values: "Always", "IfNotPresent", "Never"',
    ),
    "bad-runner-name": (
        lambda m: m["spec"]["runners"][0].update(name="Embed.Small"),
        'spec.runners[0].name: Invalid value: "Embed.Small": spec.runners[0].name in body '
        f"should match '{contract.NAME_PATTERN}'",
    ),
    "missing-required-field": (
        lambda m: m["spec"].pop("service"),
        "spec.service: Required value",
    ),
    "wrong-type": (
        lambda m: m["spec"]["runners"][0].update(workers="two"),
        'spec.runners[0].workers: Invalid value: "string": '
        "spec.runners[0].workers in body must be of type integer",
    ),
    "runner-min-above-max": (
        lambda m: m["spec"]["runners"][2].update(autoscaling={"minReplicas": 4, "maxReplicas": 3}),
        'spec.runners[2].autoscaling.minReplicas: Invalid value: "object": '
        "minReplicas must be less than or equal to maxReplicas",
    ),
    "queue-smaller-than-a-batch": (
        lambda m: m["spec"]["runners"][0].update(batching={"maxBatchSize": 64, "maxQueueSize": 8}),
        'spec.runners[0].batching.maxQueueSize: Invalid value: "object": '
        "maxQueueSize must be 0 (unbounded) or at least maxBatchSize",
    ),
    "concurrency-over-its-bound": (
        lambda m: m["spec"]["runners"][0].update(batching={"maxConcurrency": 100}),
        "spec.runners[0].batching.maxConcurrency in body should be less than or equal to 64",
    ),
    "concurrency-word-unknown": (
        lambda m: m["spec"]["runners"][0].update(batching={"maxConcurrency": "fast"}),
        "spec.runners[0].batching.maxConcurrency in body should match '^(auto)$'",
    ),
    "unknown-field": (
        lambda m: m["spec"].update(replica=3),
        'unknown field "spec.replica"',
    ),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_spec_is_rejected_by_kubectl_apply_with_a_readable_message(
    crd: ControlPlane, namespace: str, tmp_path: Path, case: str
) -> None:
    break_it, message = INVALID[case]
    manifest = copy.deepcopy(example())
    break_it(manifest)
    path = tmp_path / "invalid.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = kubectl_apply(crd, namespace, path, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert result.stderr.startswith(
        ('The BentoDeployment "composition" is invalid', "Error from server")
    ), result.stderr
    missing = crd.kubectl("get", "bd", NAME, "-n", namespace, check=False)
    assert "NotFound" in missing.stderr


@pytest.mark.parametrize("value", ["auto", 1, 64])
def test_max_concurrency_takes_auto_or_a_number_in_its_bounds(
    crd: ControlPlane, namespace: str, tmp_path: Path, value: object
) -> None:
    manifest = copy.deepcopy(example())
    manifest["spec"]["runners"][0]["batching"] = {"maxConcurrency": value}
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump(manifest))
    result = crd.kubectl("apply", "--dry-run=server", "-n", namespace, "-f", str(path), check=False)
    assert result.returncode == 0, result.stderr


def test_deleting_the_bentodeployment_garbage_collects_every_child(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    deploy_example(cluster, namespace)
    children = cluster.kubectl("get", CHILD_KINDS, "-n", namespace, "-l", SELECTOR, "-o", "name")
    kinds = {line.split("/")[0] for line in children.stdout.split()}
    assert kinds == {
        "deployment.apps",
        "replicaset.apps",
        "pod",
        "service",
        "horizontalpodautoscaler.autoscaling",
        "ingress.networking.k8s.io",
    }

    cluster.kubectl("delete", "-n", namespace, f"bd/{NAME}", "--timeout=60s", timeout=90)

    def leftovers() -> str:
        result = cluster.kubectl("get", CHILD_KINDS, "-n", namespace, "-l", SELECTOR, "-o", "name")
        return result.stdout.strip()

    wait_for("the garbage collector to delete every child", lambda: not leftovers(), timeout=120)


def test_operator_killed_mid_reconcile_converges_after_restart_without_duplicates(
    cluster: ControlPlane, namespace: str, operator: Operator, tmp_path: Path
) -> None:
    runners = [f"model_{i:02d}" for i in range(12)]
    manifest = {
        "apiVersion": "serving.kubento.io/v1alpha1",
        "kind": "BentoDeployment",
        "metadata": {"name": "many"},
        "spec": {
            "image": IMAGE,
            "service": "service:svc",
            "autoscaling": {"minReplicas": 1, "maxReplicas": 2},
            "runners": [
                {"name": name, "autoscaling": {"minReplicas": 1, "maxReplicas": 2}}
                for name in runners
            ],
        },
    }
    selector = "serving.kubento.io/deployment=many"
    expected = {"many-api"} | {f"many-{name.replace('_', '-')}" for name in runners}
    # A Deployment of our own, listed first, proves the watch is live before the apply.
    cluster.kubectl(
        "create", "deployment", "watch-sentinel", "-n", namespace, "--image=none", "--replicas=0"
    )
    watch = subprocess.Popen(
        [
            *("kubectl", "--kubeconfig", str(cluster.kubeconfig), "get", "deployments"),
            *("-n", namespace, "--watch", "-o", "name"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().strip() == "deployment.apps/watch-sentinel"
        apply_edited(cluster, namespace, manifest, tmp_path)
        first = watch.stdout.readline()  # the first child Deployment the operator created
        operator.kill()
    finally:
        watch.kill()
        watch.wait()
    try:
        assert first.startswith("deployment.apps/many-")
        at_kill = names(cluster, namespace, "deployments", "-l", selector)
        assert 0 < len(at_kill) < len(expected), f"not mid-reconcile: {len(at_kill)} Deployments"
    finally:
        operator.start()

    wait_settled(cluster, namespace, generation=1, name="many")
    for kind in ("deployments", "services", "horizontalpodautoscalers", "replicasets", "pods"):
        items = cluster.get_json("-n", namespace, kind, "-l", selector)["items"]
        owners = [
            item["metadata"]["ownerReferences"][0]["name"]
            if kind in ("replicasets", "pods")
            else item["metadata"]["name"]
            for item in items
        ]
        assert len(owners) == len(set(owners)) == len(expected), f"{kind}: {sorted(owners)}"
    for deployment in cluster.get_json("-n", namespace, "deployments", "-l", selector)["items"]:
        assert deployment["metadata"]["generation"] == 1, "a restart must not roll pods"
        assert len(deployment["metadata"]["ownerReferences"]) == 1
    bd = bento(cluster, namespace, "many")
    assert bd["status"]["observedGeneration"] == bd["metadata"]["generation"] == 1
    assert bd["status"]["readyComponents"] == f"{len(expected)}/{len(expected)}"
