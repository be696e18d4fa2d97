"""Status of a BentoDeployment, computed from its child Deployments and Pods.

A pure function: the reconciler lists the children and passes them in as
dicts, so every condition reason is unit-tested from fixtures. Conditions
follow metav1.Condition, so `kubectl wait --for=condition=Ready bd/NAME` works:

- Ready: the current spec is applied and every component has its desired
  number of available pods.
- Progressing: a spec is being applied or a rollout is under way.
- Degraded: something needs a human: an invalid spec, a failed apply, or pods
  in CrashLoopBackOff, ImagePullBackOff, Unschedulable (with the scheduler's
  message) and the like.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from kubento_operator import naming, spec
from kubento_operator.components import ROLES, Role, components_of

READY = "Ready"
PROGRESSING = "Progressing"
DEGRADED = "Degraded"
AUTOSCALING = "Autoscaling"
"""Whether every component's HorizontalPodAutoscaler computes replicas from its metric;
present only while some component has one (`autoscaling.engine: hpa`)."""

# Pod container waiting reasons that will not fix themselves, most urgent first.
MODEL_FETCH_FAILED = "ModelFetchFailed"
"""An init container could not fetch, verify or import one of the component's models."""
WAITING_REASONS = (
    "InvalidImageName",
    "ErrImagePull",
    "ImagePullBackOff",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
    "CrashLoopBackOff",
)
UNSCHEDULABLE = "Unschedulable"
# The resources the scheduler names in "0/2 nodes are available: 2 Insufficient nvidia.com/gpu."
INSUFFICIENT = re.compile(r"Insufficient ([A-Za-z0-9][A-Za-z0-9./_-]*[A-Za-z0-9])")


@dataclass(frozen=True)
class Desired:
    """One component the spec asks for."""

    name: str
    """`api` or the member's name."""
    deployment: str
    """Name of its Deployment."""
    role: Role
    autoscales: bool = False
    """Whether its spec asks for autoscaling (an HPA or a KEDA ScaledObject)."""
    keda: bool = False
    """Whether that is a KEDA ScaledObject (`autoscaling.engine: keda`)."""


@dataclass(frozen=True)
class Problem:
    """A reason and message for the Degraded condition."""

    reason: str
    message: str


def desired_components(bd: spec.BentoDeployment) -> list[Desired]:
    return [
        Desired(
            part.name,
            part.object_name,
            part.role,
            part.settings.autoscaling is not None,
            part.settings.autoscaling is not None and part.settings.autoscaling.engine == "keda",
        )
        for part in components_of(bd)
    ]


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    value: Any = obj
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _count(deployment: Mapping[str, Any], field: str) -> int:
    return int(_get(deployment, "status", field) or 0)


def _desired_replicas(deployment: Mapping[str, Any]) -> int:
    replicas = _get(deployment, "spec", "replicas")
    return 1 if replicas is None else int(replicas)


def component_status(desired: Desired, deployment: Mapping[str, Any] | None) -> dict[str, Any]:
    if deployment is None:
        return {"name": desired.name, "deployment": desired.deployment}
    return {
        "name": desired.name,
        "deployment": desired.deployment,
        "replicas": _count(deployment, "replicas"),
        "readyReplicas": _count(deployment, "readyReplicas"),
        "updatedReplicas": _count(deployment, "updatedReplicas"),
        "availableReplicas": _count(deployment, "availableReplicas"),
        "desiredReplicas": _desired_replicas(deployment),
    }


def _available(deployment: Mapping[str, Any] | None) -> bool:
    if deployment is None:
        return False
    return _count(deployment, "availableReplicas") >= max(_desired_replicas(deployment), 1)


def _rolled_out(deployment: Mapping[str, Any]) -> bool:
    """The Deployment controller has seen the spec and every pod runs it and is available."""
    generation = _get(deployment, "metadata", "generation")
    observed = _get(deployment, "status", "observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return False
    desired = _desired_replicas(deployment)
    return (
        _count(deployment, "updatedReplicas") >= desired
        and _count(deployment, "replicas") <= _count(deployment, "updatedReplicas")
        and _count(deployment, "availableReplicas") >= desired
    )


def _deployment_condition(deployment: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    for condition in _get(deployment, "status", "conditions") or []:
        if condition.get("type") == kind:
            return condition  # type: ignore[no-any-return]
    return None


def _pod_component(pod: Mapping[str, Any], components: Sequence[Desired]) -> Desired | None:
    labels = _get(pod, "metadata", "labels") or {}
    role = labels.get(naming.LABEL_KUBENTO_COMPONENT)
    for desired in components:
        if desired.role.name == role and (
            not desired.role.many or labels.get(naming.member_label(role)) == desired.name
        ):
            return desired
    return None


def _requested(pod: Mapping[str, Any], scheduler_message: str) -> str:
    """`nvidia.com/gpu=64` for each resource the scheduler found insufficient, as requested."""
    amounts: dict[str, None] = {}
    for resource in INSUFFICIENT.findall(scheduler_message):
        for container in _get(pod, "spec", "containers") or []:
            amount = (_get(container, "resources", "requests") or {}).get(resource)
            if amount is not None:
                amounts[f"{resource}={amount}"] = None
    return ", ".join(amounts)


def _pod_problems(pod: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with one pod, in the order of WAITING_REASONS then Unschedulable."""
    pod_name = _get(pod, "metadata", "name")
    found: list[Problem] = []
    statuses = (_get(pod, "status", "initContainerStatuses") or []) + (
        _get(pod, "status", "containerStatuses") or []
    )
    for container in statuses:
        fetch = _model_fetch_problem(pod, container)
        if fetch is not None:
            found.append(fetch)
            continue
        waiting = _get(container, "state", "waiting") or {}
        reason = waiting.get("reason")
        if reason not in WAITING_REASONS:
            continue
        detail = waiting.get("message") or reason
        last = _get(container, "lastState", "terminated")
        if reason == "CrashLoopBackOff" and last:
            detail = (
                f"last exit code {last.get('exitCode')} ({last.get('reason', 'Error')}), "
                f"{container.get('restartCount', 0)} restarts"
            )
        found.append(Problem(reason, f"pod {pod_name} container {container.get('name')}: {detail}"))
    for condition in _get(pod, "status", "conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == UNSCHEDULABLE
        ):
            message = condition.get("message", "")
            requested = _requested(pod, message)
            if requested:
                message += f" (the pod requests {requested})"
            found.append(Problem(UNSCHEDULABLE, f"pod {pod_name}: {message}"))
    return found


def _model_fetch_problem(pod: Mapping[str, Any], container: Mapping[str, Any]) -> Problem | None:
    """A model pull that failed, named by its tag and source (read from the init container's
    own args, so the message matches what the pod really ran)."""
    name = str(container.get("name", ""))
    if not name.startswith(naming.MODEL_INIT_PREFIX):
        return None
    failed = None
    for state in ("state", "lastState"):
        terminated = _get(container, state, "terminated")
        if terminated and terminated.get("exitCode", 0) != 0:
            failed = terminated
            break
    if failed is None:
        return None
    spec_of: Mapping[str, Any] = next(
        (c for c in _get(pod, "spec", "initContainers") or [] if c.get("name") == name), {}
    )
    args = list(spec_of.get("args") or [])
    tag, source = (args[2], args[3]) if len(args) >= 4 else ("?", "?")
    words = (failed.get("message") or failed.get("reason") or "").strip().splitlines()
    detail = words[-1] if words else f"exit code {failed.get('exitCode')}"
    return Problem(
        MODEL_FETCH_FAILED,
        f"pod {_get(pod, 'metadata', 'name')}: model {tag} from {source}: {detail}",
    )


def _rank(problem: Problem) -> int:
    order = (MODEL_FETCH_FAILED, *WAITING_REASONS, UNSCHEDULABLE)
    return order.index(problem.reason) if problem.reason in order else len(order)


def find_problems(
    components: Sequence[Desired],
    deployments: Mapping[str, Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
) -> list[Problem]:
    """Problems of the children, most urgent first, one per component and reason."""
    found: dict[tuple[str, str], tuple[Problem, int]] = {}
    for pod in pods:
        if _get(pod, "metadata", "deletionTimestamp"):
            continue
        owner = _pod_component(pod, components)
        if owner is None:
            continue
        for problem in _pod_problems(pod):
            key = (owner.name, problem.reason)
            first, count = found.get(key, (problem, 0))
            found[key] = (first, count + 1)
    problems = [
        Problem(
            first.reason,
            f"{name}: {first.message}" + (f" (and {count - 1} more pods)" if count > 1 else ""),
        )
        for (name, _), (first, count) in found.items()
    ]
    for desired in components:
        deployment = deployments.get(desired.deployment)
        if deployment is None:
            continue
        progress = _deployment_condition(deployment, "Progressing")
        if progress and progress.get("reason") == "ProgressDeadlineExceeded":
            problems.append(
                Problem(
                    "ProgressDeadlineExceeded", f"{desired.name}: {progress.get('message', '')}"
                )
            )
        failure = _deployment_condition(deployment, "ReplicaFailure")
        if failure and failure.get("status") == "True":
            problems.append(
                Problem(
                    str(failure.get("reason") or "ReplicaFailure"),
                    f"{desired.name}: {failure.get('message', '')}",
                )
            )
    return sorted(problems, key=_rank)


def autoscaling(
    components: Sequence[Desired], autoscalers: Sequence[Mapping[str, Any]]
) -> tuple[bool | None, str, str] | None:
    """The Autoscaling condition from the autoscalers' own conditions: an HPA's
    `ScalingActive`, a KEDA ScaledObject's `Ready` (beside the HPA KEDA makes for it, so a
    ScaledObject KEDA refused, which gets no HPA, says why). False with the autoscaler's
    reason when one cannot read its metric (no metrics API, no prometheus-adapter rule, a
    trigger KEDA cannot query), Unknown until each has computed once; None when no component
    has an autoscaler."""
    by_target: dict[str, list[Mapping[str, Any]]] = {}
    for autoscaler in autoscalers:
        target = _get(autoscaler, "spec", "scaleTargetRef", "name")
        by_target.setdefault(target, []).append(autoscaler)
    scaled = [(d, by_target[d.deployment]) for d in components if d.deployment in by_target]
    if not scaled:
        return None
    failing, pending = [], []
    for desired, objects in scaled:
        verdicts = [_verdict(autoscaler) for autoscaler in objects]
        bad = next((condition for ok, condition in verdicts if ok is False), None)
        if bad is not None:
            failing.append((desired.name, bad))
        elif any(ok is None for ok, _ in verdicts):
            pending.append(desired.name)
    if failing:
        reason = str(failing[0][1].get("reason") or "ScalingInactive")
        message = "; ".join(f"{name}: {c.get('message', '')}" for name, c in failing)
        return False, reason, message
    if pending:
        return None, "Pending", "no metric read yet by the autoscaler of " + ", ".join(pending)
    names = ", ".join(desired.name for desired, _ in scaled)
    return True, "ScalingActive", f"replicas follow their metric: {names}"


def _verdict(autoscaler: Mapping[str, Any]) -> tuple[bool | None, Mapping[str, Any]]:
    """Whether one autoscaler works (None: not known yet), and the condition saying so."""
    keda = autoscaler.get("kind") == "ScaledObject"
    wanted = "Ready" if keda else "ScalingActive"
    conditions = _get(autoscaler, "status", "conditions") or []
    found = next((c for c in conditions if c.get("type") == wanted), None)
    if found is None or (keda and found.get("status") == "Unknown"):
        return None, {}
    return found.get("status") == "True", found


def _condition(
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int | None,
    previous: Sequence[Mapping[str, Any]],
    now: str,
) -> dict[str, Any]:
    text = "Unknown" if status is None else "True" if status else "False"
    since = now
    for old in previous:
        if old.get("type") == kind and old.get("status") == text and old.get("lastTransitionTime"):
            since = old["lastTransitionTime"]
    condition: dict[str, Any] = {
        "type": kind,
        "status": text,
        "reason": reason,
        "message": message[:32768],
        "lastTransitionTime": since,
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    return condition


def compute_status(
    *,
    generation: int | None,
    observed_generation: int | None,
    components: Sequence[Desired],
    deployments: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    autoscalers: Sequence[Mapping[str, Any]] = (),
    problem: Problem | None = None,
    endpoint: str | None = None,
    previous_conditions: Sequence[Mapping[str, Any]] = (),
    now: str,
) -> dict[str, Any]:
    """The `status` of a BentoDeployment.

    `observed_generation` is the spec generation the operator last acted on, applied or
    rejected (None: never); `problem` is what it hit doing so (invalid spec, failed apply);
    `now` is the RFC 3339 time stamped on conditions that change.
    """
    by_name = {_get(d, "metadata", "name"): d for d in deployments}
    problems = ([problem] if problem else []) + find_problems(components, by_name, pods)
    applied = observed_generation is not None and observed_generation == generation

    waiting: list[str] = []
    rolling: list[str] = []
    for desired in components:
        deployment = by_name.get(desired.deployment)
        if deployment is None:
            waiting.append(f"{desired.name} (no Deployment yet)")
            rolling.append(desired.name)
            continue
        if not _available(deployment):
            waiting.append(
                f"{desired.name} ({_count(deployment, 'availableReplicas')}/"
                f"{_desired_replicas(deployment)} available)"
            )
        if not _rolled_out(deployment):
            rolling.append(desired.name)

    ready_count = sum(_available(by_name.get(d.deployment)) for d in components)
    is_ready = applied and bool(components) and not waiting and problem is None
    if is_ready:
        ready = (True, "AllComponentsReady", f"{ready_count}/{len(components)} components ready")
    elif problems:
        ready = (False, problems[0].reason, problems[0].message)
    elif not applied:
        ready = (False, "Applying", "the current spec has not been applied yet")
    else:
        ready = (False, "ComponentsNotReady", "waiting for " + ", ".join(waiting))

    deadline = next((p for p in problems if p.reason == "ProgressDeadlineExceeded"), None)
    if deadline is not None:
        progressing = (False, deadline.reason, deadline.message)
    elif problem is not None:
        progressing = (False, problem.reason, problem.message)
    elif not applied:
        progressing = (True, "Applying", "applying the current spec")
    elif rolling:
        progressing = (True, "RollingOut", "rolling out " + ", ".join(rolling))
    else:
        progressing = (False, "RolloutComplete", "every component runs the current spec")

    if problems:
        degraded = (True, problems[0].reason, "; ".join(p.message for p in problems))
    else:
        degraded = (False, "Healthy", "no problems found")

    kinds: list[tuple[str, tuple[bool | None, str, str]]] = [
        (READY, ready),
        (PROGRESSING, progressing),
        (DEGRADED, degraded),
    ]
    scaling = autoscaling(components, autoscalers)
    if scaling is not None:
        kinds.append((AUTOSCALING, scaling))
    conditions = [
        _condition(kind, *values, observed_generation, previous_conditions, now)
        for kind, values in kinds
    ]
    status: dict[str, Any] = {
        "observedGeneration": observed_generation,
        "conditions": conditions,
    }
    if components:
        for role in ROLES:
            members = [d for d in components if d.role == role]
            if role.many:
                status[role.status_field] = [
                    component_status(d, by_name.get(d.deployment)) for d in members
                ]
                ready_members = sum(_available(by_name.get(d.deployment)) for d in members)
                status[role.summary_field] = f"{ready_members}/{len(members)}"
            elif members:
                (only,) = members
                one = component_status(only, by_name.get(only.deployment))
                status[role.status_field] = one
                status[role.summary_field] = (
                    f"{one.get('readyReplicas', 0)}/{one.get('desiredReplicas', 0)}"
                )
        status["readyComponents"] = f"{ready_count}/{len(components)}"
    if endpoint is not None:
        status["endpoint"] = endpoint
    if status["observedGeneration"] is None:
        del status["observedGeneration"]
    return status
