"""Status writes racing child events, replayed step by step against a real API server.

No operator process here: the test calls the reconciler's own functions in the order that
lost an update in the lifecycle suite, so the interleaving is deterministic.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubento_operator import reconcile, render, spec
from kubento_operator.cluster import Cluster, load_api_client
from tests.cluster.controlplane import IMAGE, ControlPlane
from tests.cluster.operator_process import apply, condition, install_crd, wait_for

pytestmark = pytest.mark.cluster

NAME = "racy"
MANIFEST = {
    "apiVersion": "serving.kubento.io/v1alpha1",
    "kind": "BentoDeployment",
    "metadata": {"name": NAME},
    "spec": {
        "image": IMAGE,
        "service": "service:svc",
        "runners": [{"name": "model"}],
    },
}


@pytest.fixture
def api(cluster: ControlPlane, namespace: str) -> Cluster:
    """The operator's API client, with the BentoDeployment NAME applied in `namespace`."""
    install_crd(cluster)
    apply(cluster, namespace, MANIFEST)
    return Cluster(load_api_client(str(cluster.kubeconfig)))


def test_a_child_change_handled_before_the_first_status_write_is_not_lost(
    cluster: ControlPlane, namespace: str, api: Cluster
) -> None:
    body = api.get_bento_deployment(namespace, NAME)
    assert body is not None
    bd = spec.parse(body)
    # The reconcile lists the children (none ready yet) ...
    stale = reconcile.observe(api, bd, observed_generation=1, previous={})
    for child in render.render(bd):
        api.apply(child)

    # ... meanwhile every pod becomes ready and each child event runs a refresh ...
    def both_available() -> bool:
        deployments = cluster.get_json("-n", namespace, "deployments")["items"]
        return len(deployments) == 2 and all(
            d.get("status", {}).get("availableReplicas") == 1 for d in deployments
        )

    wait_for("both Deployments available", both_available)
    attempts: list[dict[str, Any]] = []
    warnings: list[str] = []

    def compute(latest: dict[str, Any]) -> dict[str, Any]:
        attempts.append(latest)
        if len(attempts) == 1:
            reconcile.refresh_status(
                api, namespace, NAME, warn=lambda _bd, reason, _msg: warnings.append(reason)
            )
            return stale
        return reconcile.observe(
            api, bd, observed_generation=1, previous=latest.get("status") or {}
        )

    # ... and only then does the reconcile write its status, computed from the old list.
    reconcile.commit_status(
        api, namespace, NAME, compute, lambda _bd, reason, _msg: warnings.append(reason)
    )

    assert len(attempts) == 2, "the refresh's write should make the stale status patch conflict"
    ready = condition(cluster, namespace, NAME, "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "AllComponentsReady")
    assert warnings == []


def test_a_bentodeployment_deleted_between_read_and_status_patch_is_not_an_error(
    cluster: ControlPlane, namespace: str, api: Cluster
) -> None:
    def delete_then_compute(latest: dict[str, Any]) -> dict[str, Any]:
        cluster.kubectl("delete", "-n", namespace, f"bentodeployment/{NAME}")
        bd = spec.parse(latest)
        return reconcile.observe(api, bd, observed_generation=1, previous={})

    def no_warning(_bd: Any, reason: str, _message: str) -> None:
        pytest.fail(f"unexpected warning {reason}")

    assert reconcile.commit_status(api, namespace, NAME, delete_then_compute, no_warning) is False
