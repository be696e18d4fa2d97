"""Queue-depth autoscaling against a real API server: the rendered HPAs are created by
kube-apiserver itself, the rendered ScaledObjects by KEDA's own CRD (v2.21.1, committed in
tests/fixtures/keda with its origin), and the operator applies, reports and prunes them.

No test here scales real pods on queue depth: that needs Prometheus plus prometheus-adapter
or KEDA's operator running, which this control plane does not have (see the README).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from kubento_operator.render import render
from tests import crd_fixtures
from tests.cluster.controlplane import IMAGE, ControlPlane
from tests.cluster.operator_process import (
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

KEDA_CRD = "crd/scaledobjects.keda.sh"


def bento(name: str, autoscaling: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "serving.kubento.io/v1alpha1",
        "kind": "BentoDeployment",
        "metadata": {"name": name},
        "spec": {
            "image": IMAGE,
            "service": "service:svc",
            "runners": [{"name": "clf", "autoscaling": autoscaling}],
            **spec,
        },
    }


def rendered(namespace: str, name: str, autoscaling: dict[str, Any], kind: str) -> dict[str, Any]:
    """The object of `kind` the operator renders for runner `clf` (no owner: a dry run)."""
    obj = bento(name, autoscaling)
    obj["metadata"]["namespace"] = namespace
    (found,) = [
        c for c in render(obj) if c["kind"] == kind and c["metadata"]["name"].endswith("-clf")
    ]
    return found


def create_strictly(cluster: ControlPlane, obj: dict[str, Any], check: bool = True) -> Any:
    """Server-side apply with strict field validation: an unknown field is an error, not
    silently pruned."""
    return cluster.kubectl(
        "apply",
        "--server-side",
        "--field-manager=kubento-operator",
        "--validate=strict",
        "-f",
        "-",
        input=json.dumps(obj),
        check=check,
    )


def install_keda_crd(cluster: ControlPlane) -> None:
    cluster.kubectl("apply", "--server-side", "-f", str(crd_fixtures.KEDA_SCALED_OBJECTS))
    cluster.kubectl("wait", "--for=condition=Established", KEDA_CRD)


HPA_CASES = {
    "queue": {"minReplicas": 2, "maxReplicas": 8, "metric": "queue", "target": 16},
    "inflight": {
        "maxReplicas": 4,
        "metric": "inflight",
        "target": 3,
        "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
    },
    "cpu": {"maxReplicas": 3, "target": 65},
}
KEDA_CASES = {
    "queue": {"maxReplicas": 5, "metric": "queue", "target": 32, "engine": "keda"},
    "inflight": {
        "minReplicas": 2,
        "maxReplicas": 9,
        "metric": "inflight",
        "target": 3,
        "engine": "keda",
        "prometheusAddress": "http://prom.obs.svc:9090",
        "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}},
    },
    "cpu": {"maxReplicas": 2, "engine": "keda", "target": 70},
}


@pytest.mark.parametrize("case", sorted(HPA_CASES))
def test_the_api_server_creates_each_rendered_hpa_as_rendered(
    cluster: ControlPlane, namespace: str, case: str
) -> None:
    hpa = rendered(namespace, f"hpa-{case}", HPA_CASES[case], "HorizontalPodAutoscaler")
    create_strictly(cluster, hpa)
    stored = cluster.get_json("-n", namespace, "hpa", hpa["metadata"]["name"])
    assert stored["spec"]["metrics"] == hpa["spec"]["metrics"]
    assert stored["spec"]["maxReplicas"] == hpa["spec"]["maxReplicas"]


def test_without_kedas_crd_a_keda_autoscaler_fails_naming_what_to_install(
    cluster: ControlPlane, namespace: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cluster.kubectl("delete", KEDA_CRD, "--ignore-not-found", "--wait=true")
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as operator:
        # Without the CRD a prune has no ScaledObjects to look at, and must not fail on them.
        apply(cluster, namespace, bento("plain", HPA_CASES["queue"]))
        wait_condition(cluster, namespace, "plain", "Ready")
        apply(cluster, namespace, bento("scaled", KEDA_CASES["queue"]))
        degraded = wait_condition(cluster, namespace, "scaled", "Degraded")
        assert degraded["reason"] == "ApplyFailed"
        assert degraded["message"] == (
            "ScaledObject/scaled-clf: the cluster does not serve ScaledObject (keda.sh/v1alpha1): "
            "install KEDA, or set autoscaling.engine to hpa"
        )
        # Once KEDA's CRD is there, the retry applies it.
        install_keda_crd(cluster)
        wait_for(
            "the ScaledObject after KEDA's CRD was installed",
            lambda: "scaled-clf" in names(cluster, namespace, "scaledobjects"),
            timeout=120,
        )
        wait_condition(cluster, namespace, "scaled", "Ready")
        assert operator.running()


@pytest.mark.parametrize("case", sorted(KEDA_CASES))
def test_kedas_crd_accepts_each_rendered_scaled_object_as_rendered(
    cluster: ControlPlane, namespace: str, case: str
) -> None:
    install_keda_crd(cluster)
    scaled = rendered(namespace, f"keda-{case}", KEDA_CASES[case], "ScaledObject")
    create_strictly(cluster, scaled)
    stored = cluster.get_json("-n", namespace, "scaledobject", scaled["metadata"]["name"])
    assert stored["spec"] == scaled["spec"]  # nothing pruned, nothing defaulted away


def test_strict_validation_would_refuse_a_field_kedas_crd_lacks(
    cluster: ControlPlane, namespace: str
) -> None:
    install_keda_crd(cluster)
    scaled = rendered(namespace, "keda-typo", KEDA_CASES["queue"], "ScaledObject")
    scaled["spec"]["maxReplicas"] = 5
    result = create_strictly(cluster, scaled, check=False)
    assert result.returncode != 0
    # Server-side apply, as the operator uses it, refuses what the schema does not declare.
    assert ".spec.maxReplicas: field not declared in schema" in result.stderr


@pytest.fixture(scope="module")
def operator(cluster: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Operator]:
    install_keda_crd(cluster)
    with running_operator(cluster, tmp_path_factory.mktemp("operator")) as running:
        yield running


def test_switching_engines_replaces_the_autoscaler_and_prunes_the_old_one(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    apply(cluster, namespace, bento("switch", KEDA_CASES["queue"]))
    wait_condition(cluster, namespace, "switch", "Ready")
    (scaled,) = cluster.get_json("-n", namespace, "scaledobjects")["items"]
    assert scaled["metadata"]["ownerReferences"][0]["name"] == "switch"
    assert scaled["spec"]["triggers"][0]["type"] == "prometheus"

    apply(cluster, namespace, bento("switch", HPA_CASES["queue"]))
    wait_for(
        "the HPA to replace the ScaledObject",
        lambda: (
            names(cluster, namespace, "scaledobjects") == set()
            and "switch-clf" in names(cluster, namespace, "hpa")
        ),
    )
    hpa = cluster.get_json("-n", namespace, "hpa", "switch-clf")
    assert hpa["spec"]["metrics"][0]["pods"]["metric"]["name"] == "kubento_runner_queue_depth"
    assert condition(cluster, namespace, "switch", "Degraded").get("status") != "True"


@pytest.mark.parametrize(
    ("autoscaling", "message"),
    [
        ({"maxReplicas": 2, "metric": "queue"}, "target (rows per pod) is required"),
        (
            {"maxReplicas": 2, "metric": "queue", "target": 0},
            "should be greater than or equal to 1",
        ),
        ({"maxReplicas": 2, "metric": "gpu"}, 'supported values: "cpu", "queue", "inflight"'),
        ({"maxReplicas": 2, "engine": "keda", "metrics": [{"type": "Pods"}]}, "needs engine hpa"),
        ({"maxReplicas": 2, "prometheusAddress": "http://p:9090"}, "engine keda only"),
        ({"minReplicas": 3, "maxReplicas": 2}, "minReplicas must be less than or equal"),
    ],
)
def test_the_crd_refuses_a_bad_autoscaling_spec_with_a_clear_message(
    cluster: ControlPlane, namespace: str, autoscaling: dict[str, Any], message: str
) -> None:
    install_crd(cluster)
    result = apply(cluster, namespace, bento("bad", autoscaling), check=False)
    assert result.returncode != 0
    assert "spec.runners[0].autoscaling" in result.stderr
    assert message in result.stderr


def test_the_crd_refuses_queue_autoscaling_on_the_api_server(
    cluster: ControlPlane, namespace: str
) -> None:
    install_crd(cluster)
    bad = bento("bad", {"maxReplicas": 2})
    bad["spec"]["autoscaling"] = {"maxReplicas": 3, "metric": "queue", "target": 4}
    result = apply(cluster, namespace, bad, check=False)
    assert result.returncode != 0
    assert "the API server has no batching queue" in result.stderr


def test_an_hpa_that_cannot_read_queue_depth_shows_in_the_status_with_its_reason(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    """No custom metrics API here: the HPA controller's own verdict reaches the status."""
    apply(cluster, namespace, bento("blind", HPA_CASES["queue"]))
    wait_condition(cluster, namespace, "blind", "Ready")
    scaling = wait_condition(cluster, namespace, "blind", "Autoscaling", status="False")
    assert scaling["reason"] == "FailedGetPodsMetric"
    assert scaling["message"].startswith("clf: ")
    assert "kubento_runner_queue_depth" in scaling["message"]
    # The pods serve: the autoscaler's trouble is reported, not counted as degraded.
    assert condition(cluster, namespace, "blind", "Degraded")["status"] == "False"
    assert condition(cluster, namespace, "blind", "Ready")["status"] == "True"


def test_a_scaled_object_keda_refused_shows_in_the_status_with_its_reason(
    cluster: ControlPlane, namespace: str, operator: Operator
) -> None:
    """No KEDA operator here, so no HPA: KEDA's verdict is written where KEDA writes it, the
    ScaledObject's status, and the operator, watching ScaledObjects, reports it."""
    apply(cluster, namespace, bento("refused", KEDA_CASES["queue"]))
    wait_condition(cluster, namespace, "refused", "Ready")
    pending = wait_condition(cluster, namespace, "refused", "Autoscaling", status="Unknown")
    assert pending["reason"] == "Pending"
    refused = {
        "type": "Ready",
        "status": "False",
        "reason": "ScaledObjectCheckFailed",
        "message": "error parsing prometheus metadata: no serverAddress given",
    }
    cluster.kubectl(
        "-n",
        namespace,
        "patch",
        "scaledobject",
        "refused-clf",
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps({"status": {"conditions": [refused]}}),
    )
    scaling = wait_condition(cluster, namespace, "refused", "Autoscaling", status="False")
    assert scaling["reason"] == "ScaledObjectCheckFailed"
    assert scaling["message"] == f"clf: {refused['message']}"
    assert condition(cluster, namespace, "refused", "Ready")["status"] == "True"
