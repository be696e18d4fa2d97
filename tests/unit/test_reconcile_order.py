"""The order of a reconcile's writes where order matters: a replaced autoscaler is deleted
before its successor is applied (KEDA's admission webhook refuses a ScaledObject for a
Deployment an HPA still scales; two HPAs on one Deployment fight). The rest of reconcile
is tested against a real API server in tests/cluster."""

from __future__ import annotations

import logging
from typing import Any

from kubento_operator import naming, reconcile, render

UID = "0b1e2c3d-0000-4000-8000-0000000000bb"


class RecordingCluster:
    """The calls reconcile makes, against a namespace holding `existing` objects."""

    def __init__(self, body: dict[str, Any], existing: list[dict[str, Any]]) -> None:
        self.body = body
        self.existing = existing
        self.calls: list[tuple[str, str, str]] = []

    def apply(self, manifest: dict[str, Any]) -> None:
        self.calls.append(("apply", manifest["kind"], manifest["metadata"]["name"]))

    def list_children(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        return [
            obj for obj in self.existing if (obj["apiVersion"], obj["kind"]) == (api_version, kind)
        ]

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        return self.list_children(api_version, kind, namespace, label_selector)

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> None:
        self.calls.append(("delete", kind, name))
        self.existing = [
            o for o in self.existing if (o["kind"], o["metadata"]["name"]) != (kind, name)
        ]

    def get_bento_deployment(self, namespace: str, name: str) -> dict[str, Any]:
        return self.body

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> None:
        self.calls.append(("patch_status", naming.KIND, name))


def bento(autoscaling: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {
            "name": "demo",
            "namespace": "ns",
            "uid": UID,
            "generation": 2,
            "resourceVersion": "7",
        },
        "spec": {
            "image": "img:1",
            "service": "service:svc",
            "runners": [{"name": "clf", "autoscaling": autoscaling}],
        },
    }


def owned(children: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [c for c in children if c["kind"] == kind and c["metadata"]["name"] == "demo-clf"]
    return {**found, "metadata": {**found["metadata"], "uid": f"uid-{kind}"}}


def reconciled(old: dict[str, Any], new: dict[str, Any], kind: str) -> list[tuple[str, str, str]]:
    existing = [owned(render.render(bento(old)), kind)]
    cluster = RecordingCluster(bento(new), existing)
    outcome = reconcile.reconcile(
        cluster,  # type: ignore[arg-type]
        bento(new),
        warn=lambda *_: None,
        logger=logging.getLogger("test"),
    )
    assert outcome.problem is None
    return cluster.calls


def test_an_hpa_replaced_by_a_scaled_object_is_deleted_before_the_scaled_object_is_applied() -> (
    None
):
    calls = reconciled(
        {"maxReplicas": 4, "metric": "queue", "target": 8},
        {"maxReplicas": 4, "metric": "queue", "target": 8, "engine": "keda"},
        "HorizontalPodAutoscaler",
    )
    deleted = calls.index(("delete", "HorizontalPodAutoscaler", "demo-clf"))
    assert deleted < calls.index(("apply", "ScaledObject", "demo-clf"))
    assert ("apply", "HorizontalPodAutoscaler", "demo-clf") not in calls


def test_a_scaled_object_replaced_by_an_hpa_is_deleted_before_the_hpa_is_applied() -> None:
    calls = reconciled(
        {"maxReplicas": 4, "metric": "queue", "target": 8, "engine": "keda"},
        {"maxReplicas": 4, "metric": "queue", "target": 8},
        "ScaledObject",
    )
    deleted = calls.index(("delete", "ScaledObject", "demo-clf"))
    assert deleted < calls.index(("apply", "HorizontalPodAutoscaler", "demo-clf"))


def test_a_kept_autoscaler_is_applied_and_never_deleted() -> None:
    same = {"maxReplicas": 4, "metric": "inflight", "target": 2, "engine": "keda"}
    calls = reconciled(same, same, "ScaledObject")
    assert ("apply", "ScaledObject", "demo-clf") in calls
    assert not [call for call in calls if call[0] == "delete"]
