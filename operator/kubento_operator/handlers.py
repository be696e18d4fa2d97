"""kopf wiring: which events call the reconciler, and the operator's settings.

Importing this module registers the handlers with kopf's default registry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import kopf

from kubento_operator import naming, reconcile
from kubento_operator.cluster import Cluster, load_api_client
from kubento_operator.coalesce import Coalescer

RETRY_DELAY_SECONDS = 30
MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
MANAGED_SELECTOR = f"{naming.LABEL_MANAGED_BY}={naming.MANAGED_BY}"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Keep kopf's bookkeeping in annotations and connect the reconciler's client."""
    # The structural schema prunes unknown status fields, so kopf's default
    # `status.kopf` progress storage would be dropped by the API server.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=naming.GROUP, key="last-handled-configuration"
    )
    # Only warnings become Kubernetes Events; successes stay in the logs.
    settings.posting.level = logging.WARNING
    # No CRD/namespace observation: no cluster-scoped read access needed (see rbac.py).
    settings.scanning.disabled = True
    # Watch only our own children, filtered by the API server.
    settings.watching.label_selectors[("apps", "v1", "deployments")] = MANAGED_SELECTOR
    settings.watching.label_selectors[("v1", "pods")] = MANAGED_SELECTOR
    settings.watching.label_selectors[("autoscaling", "v2", "horizontalpodautoscalers")] = (
        MANAGED_SELECTOR
    )
    settings.watching.label_selectors[("keda.sh", "v1alpha1", "scaledobjects")] = MANAGED_SELECTOR
    memo.cluster = Cluster(load_api_client())
    memo.refreshes = Coalescer()


def _warn(owner: Mapping[str, Any], reason: str, message: str) -> None:
    """A Warning Event on the BentoDeployment."""
    kopf.warn(owner, reason=reason, message=message)  # type: ignore[arg-type]


@kopf.on.resume(naming.GROUP, naming.VERSION, naming.PLURAL)
@kopf.on.create(naming.GROUP, naming.VERSION, naming.PLURAL)
@kopf.on.update(naming.GROUP, naming.VERSION, naming.PLURAL)
def bento_deployment_changed(
    body: kopf.Body, memo: kopf.Memo, logger: reconcile.Logger, **_: Any
) -> None:
    outcome = reconcile.reconcile(memo.cluster, body, warn=_warn, logger=logger)
    if outcome.retry and outcome.problem is not None:
        raise kopf.TemporaryError(outcome.problem.message, delay=RETRY_DELAY_SECONDS)


def _refresh_parent(body: kopf.Body, memo: kopf.Memo, logger: reconcile.Logger) -> None:
    parent = body.metadata.labels.get(naming.LABEL_DEPLOYMENT)
    namespace = body.metadata.namespace
    if not parent or not namespace:
        return
    cluster: Cluster = memo.cluster
    refreshes: Coalescer = memo.refreshes
    if refreshes.run(
        (namespace, parent),
        lambda: reconcile.refresh_status(cluster, namespace, parent, warn=_warn),
    ):
        logger.debug("status refreshed bentodeployment=%s/%s", namespace, parent)


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
def child_deployment_changed(
    body: kopf.Body, memo: kopf.Memo, logger: reconcile.Logger, **_: Any
) -> None:
    _refresh_parent(body, memo, logger)


@kopf.on.event("v1", "pods", labels=MANAGED)
def child_pod_changed(body: kopf.Body, memo: kopf.Memo, logger: reconcile.Logger, **_: Any) -> None:
    _refresh_parent(body, memo, logger)


@kopf.on.event("autoscaling", "v2", "horizontalpodautoscalers", labels=MANAGED)
def child_autoscaler_changed(
    body: kopf.Body, memo: kopf.Memo, logger: reconcile.Logger, **_: Any
) -> None:
    _refresh_parent(body, memo, logger)


# Watched only where KEDA's CRD is served when the operator starts (kopf resolves the kinds
# it watches once, with scanning off): installing KEDA later needs an operator restart for
# its verdicts to show at once; until then they show at the next event of another child.
@kopf.on.event("keda.sh", "v1alpha1", "scaledobjects", labels=MANAGED)
def child_scaled_object_changed(
    body: kopf.Body, memo: kopf.Memo, logger: reconcile.Logger, **_: Any
) -> None:
    _refresh_parent(body, memo, logger)
