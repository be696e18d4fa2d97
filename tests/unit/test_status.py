"""Status from child Deployments and Pods: conditions with reasons taken from real pod states."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from kubento import contract
from kubento_operator import crd, spec
from kubento_operator.components import API as API_ROLE
from kubento_operator.components import ROLES, Role
from kubento_operator.components import RUNNER as RUNNER_ROLE
from kubento_operator.status import Desired, Problem, compute_status

NOW = "2025-01-01T00:00:10Z"
EARLIER = "2025-01-01T00:00:00Z"
API = Desired("api", "demo-api", API_ROLE)
RUNNER = Desired("classifier", "demo-classifier", RUNNER_ROLE)
COMPONENTS = [API, RUNNER]


def deployment(
    name: str,
    *,
    desired: int = 1,
    available: int | None = None,
    updated: int | None = None,
    replicas: int | None = None,
    generation: int = 1,
    observed: int = 1,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    available = desired if available is None else available
    return {
        "metadata": {"name": name, "generation": generation},
        "spec": {"replicas": desired},
        "status": {
            "observedGeneration": observed,
            "replicas": desired if replicas is None else replicas,
            "updatedReplicas": desired if updated is None else updated,
            "readyReplicas": available,
            "availableReplicas": available,
            "conditions": conditions or [],
        },
    }


def pod(
    name: str,
    component: Desired,
    *,
    waiting: dict[str, Any] | None = None,
    last_terminated: dict[str, Any] | None = None,
    unschedulable: str | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    labels = {"serving.kubento.io/deployment": "demo"}
    if component.role is RUNNER_ROLE:
        labels |= {
            "serving.kubento.io/component": "runner",
            "serving.kubento.io/runner": "classifier",
        }
    else:
        labels |= {"serving.kubento.io/component": "api"}
    container: dict[str, Any] = {
        "name": "runner" if component.role is RUNNER_ROLE else "api",
        "restartCount": 4,
    }
    container["state"] = {"waiting": waiting} if waiting else {"running": {}}
    if last_terminated:
        container["lastState"] = {"terminated": last_terminated}
    metadata: dict[str, Any] = {"name": name, "labels": labels}
    if deleting:
        metadata["deletionTimestamp"] = EARLIER
    status: dict[str, Any] = {"containerStatuses": [container]}
    if unschedulable is not None:
        scheduled = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}
        status = {"conditions": [scheduled | {"message": unschedulable}]}
    return {"metadata": metadata, "status": status}


def status_of(
    deployments: list[dict[str, Any]],
    pods: list[dict[str, Any]] = (),  # type: ignore[assignment]
    *,
    generation: int = 1,
    observed: int | None = 1,
    problem: Problem | None = None,
    previous: list[dict[str, Any]] = (),  # type: ignore[assignment]
    components: list[Desired] = COMPONENTS,
    autoscalers: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    return compute_status(
        generation=generation,
        observed_generation=observed,
        components=components,
        deployments=deployments,
        pods=pods,
        autoscalers=autoscalers,
        problem=problem,
        endpoint="http://demo-api.ns.svc:3000",
        previous_conditions=previous,
        now=NOW,
    )


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    (found,) = [c for c in status["conditions"] if c["type"] == kind]
    return found  # type: ignore[no-any-return]


HEALTHY = [deployment("demo-api", desired=3), deployment("demo-classifier", desired=2)]


def test_all_components_available_is_ready() -> None:
    status = status_of(HEALTHY)
    assert condition(status, "Ready") | {"lastTransitionTime": None} == {
        "type": "Ready",
        "status": "True",
        "reason": "AllComponentsReady",
        "message": "2/2 components ready",
        "observedGeneration": 1,
        "lastTransitionTime": None,
    }
    assert condition(status, "Progressing")["status"] == "False"
    assert condition(status, "Progressing")["reason"] == "RolloutComplete"
    assert condition(status, "Degraded")["status"] == "False"


def test_summary_columns_and_component_counts() -> None:
    status = status_of([deployment("demo-api", desired=3, available=2), HEALTHY[1]])
    assert status["readyComponents"] == "1/2"
    assert status["apiReplicas"] == "2/3"
    assert status["runnersReady"] == "1/1"
    assert status["api"]["desiredReplicas"] == 3
    assert status["runners"][0]["name"] == "classifier"
    assert status["endpoint"] == "http://demo-api.ns.svc:3000"


def test_status_matches_the_crd_status_schema() -> None:
    schema = crd.openapi_schema(spec.BentoDeploymentStatus)
    jsonschema.validate(status_of(HEALTHY), schema)
    jsonschema.validate(
        status_of([], problem=Problem("InvalidSpec", "spec.image: x"), components=[]), schema
    )


def test_unapplied_generation_is_not_ready_and_progressing() -> None:
    status = status_of(HEALTHY, generation=2, observed=1)
    assert condition(status, "Ready")["reason"] == "Applying"
    assert condition(status, "Progressing")["status"] == "True"
    assert status["observedGeneration"] == 1


def test_missing_deployment_is_not_ready() -> None:
    status = status_of([HEALTHY[0]])
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ComponentsNotReady")
    assert "classifier (no Deployment yet)" in ready["message"]


def test_pods_not_yet_available_are_not_ready() -> None:
    status = status_of([HEALTHY[0], deployment("demo-classifier", desired=2, available=1)])
    assert condition(status, "Ready")["message"] == "waiting for classifier (1/2 available)"
    assert condition(status, "Degraded")["status"] == "False"


def test_rollout_in_progress_is_progressing() -> None:
    rolling = deployment("demo-classifier", desired=2, updated=1, replicas=3)
    status = status_of([HEALTHY[0], rolling])
    progressing = condition(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("True", "RollingOut")
    assert progressing["message"] == "rolling out classifier"


def test_deployment_controller_behind_is_progressing() -> None:
    status = status_of([HEALTHY[0], deployment("demo-classifier", generation=3, observed=2)])
    assert condition(status, "Progressing")["reason"] == "RollingOut"


def test_crash_loop_is_degraded_with_exit_code() -> None:
    crashing = pod(
        "demo-classifier-abc",
        RUNNER,
        waiting={"reason": "CrashLoopBackOff", "message": "back-off 40s restarting"},
        last_terminated={"exitCode": 137, "reason": "OOMKilled"},
    )
    status = status_of([HEALTHY[0], deployment("demo-classifier", available=0)], [crashing])
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "CrashLoopBackOff")
    assert "classifier: pod demo-classifier-abc container runner" in degraded["message"]
    assert "last exit code 137 (OOMKilled), 4 restarts" in degraded["message"]
    ready = condition(status, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "CrashLoopBackOff")


def test_image_pull_backoff_is_degraded() -> None:
    failing = pod(
        "demo-api-x",
        API,
        waiting={"reason": "ImagePullBackOff", "message": 'Back-off pulling image "img:1"'},
    )
    status = status_of([deployment("demo-api", available=0), HEALTHY[1]], [failing])
    degraded = condition(status, "Degraded")
    assert degraded["reason"] == "ImagePullBackOff"
    assert (
        degraded["message"] == 'api: pod demo-api-x container api: Back-off pulling image "img:1"'
    )


def test_unschedulable_carries_the_scheduler_message() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    pending = pod("demo-classifier-p", RUNNER, unschedulable=message)
    status = status_of([HEALTHY[0], deployment("demo-classifier", available=0)], [pending])
    degraded = condition(status, "Degraded")
    assert degraded["reason"] == "Unschedulable"
    assert degraded["message"] == f"classifier: pod demo-classifier-p: {message}"


def test_unschedulable_names_the_request_the_scheduler_found_insufficient() -> None:
    message = (
        "0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are "
        "available: 2 No preemption victims found for incoming pod."
    )
    pending = pod("demo-classifier-p", RUNNER, unschedulable=message)
    requests = {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "64"}
    pending["spec"] = {"containers": [{"name": "runner", "resources": {"requests": requests}}]}
    status = status_of([HEALTHY[0], deployment("demo-classifier", available=0)], [pending])
    assert condition(status, "Degraded")["message"] == (
        f"classifier: pod demo-classifier-p: {message} (the pod requests nvidia.com/gpu=64)"
    )


def test_same_problem_on_several_pods_is_reported_once_with_a_count() -> None:
    waiting = {"reason": "CrashLoopBackOff", "message": "back-off"}
    pods = [pod(f"demo-classifier-{i}", RUNNER, waiting=waiting) for i in range(3)]
    degraded = condition(status_of(HEALTHY, pods), "Degraded")
    assert degraded["message"].endswith("(and 2 more pods)")


def test_image_problems_rank_before_crash_loops() -> None:
    pods = [
        pod("demo-classifier-1", RUNNER, waiting={"reason": "CrashLoopBackOff"}),
        pod("demo-api-1", API, waiting={"reason": "ErrImagePull", "message": "not found"}),
    ]
    degraded = condition(status_of(HEALTHY, pods), "Degraded")
    assert degraded["reason"] == "ErrImagePull"
    assert "CrashLoopBackOff" in degraded["message"]


def test_terminating_pods_are_ignored() -> None:
    gone = pod("demo-api-old", API, waiting={"reason": "CrashLoopBackOff"}, deleting=True)
    assert condition(status_of(HEALTHY, [gone]), "Degraded")["status"] == "False"


def test_progress_deadline_exceeded_stops_progressing_and_degrades() -> None:
    stuck = deployment(
        "demo-classifier",
        updated=0,
        conditions=[
            {
                "type": "Progressing",
                "status": "False",
                "reason": "ProgressDeadlineExceeded",
                "message": 'ReplicaSet "demo-classifier-1" has timed out progressing.',
            }
        ],
    )
    status = status_of([HEALTHY[0], stuck])
    progressing = condition(status, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert condition(status, "Degraded")["reason"] == "ProgressDeadlineExceeded"


def test_replica_failure_such_as_quota_degrades() -> None:
    quota = deployment(
        "demo-api",
        available=0,
        conditions=[
            {
                "type": "ReplicaFailure",
                "status": "True",
                "reason": "FailedCreate",
                "message": 'pods "demo-api-1" is forbidden: exceeded quota: compute',
            }
        ],
    )
    degraded = condition(status_of([quota, HEALTHY[1]]), "Degraded")
    assert degraded["reason"] == "FailedCreate"
    assert "exceeded quota" in degraded["message"]


def test_invalid_spec_degrades_with_the_field_named() -> None:
    problem = Problem("InvalidSpec", "spec.autoscaling: minReplicas (5) must be ...")
    status = status_of([], problem=problem, generation=4, observed=4, components=[])
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "InvalidSpec")
    assert degraded["message"].startswith("spec.autoscaling:")
    assert degraded["observedGeneration"] == 4
    assert condition(status, "Ready")["reason"] == "InvalidSpec"
    assert condition(status, "Progressing")["status"] == "False"
    assert status["observedGeneration"] == 4


def test_apply_failure_is_not_ready_even_with_healthy_children() -> None:
    status = status_of(HEALTHY, problem=Problem("ApplyFailed", "Deployment/demo-api: denied"))
    assert condition(status, "Ready")["status"] == "False"
    assert condition(status, "Degraded")["reason"] == "ApplyFailed"


@pytest.mark.parametrize("kind", ["Ready", "Progressing", "Degraded"])
def test_transition_time_is_kept_while_status_is_unchanged(kind: str) -> None:
    first = status_of(HEALTHY)
    kept = [c | {"lastTransitionTime": EARLIER} for c in first["conditions"]]
    assert condition(status_of(HEALTHY, previous=kept), kind)["lastTransitionTime"] == EARLIER


def test_transition_time_moves_when_status_flips() -> None:
    previous = [c | {"lastTransitionTime": EARLIER} for c in status_of(HEALTHY)["conditions"]]
    broken = status_of([HEALTHY[0], deployment("demo-classifier", available=0)], previous=previous)
    assert condition(broken, "Ready")["lastTransitionTime"] == NOW


def test_never_reconciled_has_no_observed_generation() -> None:
    assert "observedGeneration" not in status_of(HEALTHY, observed=None)


@pytest.mark.parametrize("role", ROLES, ids=lambda role: role.name)
def test_every_roles_status_fields_and_printer_column_are_in_the_crd(role: Role) -> None:
    fields = crd.openapi_schema(spec.BentoDeploymentStatus)["properties"]
    assert role.status_field in fields
    assert role.summary_field in fields
    columns = {c["jsonPath"] for c in crd.PRINTER_COLUMNS}
    assert f".status.{role.summary_field}" in columns


def test_a_failed_model_pull_is_degraded_naming_the_model_and_its_source() -> None:
    fetching = pod("demo-classifier-abc", RUNNER)
    fetching["spec"] = {
        "initContainers": [
            {
                "name": "model-0",
                "args": contract.models_pull_command("iris:v1", "s3://models/iris.tar", "0" * 64)[
                    1:
                ],
            }
        ]
    }
    fetching["status"]["initContainerStatuses"] = [
        {
            "name": "model-0",
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "message": "fetching...\nerror: model iris:v1: sha256 mismatch",
                }
            },
        }
    ]
    status = status_of([HEALTHY[0], deployment("demo-classifier", available=0)], [fetching])
    degraded = condition(status, "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "ModelFetchFailed")
    assert "model iris:v1 from s3://models/iris.tar" in degraded["message"]
    assert degraded["message"].endswith("error: model iris:v1: sha256 mismatch")


def hpa(target: str, active: dict[str, Any] | None) -> dict[str, Any]:
    """An HPA as the HPA controller reports it: `active` is its ScalingActive condition."""
    conditions = [{"type": "AbleToScale", "status": "True", "reason": "SucceededGetScale"}]
    if active is not None:
        conditions.append({"type": "ScalingActive", **active})
    return {
        "metadata": {"name": target},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": target}},
        "status": {"conditions": conditions},
    }


def autoscaled(*autoscalers: dict[str, Any]) -> dict[str, Any]:
    return status_of(HEALTHY, autoscalers=list(autoscalers))


ACTIVE = {"status": "True", "reason": "ValidMetricFound", "message": "the HPA was able to ..."}
NO_METRIC = {
    "status": "False",
    "reason": "FailedGetPodsMetric",
    "message": "the HPA was unable to compute the replica count: unable to get metric "
    "kubento_runner_queue_depth: no metrics returned from custom metrics API",
}


def test_no_autoscaler_no_autoscaling_condition() -> None:
    assert "Autoscaling" not in {c["type"] for c in status_of(HEALTHY)["conditions"]}


def test_an_hpa_that_cannot_read_its_metric_says_why_without_degrading() -> None:
    status = autoscaled(hpa("demo-api", ACTIVE), hpa("demo-classifier", NO_METRIC))
    scaling = condition(status, "Autoscaling")
    assert (scaling["status"], scaling["reason"]) == ("False", "FailedGetPodsMetric")
    assert scaling["message"] == f"classifier: {NO_METRIC['message']}"
    # The pods serve: readiness and health are not the autoscaler's to decide.
    assert condition(status, "Ready")["status"] == "True"
    assert condition(status, "Degraded")["status"] == "False"


def test_autoscaling_is_unknown_until_every_hpa_computed_then_true() -> None:
    pending = condition(autoscaled(hpa("demo-classifier", None)), "Autoscaling")
    assert (pending["status"], pending["reason"]) == ("Unknown", "Pending")
    assert pending["message"].endswith("classifier")
    active = condition(autoscaled(hpa("demo-classifier", ACTIVE)), "Autoscaling")
    assert (active["status"], active["reason"]) == ("True", "ScalingActive")
    assert active["message"] == "replicas follow their metric: classifier"
    schema = crd.openapi_schema(spec.BentoDeploymentStatus)
    jsonschema.validate(autoscaled(hpa("demo-classifier", None)), schema)


def test_an_hpa_of_no_component_is_ignored() -> None:
    status = autoscaled(hpa("someone-else", NO_METRIC))
    assert "Autoscaling" not in {c["type"] for c in status["conditions"]}


def scaled_object(target: str, ready: dict[str, Any] | None) -> dict[str, Any]:
    """A KEDA ScaledObject for Deployment `target`, its Ready condition as KEDA sets it."""
    conditions = [] if ready is None else [{"type": "Ready", **ready}]
    return {
        "kind": "ScaledObject",
        "metadata": {"name": target},
        "spec": {"scaleTargetRef": {"name": target}},
        "status": {"conditions": conditions},
    }


TRIGGER_FAILED = {
    "status": "False",
    "reason": "ScaledObjectCheckFailed",
    "message": "Failed to ensure HPA is correctly created for ScaledObject",
}
KEDA_READY = {"status": "True", "reason": "ScaledObjectReady", "message": "ScaledObject is ready"}


def test_a_scaled_object_keda_refused_says_why_though_it_has_no_hpa() -> None:
    scaling = condition(autoscaled(scaled_object("demo-classifier", TRIGGER_FAILED)), "Autoscaling")
    assert (scaling["status"], scaling["reason"]) == ("False", "ScaledObjectCheckFailed")
    assert scaling["message"] == f"classifier: {TRIGGER_FAILED['message']}"


def test_a_ready_scaled_object_waits_for_the_verdict_of_the_hpa_keda_made() -> None:
    unknown = {"status": "Unknown", "reason": "ScaledObjectCheckFailed", "message": "starting"}
    for objects in (
        [scaled_object("demo-classifier", None)],
        [scaled_object("demo-classifier", unknown)],
        [scaled_object("demo-classifier", KEDA_READY), hpa("demo-classifier", None)],
    ):
        pending = condition(autoscaled(*objects), "Autoscaling")
        assert (pending["status"], pending["reason"]) == ("Unknown", "Pending"), objects
    both = autoscaled(scaled_object("demo-classifier", KEDA_READY), hpa("demo-classifier", ACTIVE))
    assert condition(both, "Autoscaling")["status"] == "True"
    blind = autoscaled(
        scaled_object("demo-classifier", KEDA_READY), hpa("demo-classifier", NO_METRIC)
    )
    assert condition(blind, "Autoscaling")["reason"] == "FailedGetPodsMetric"
