"""BentoDeployment spec validation: what is accepted, and errors that name the field."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kubento import contract
from kubento_operator import naming, spec
from kubento_operator.render import render

# Yatai's serving.yatai.ai/v2alpha1 sample, with `bento: ...` replaced by image + service.
YATAI_SAMPLE: dict[str, Any] = {
    "apiVersion": "serving.kubento.io/v1alpha1",
    "kind": "BentoDeployment",
    "metadata": {"name": "my-bento-deployment", "namespace": "my-namespace"},
    "spec": {
        "image": "registry.example.com/iris:1.0",
        "service": "service:svc",
        "autoscaling": {"minReplicas": 3, "maxReplicas": 20},
        "resources": {"requests": {"cpu": "200m"}, "limits": {"cpu": "500m"}},
        "envs": [{"name": "SOME_ENV", "value": "1"}],
        "ingress": {"enabled": True},
        "runners": [
            {
                "name": "model_runner_a",
                "autoscaling": {"minReplicas": 1, "maxReplicas": 5},
                "resources": {"requests": {"cpu": "2000m"}, "limits": {"cpu": "2000m"}},
            }
        ],
    },
}


def minimal(**spec_fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": "demo", "namespace": "ns"},
        "spec": {"image": "img:1", "service": "service:svc", **spec_fields},
    }


def error_of(obj: dict[str, Any]) -> spec.SpecError:
    with pytest.raises(spec.SpecError) as caught:
        spec.parse(obj)
    return caught.value


def test_yatai_sample_is_expressible_one_to_one() -> None:
    bd = spec.parse(YATAI_SAMPLE)
    assert bd.spec.autoscaling is not None
    assert (bd.spec.autoscaling.min_replicas, bd.spec.autoscaling.max_replicas) == (3, 20)
    assert bd.spec.resources is not None and bd.spec.resources.requests is not None
    assert bd.spec.resources.requests.cpu == "200m"
    assert bd.spec.resources.limits is not None and bd.spec.resources.limits.cpu == "500m"
    runner = bd.spec.runners[0]
    assert runner.name == "model_runner_a"
    assert runner.autoscaling is not None
    assert (runner.autoscaling.min_replicas, runner.autoscaling.max_replicas) == (1, 5)
    assert runner.resources is not None and runner.resources.requests is not None
    assert runner.resources.requests.cpu == "2000m"


def test_runner_name_with_underscores_keeps_its_name_and_gets_a_dns_object_name() -> None:
    children = render(YATAI_SAMPLE)
    runner = next(
        c
        for c in children
        if c["kind"] == "Deployment"
        and c["metadata"]["labels"][naming.LABEL_KUBENTO_COMPONENT] == naming.RUNNER_COMPONENT
    )
    assert runner["metadata"]["name"] == "my-bento-deployment-model-runner-a"
    args = runner["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--name") + 1] == "model_runner_a"


def test_minimal_spec_is_valid() -> None:
    bd = spec.parse(minimal())
    assert bd.spec.runners == []
    assert bd.metadata.namespace == "ns"


def test_namespace_defaults_to_default() -> None:
    obj = minimal()
    del obj["metadata"]["namespace"]
    assert spec.parse(obj).metadata.namespace == "default"


def test_unknown_field_is_named() -> None:
    error = error_of(minimal(runners=[{"name": "a", "maxBatchSize": 3}]))
    assert error.field == "spec.runners[0].maxBatchSize"
    assert "unknown field" in str(error)


def test_missing_image_is_named() -> None:
    obj = minimal()
    del obj["spec"]["image"]
    assert error_of(obj).field == "spec.image"


def test_min_replicas_above_max_replicas_is_rejected() -> None:
    error = error_of(minimal(autoscaling={"minReplicas": 5, "maxReplicas": 2}))
    assert error.field == "spec.autoscaling"
    assert "minReplicas (5) must be less than or equal to maxReplicas (2)" in str(error)


def test_a_batching_queue_smaller_than_a_batch_is_rejected() -> None:
    batching = {"maxBatchSize": 64, "maxQueueSize": 8}
    error = error_of(minimal(runners=[{"name": "r", "batching": batching}]))
    assert error.field == "spec.runners[0].batching"
    assert "maxQueueSize (8) must be 0 (unbounded) or at least maxBatchSize (64)" in str(error)
    unbounded = {"maxBatchSize": 64, "maxQueueSize": 0}
    (runner,) = spec.parse(minimal(runners=[{"name": "r", "batching": unbounded}])).spec.runners
    assert runner.batching is not None and runner.batching.max_queue_size == 0


def test_duplicate_runner_names_are_rejected() -> None:
    error = error_of(minimal(runners=[{"name": "a_b"}, {"name": "a-b"}]))
    assert error.field == "spec.runners"
    assert "'a-b' and 'a_b'" in str(error)


def test_runner_named_api_is_rejected() -> None:
    error = error_of(minimal(runners=[{"name": "api"}]))
    assert error.field == "spec.runners[0].name"


def test_runner_name_with_uppercase_is_rejected() -> None:
    assert error_of(minimal(runners=[{"name": "Model"}])).field == "spec.runners[0].name"


def test_reserved_environment_variable_is_rejected() -> None:
    error = error_of(minimal(envs=[{"name": "KUBENTO_RUNNER_MAP", "value": "{}"}]))
    assert error.field == "spec.envs[0].name"
    assert "set by the operator" in str(error)


def test_duplicate_environment_variable_is_rejected() -> None:
    envs = [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}]
    assert "listed twice" in str(error_of(minimal(envs=envs)))


def test_bad_quantity_is_named() -> None:
    error = error_of(minimal(resources={"limits": {"memory": "lots"}}))
    assert error.field == "spec.resources.limits.memory"
    assert "'lots' is not a Kubernetes quantity" in str(error)


def test_quantities_accept_integers_and_strings() -> None:
    bd = spec.parse(minimal(resources={"requests": {"cpu": 2, "memory": "1.5Gi"}}))
    assert bd.spec.resources is not None and bd.spec.resources.requests is not None
    assert (bd.spec.resources.requests.cpu, bd.spec.resources.requests.memory) == ("2", "1.5Gi")


def test_gpu_accepts_yatai_string_counts() -> None:
    bd = spec.parse(minimal(resources={"limits": {"gpu": "2"}}))
    assert bd.spec.resources is not None and bd.spec.resources.limits is not None
    assert bd.spec.resources.limits.gpu == 2


def test_different_gpu_requests_and_limits_are_rejected() -> None:
    error = error_of(minimal(resources={"requests": {"gpu": 1}, "limits": {"gpu": 2}}))
    assert error.field == "spec.resources"
    assert "cannot be overcommitted" in str(error)


def test_bad_custom_resource_name_is_named() -> None:
    error = error_of(minimal(resources={"limits": {"custom": {"bad name": "1"}}}))
    assert error.field.startswith("spec.resources.limits.custom")


def test_bad_service_import_path_is_named() -> None:
    assert error_of(minimal(service="service.py")).field == "spec.service"


def test_long_deployment_name_is_rejected() -> None:
    obj = minimal()
    obj["metadata"]["name"] = "a" * 64
    assert error_of(obj).field == "metadata.name"


def test_deployment_name_starting_with_digit_is_rejected() -> None:
    obj = minimal()
    obj["metadata"]["name"] = "1demo"
    assert error_of(obj).field == "metadata.name"


def test_wrong_api_version_is_named() -> None:
    obj = minimal()
    obj["apiVersion"] = "serving.yatai.ai/v2alpha1"
    error = error_of(obj)
    assert error.field == "apiVersion"
    assert naming.API_VERSION in str(error)


def test_ingress_tls_needs_a_host() -> None:
    error = error_of(minimal(ingress={"enabled": True, "tls": {"secretName": "cert"}}))
    assert error.field == "spec.ingress"


def test_further_problems_are_counted_in_the_message() -> None:
    obj = copy.deepcopy(minimal(resources={"limits": {"memory": "x", "cpu": "y"}}))
    assert "(and 1 more problem)" in str(error_of(obj))


@pytest.mark.parametrize("knob", contract.BATCHING_KNOBS, ids=lambda knob: knob.name)
def test_a_batching_knob_below_its_tables_minimum_is_named(knob: contract.Knob) -> None:
    too_low = knob.minimum if knob.exclusive_minimum else knob.minimum - 1
    error = error_of(minimal(runners=[{"name": "r", "batching": {knob.field: too_low}}]))
    assert error.field == f"spec.runners[0].batching.{knob.field}"


def test_a_batching_knob_above_its_tables_maximum_is_named() -> None:
    knob = contract.KNOBS["max_concurrency"]
    assert knob.maximum is not None
    error = error_of(minimal(runners=[{"name": "r", "batching": {knob.field: knob.maximum + 1}}]))
    assert error.field == "spec.runners[0].batching.maxConcurrency"


def test_max_concurrency_takes_auto_or_a_number_in_range_and_names_anything_else() -> None:
    field = contract.KNOBS["max_concurrency"].field
    for value in ("auto", 3):
        runner = spec.parse(minimal(runners=[{"name": "r", "batching": {field: value}}]))
        assert runner.spec.runners[0].batching.max_concurrency == value  # type: ignore[union-attr]
    error = error_of(minimal(runners=[{"name": "r", "batching": {field: "fast"}}]))
    assert error.field == f"spec.runners[0].batching.{field}"
    assert 'must be an integer from 1 to 64 or "auto"' in error.message
