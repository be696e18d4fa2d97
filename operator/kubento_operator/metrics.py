"""Prometheus metrics of the operator itself (served by `kubento-operator run --metrics-port`)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

RECONCILES = Counter(
    "kubento_operator_reconciles_total",
    "BentoDeployment reconciles, by result (applied, invalid, failed).",
    ["result"],
)
RECONCILE_ERRORS = Counter(
    "kubento_operator_reconcile_errors_total",
    "Reconciles that failed to apply or prune children.",
)
RECONCILE_SECONDS = Histogram(
    "kubento_operator_reconcile_duration_seconds",
    "Time to render, apply, prune and write status of one BentoDeployment.",
)
STATUS_REFRESHES = Counter(
    "kubento_operator_status_refreshes_total",
    "Status recomputations triggered by child Deployment or Pod events, by outcome.",
    ["outcome"],
)
CHILDREN_PRUNED = Counter(
    "kubento_operator_children_pruned_total",
    "Child objects deleted because the spec no longer wants them.",
)


def serve(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics on a background thread."""
    start_http_server(port, addr=host)
