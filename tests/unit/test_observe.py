"""What a status refresh reads: the children it reports on, and HPAs only where a component
autoscales (a refresh follows every child event, so a list it does not need is one per event)."""

from __future__ import annotations

from typing import Any

import pytest

from kubento_operator import reconcile, spec
from tests.unit.test_reconcile_order import bento


class ListingCluster:
    """Records which kinds are listed; the namespace holds nothing yet."""

    def __init__(self) -> None:
        self.listed: list[str] = []

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        self.listed.append(kind)
        return []

    def list_children(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        return self.list(api_version, kind, namespace, label_selector)


@pytest.mark.parametrize(
    ("autoscaling", "listed"),
    [
        (None, ["Deployment", "Pod"]),
        ({"minReplicas": 1, "maxReplicas": 3}, ["HorizontalPodAutoscaler", "Deployment", "Pod"]),
        (
            {"minReplicas": 1, "maxReplicas": 3, "engine": "keda", "metric": "queue", "target": 4},
            ["HorizontalPodAutoscaler", "ScaledObject", "Deployment", "Pod"],
        ),
    ],
    ids=["none", "hpa", "keda"],
)
def test_autoscalers_are_listed_only_when_a_component_autoscales(
    autoscaling: dict[str, Any] | None, listed: list[str]
) -> None:
    body = bento(autoscaling or {})
    if autoscaling is None:
        del body["spec"]["runners"][0]["autoscaling"]
    cluster = ListingCluster()
    status = reconcile.observe(cluster, spec.parse(body), observed_generation=1, previous={})  # type: ignore[arg-type]
    assert cluster.listed == listed
    assert "Autoscaling" not in {c["type"] for c in status["conditions"]}  # none found
