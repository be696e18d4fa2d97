"""Autoscaling on CPU, queued rows or rows in flight: an HPA, or a KEDA ScaledObject that
KEDA's own CRD (tests/fixtures/keda) accepts; bad specs refused naming what is wrong."""

from __future__ import annotations

import typing
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from kubento import contract
from kubento_operator import components, naming, spec
from kubento_operator.render import render
from tests import crd_fixtures

KUBERNETES_VERSION = "1.33.0"


def bento(runner_autoscaling: dict[str, Any], **spec_fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {
            "name": "demo",
            "namespace": "ns",
            "uid": "0b1e2c3d-0000-4000-8000-0000000000aa",
        },
        "spec": {
            "image": "img:1",
            "service": "service:svc",
            "runners": [{"name": "clf", "autoscaling": runner_autoscaling}],
            **spec_fields,
        },
    }


def child(children: list[dict[str, Any]], kind: str, name: str = "demo-clf") -> dict[str, Any]:
    (found,) = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == name]
    return found


def kinds(children: list[dict[str, Any]], name: str = "demo-clf") -> set[str]:
    return {c["kind"] for c in children if c["metadata"]["name"] == name}


def keda_schema() -> dict[str, Any]:
    return crd_fixtures.schemas(crd_fixtures.KEDA_SCALED_OBJECTS)[
        ("keda.sh/v1alpha1", "ScaledObject")
    ]


# --- HPA ----------------------------------------------------------------------------------


def test_cpu_stays_the_default_at_80_percent() -> None:
    hpa = child(render(bento({"maxReplicas": 3})), "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80},
            },
        }
    ]


def test_a_cpu_target_is_the_utilization_percent() -> None:
    hpa = child(render(bento({"maxReplicas": 3, "target": 60})), "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


@pytest.mark.parametrize(("metric", "series"), sorted(contract.AUTOSCALING_SERIES.items()))
def test_queue_and_inflight_scale_on_the_pods_series_the_runner_exports(
    metric: str, series: str
) -> None:
    children = render(bento({"minReplicas": 2, "maxReplicas": 8, "metric": metric, "target": 16}))
    hpa = child(children, "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"] == [
        {
            "type": "Pods",
            "pods": {
                "metric": {"name": series},
                "target": {"type": "AverageValue", "averageValue": "16"},
            },
        }
    ]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-clf",
    }
    kubernetes_validate.validate(hpa, KUBERNETES_VERSION, strict=True)


def test_raw_metrics_still_replace_the_default() -> None:
    memory = {
        "type": "Resource",
        "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "1Gi"}},
    }
    hpa = child(render(bento({"maxReplicas": 3, "metrics": [memory]})), "HorizontalPodAutoscaler")
    assert hpa["spec"]["metrics"] == [memory]


# --- KEDA ---------------------------------------------------------------------------------


def test_engine_keda_renders_a_scaled_object_instead_of_an_hpa() -> None:
    children = render(bento({"maxReplicas": 5, "metric": "queue", "target": 32, "engine": "keda"}))
    assert kinds(children) == {
        "Service",
        "Deployment",
        "ScaledObject",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    deployment = child(children, "Deployment")
    assert "replicas" not in deployment["spec"]  # KEDA's HPA owns the count
    scaled = child(children, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["metadata"]["ownerReferences"][0]["kind"] == naming.KIND
    assert scaled["spec"] == {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "demo-clf"},
        "minReplicaCount": 1,
        "maxReplicaCount": 5,
        "triggers": [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": spec.DEFAULT_PROMETHEUS_ADDRESS,
                    "query": 'sum(kubento_runner_queue_depth{namespace="ns",'
                    'serving_kubento_io_deployment="demo",serving_kubento_io_component="runner",'
                    'serving_kubento_io_runner="clf"})',
                    "threshold": "32",
                },
            }
        ],
    }


def test_keda_queries_the_configured_prometheus_and_keeps_the_behavior() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 120}}
    scaled = child(
        render(
            bento(
                {
                    "maxReplicas": 5,
                    "metric": "inflight",
                    "target": 4,
                    "engine": "keda",
                    "prometheusAddress": "http://prom.obs.svc:9090",
                    "behavior": behavior,
                }
            )
        ),
        "ScaledObject",
    )
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["serverAddress"] == "http://prom.obs.svc:9090"
    assert trigger["metadata"]["query"].startswith(f"sum({contract.INFLIGHT_METRIC}{{")
    assert scaled["spec"]["advanced"] == {"horizontalPodAutoscalerConfig": {"behavior": behavior}}


def test_keda_on_cpu_uses_its_cpu_trigger() -> None:
    scaled = child(render(bento({"maxReplicas": 2, "engine": "keda"})), "ScaledObject")
    assert scaled["spec"]["triggers"] == [
        {"type": "cpu", "metricType": "Utilization", "metadata": {"value": "80"}}
    ]


KEDA_CASES = {
    "queue": {"maxReplicas": 5, "metric": "queue", "target": 32, "engine": "keda"},
    "inflight-behavior": {
        "minReplicas": 2,
        "maxReplicas": 9,
        "metric": "inflight",
        "target": 3,
        "engine": "keda",
        "prometheusAddress": "https://prom.example:9090",
        "behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}},
    },
    "cpu": {"maxReplicas": 2, "engine": "keda", "target": 70},
}


@pytest.mark.parametrize("case", sorted(KEDA_CASES))
def test_every_scaled_object_is_valid_for_kedas_crd(case: str) -> None:
    scaled = child(render(bento(KEDA_CASES[case])), "ScaledObject")
    jsonschema.validate(scaled, keda_schema())


def test_the_strict_keda_schema_refuses_an_unknown_field() -> None:
    scaled = child(render(bento(KEDA_CASES["queue"])), "ScaledObject")
    scaled["spec"]["maxReplicas"] = 5
    with pytest.raises(jsonschema.ValidationError, match="maxReplicas"):
        jsonschema.validate(scaled, keda_schema())


def test_a_service_scales_on_its_own_pods_series() -> None:
    obj = bento({"maxReplicas": 2})
    obj["spec"]["runners"] = []
    obj["spec"]["services"] = [
        {
            "name": "ModelA",
            "autoscaling": {"maxReplicas": 4, "metric": "queue", "target": 8, "engine": "keda"},
        }
    ]
    scaled = child(render(obj), "ScaledObject", "demo-model-a")
    query = scaled["spec"]["triggers"][0]["metadata"]["query"]
    assert 'serving_kubento_io_component="service"' in query
    assert 'serving_kubento_io_service="ModelA"' in query


def test_the_query_labels_are_the_ones_the_pod_monitor_copies() -> None:
    """Every selector label of every role is among naming.POD_TARGET_LABELS."""
    obj = spec.parse(bento({"maxReplicas": 2}, services=[{"name": "ModelA"}]))
    for component in components.components_of(obj):
        assert set(component.selector) <= set(naming.POD_TARGET_LABELS), component.role.name


def test_the_metric_enum_is_cpu_plus_the_contracts_series() -> None:
    metric = spec.Autoscaling.model_fields["metric"].annotation
    assert typing.get_args(metric) == ("cpu", *contract.AUTOSCALING_SERIES)


# --- bad specs ----------------------------------------------------------------------------


def error_of(autoscaling: dict[str, Any]) -> spec.SpecError:
    with pytest.raises(spec.SpecError) as caught:
        spec.parse(bento(autoscaling))
    return caught.value


@pytest.mark.parametrize(
    ("autoscaling", "field", "words"),
    [
        ({"minReplicas": 5, "maxReplicas": 2}, "autoscaling", "minReplicas (5) must be less"),
        (
            {"maxReplicas": 2, "metric": "queue", "target": 0},
            "autoscaling.target",
            "greater than or equal to 1",
        ),
        (
            {"maxReplicas": 2, "metric": "queue", "target": -3},
            "autoscaling.target",
            "greater than or equal to 1",
        ),
        ({"maxReplicas": 2, "metric": "gpu"}, "autoscaling.metric", "'cpu', 'queue' or 'inflight'"),
        ({"maxReplicas": 2, "engine": "knative"}, "autoscaling.engine", "'hpa' or 'keda'"),
        ({"maxReplicas": 2, "metric": "queue"}, "autoscaling", "target (rows per pod) is required"),
        (
            {"maxReplicas": 2, "metric": "inflight", "target": 2, "metrics": [{"type": "Pods"}]},
            "autoscaling",
            "set either metrics or metric/target",
        ),
        (
            {"maxReplicas": 2, "engine": "keda", "metrics": [{"type": "Pods"}]},
            "autoscaling",
            "needs engine hpa",
        ),
        (
            {"maxReplicas": 2, "prometheusAddress": "http://p:9090"},
            "autoscaling",
            "engine keda only",
        ),
        (
            {"maxReplicas": 2, "engine": "keda", "prometheusAddress": "prometheus:9090"},
            "autoscaling.prometheusAddress",
            "should match pattern",
        ),
    ],
)
def test_a_bad_autoscaling_spec_is_refused_naming_the_field(
    autoscaling: dict[str, Any], field: str, words: str
) -> None:
    error = error_of(autoscaling)
    assert error.field == f"spec.runners[0].{field}"
    assert words in error.message


def test_the_api_server_cannot_scale_on_a_queue_it_does_not_have() -> None:
    with pytest.raises(spec.SpecError) as caught:
        spec.parse(
            bento(
                {"maxReplicas": 2}, autoscaling={"maxReplicas": 3, "metric": "queue", "target": 4}
            )
        )
    assert caught.value.field == "spec.autoscaling"
    assert "the API server has no batching queue" in caught.value.message


def test_the_documented_default_prometheus_is_the_one_rendered() -> None:
    description = spec.Autoscaling.model_fields["prometheus_address"].description or ""
    assert spec.DEFAULT_PROMETHEUS_ADDRESS in description
