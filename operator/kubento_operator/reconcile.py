"""Reconcile one BentoDeployment: render, apply, prune, then write honest status.

Independent of kopf: it talks to the API through `Cluster` and reports what a
human must act on through a `warn(reason, message)` callback, so the same code
runs under the kopf handlers or a test against any API server. Every step is
idempotent; running it twice, or after a crash halfway, converges.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError

from kubento_operator import metrics, naming, render, spec, status
from kubento_operator.cluster import CHILD_KINDS, Cluster, KindNotServed
from kubento_operator.status import Problem

Warn = Callable[[Mapping[str, Any], str, str], None]
"""Report something a human must act on: (BentoDeployment, reason, message)."""
Logger = logging.Logger | logging.LoggerAdapter[Any]

INVALID_SPEC = "InvalidSpec"
APPLY_FAILED = "ApplyFailed"
OPERATOR_REASONS = (INVALID_SPEC, APPLY_FAILED)
MAX_STATUS_ATTEMPTS = 5
log = logging.getLogger(__name__)
STATUS_FIELDS = tuple(
    field.alias or name for name, field in spec.BentoDeploymentStatus.model_fields.items()
)


@dataclass(frozen=True)
class Outcome:
    """What a reconcile hit; `retry` asks the caller to try again later (transient failure)."""

    problem: Problem | None = None
    retry: bool = False


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def plain(value: Any) -> Any:
    """Deep-copy mappings and lists (kopf bodies are read-only views) into dicts and lists."""
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def api_message(exc: ApiException) -> str:
    """The API server's own explanation (it names the field on a 422)."""
    try:
        return str(json.loads(exc.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"


_INSTALL_HINTS = {
    "ScaledObject": "install KEDA, or set autoscaling.engine to hpa",
}


def _apply_message(exc: ApiException | KindNotServed) -> str:
    if isinstance(exc, KindNotServed):
        hint = _INSTALL_HINTS.get(exc.kind, f"install the CRD that defines {exc.kind}")
        return f"{exc}: {hint}"
    return api_message(exc)


def _is_transient(exc: ApiException) -> bool:
    code = exc.status or 0
    return code == 0 or code >= 500 or code in (409, 429)


def _owned_by(obj: Mapping[str, Any], uid: str | None) -> bool:
    owners = (obj.get("metadata") or {}).get("ownerReferences") or []
    return any(owner.get("uid") == uid and owner.get("controller") for owner in owners)


AUTOSCALER_KINDS = tuple(
    (api_version, kind)
    for api_version, kind in CHILD_KINDS
    if kind in ("ScaledObject", "HorizontalPodAutoscaler")
)
"""Kinds of which one object may drive a Deployment: a replaced one goes before its
successor is applied (KEDA's webhook refuses a ScaledObject for a Deployment an HPA
already scales, and two HPAs on one Deployment fight)."""


def prune(
    cluster: Cluster,
    bd: spec.BentoDeployment,
    desired: list[dict[str, Any]],
    kinds: tuple[tuple[str, str], ...] = CHILD_KINDS,
) -> list[str]:
    """Delete children of `kinds` this BentoDeployment owns but no longer renders; return
    `Kind/name`s."""
    wanted = {(child["kind"], child["metadata"]["name"]) for child in desired}
    selector = naming.children_selector(bd.metadata.name)
    deleted = []
    for api_version, kind in kinds:
        for obj in cluster.list_children(api_version, kind, bd.metadata.namespace, selector):
            metadata = obj["metadata"]
            if (kind, metadata["name"]) in wanted or not _owned_by(obj, bd.metadata.uid):
                continue
            cluster.delete(
                api_version, kind, bd.metadata.namespace, metadata["name"], metadata["uid"]
            )
            metrics.CHILDREN_PRUNED.inc()
            deleted.append(f"{kind}/{metadata['name']}")
    return deleted


def observe(
    cluster: Cluster,
    bd: spec.BentoDeployment,
    *,
    observed_generation: int | None,
    previous: Mapping[str, Any],
) -> dict[str, Any]:
    """Status from the children as they are now. HPAs are listed only when a component
    autoscales: no other has one (KEDA's, made for a ScaledObject, included); ScaledObjects
    only when one autoscales with KEDA."""
    selector = naming.children_selector(bd.metadata.name)
    namespace = bd.metadata.namespace
    components = status.desired_components(bd)
    autoscalers = []
    if any(desired.autoscales for desired in components):
        autoscalers = cluster.list("autoscaling/v2", "HorizontalPodAutoscaler", namespace, selector)
    if any(desired.keda for desired in components):
        autoscalers += cluster.list_children(
            render.KEDA_API_VERSION, "ScaledObject", namespace, selector
        )
    return status.compute_status(
        generation=bd.metadata.generation,
        observed_generation=observed_generation,
        components=components,
        deployments=cluster.list("apps/v1", "Deployment", namespace, selector),
        pods=cluster.list("v1", "Pod", namespace, selector),
        autoscalers=autoscalers,
        endpoint=render.endpoint(bd),
        previous_conditions=previous.get("conditions") or [],
        now=now(),
    )


def _degraded(current: Mapping[str, Any]) -> Mapping[str, Any]:
    for condition in current.get("conditions") or []:
        if condition.get("type") == status.DEGRADED:
            return condition  # type: ignore[no-any-return]
    return {}


def write_status(
    cluster: Cluster,
    body: Mapping[str, Any],
    new: dict[str, Any],
    warn: Callable[[str, str], None],
) -> bool:
    """Patch the status if it changed; warn when Degraded turns True or changes reason.

    Raises ConflictError if `body` is no longer the current object.
    """
    previous = body.get("status") or {}
    mine = {key: previous[key] for key in STATUS_FIELDS if key in previous}
    if mine == new:
        return False
    patch: dict[str, Any] = {key: None for key in mine if key not in new}
    patch.update(new)
    metadata = body["metadata"]
    cluster.patch_status(
        metadata["namespace"], metadata["name"], patch, metadata["resourceVersion"]
    )
    before, after = _degraded(previous), _degraded(new)
    if after.get("status") == "True" and (
        before.get("status") != "True"
        or before.get("reason") != after.get("reason")
        or before.get("message") != after.get("message")
    ):
        warn(str(after["reason"]), str(after.get("message", "")))
    return True


def commit_status(
    cluster: Cluster,
    namespace: str,
    name: str,
    compute: Callable[[dict[str, Any]], dict[str, Any] | None],
    warn: Warn,
) -> bool:
    """Read the object, compute its status, patch it; again if someone wrote in between.

    `compute` returns None to leave the status alone. Returns whether it patched (not when
    the object is gone).
    """
    for _ in range(MAX_STATUS_ATTEMPTS):
        body = cluster.get_bento_deployment(namespace, name)
        if body is None:
            return False
        new = compute(body)
        if new is None:
            return False
        try:
            return write_status(cluster, body, new, functools.partial(warn, body))
        except ConflictError:
            continue
        except NotFoundError:  # deleted since it was read (kubectl delete, namespace deletion)
            return False
    log.warning(
        "status of bentodeployment=%s/%s not written: %d conflicting writes in a row",
        namespace,
        name,
        MAX_STATUS_ATTEMPTS,
    )
    return False


def _commit_problem(
    cluster: Cluster,
    namespace: str,
    name: str,
    generation: int | None,
    bd: spec.BentoDeployment | None,
    problem: Problem,
    warn: Warn,
) -> None:
    """Status of a generation the operator acted on but could not apply: Degraded by `problem`.

    `bd` is None when the spec did not parse: then there are no components nor endpoint.
    """
    commit_status(
        cluster,
        namespace,
        name,
        lambda latest: status.compute_status(
            generation=generation,
            observed_generation=generation,
            components=status.desired_components(bd) if bd is not None else [],
            deployments=[],
            pods=[],
            problem=problem,
            endpoint=render.endpoint(bd) if bd is not None else None,
            previous_conditions=(latest.get("status") or {}).get("conditions") or [],
            now=now(),
        ),
        warn,
    )


def reconcile(cluster: Cluster, body: Mapping[str, Any], *, warn: Warn, logger: Logger) -> Outcome:
    """Bring the children of one BentoDeployment in line with its spec."""
    started = time.monotonic()
    body = plain(body)
    metadata = body.get("metadata") or {}
    namespace, name = metadata["namespace"], metadata["name"]
    generation = metadata.get("generation")
    try:
        bd = spec.parse(body)
    except spec.SpecError as exc:
        invalid = Problem(INVALID_SPEC, str(exc))
        _commit_problem(cluster, namespace, name, generation, None, invalid, warn)
        metrics.RECONCILES.labels(result="invalid").inc()
        logger.warning("invalid spec, not applied: %s", exc)
        return Outcome(invalid)

    children = render.render(bd)
    current: dict[str, Any] | None = None
    try:
        replaced = prune(cluster, bd, children, AUTOSCALER_KINDS)
        for current in children:
            cluster.apply(current)
        current = None
        pruned = replaced + prune(cluster, bd, children)
    except (ApiException, KindNotServed) as exc:
        target = (
            f"{current['kind']}/{current['metadata']['name']}" if current is not None else "prune"
        )
        failed = Problem(APPLY_FAILED, f"{target}: {_apply_message(exc)}")
        _commit_problem(cluster, namespace, name, generation, bd, failed, warn)
        metrics.RECONCILES.labels(result="failed").inc()
        metrics.RECONCILE_ERRORS.inc()
        logger.error("apply failed: %s", failed.message)
        # A missing CRD may be installed later: try again.
        return Outcome(failed, retry=isinstance(exc, KindNotServed) or _is_transient(exc))

    commit_status(
        cluster,
        namespace,
        name,
        lambda latest: observe(
            cluster, bd, observed_generation=generation, previous=latest.get("status") or {}
        ),
        warn,
    )
    metrics.RECONCILES.labels(result="applied").inc()
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    logger.info(
        "applied children=%d pruned=%s generation=%s",
        len(children),
        ",".join(pruned) or "none",
        generation,
    )
    return Outcome()


def refresh_status(cluster: Cluster, namespace: str, name: str, *, warn: Warn) -> bool:
    """Recompute a BentoDeployment's status after one of its children changed.

    Leaves the status alone when the object is gone or its last reconcile failed (the
    next reconcile rewrites it). Before the first reconcile has written its status the
    refresh still writes (Ready=False, Applying): that write is what makes the reconcile's
    status patch, computed from an older list of children, conflict and recompute;
    skipping it lost the change for good. Returns whether it patched.
    """

    def compute(body: dict[str, Any]) -> dict[str, Any] | None:
        previous = body.get("status") or {}
        observed = previous.get("observedGeneration")
        if _degraded(previous).get("reason") in OPERATOR_REASONS:
            return None
        try:
            bd = spec.parse(body)
        except spec.SpecError:
            return None
        return observe(cluster, bd, observed_generation=observed, previous=previous)

    changed = commit_status(cluster, namespace, name, compute, warn)
    metrics.STATUS_REFRESHES.labels(outcome="patched" if changed else "unchanged").inc()
    return changed
