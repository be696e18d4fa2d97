"""Names and labels of the objects the operator owns.

Every component's objects are named `<deployment>-<component>`, the component
name in its DNS form (`contract.dns_label`). Object names must be DNS-1123
labels of at most 63 characters; a longer name is cut and given a
deterministic hash suffix so two long names never collide and a re-render
names the same object.
"""

from __future__ import annotations

import hashlib
import re

from kubento import contract

GROUP = "serving.kubento.io"
VERSION = "v1alpha1"
KIND = "BentoDeployment"
PLURAL = "bentodeployments"
SINGULAR = "bentodeployment"
SHORT_NAME = "bd"
API_VERSION = f"{GROUP}/{VERSION}"

FIELD_MANAGER = "kubento-operator"
MANAGED_BY = "kubento-operator"

HASH_LENGTH = 8

# Roles of components (the `component` label value); see components.py.
API_COMPONENT = "api"
RUNNER_COMPONENT = "runner"
SERVICE_COMPONENT = "service"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_KUBENTO_COMPONENT = f"{GROUP}/component"


def member_label(role: str) -> str:
    """The label naming which member of a role with many members a pod belongs to."""
    return f"{GROUP}/{role}"


LABEL_RUNNER = member_label(RUNNER_COMPONENT)
POD_TARGET_LABELS = (
    LABEL_DEPLOYMENT,
    LABEL_KUBENTO_COMPONENT,
    LABEL_RUNNER,
    member_label(SERVICE_COMPONENT),
)
"""Pod labels the chart's PodMonitor copies onto every scraped series (`podTargetLabels`),
so a query can pick one component's pods; together they hold every selector label."""


def prometheus_label(label: str) -> str:
    """A pod label as Prometheus names it on a series: `serving.kubento.io/deployment` ->
    `serving_kubento_io_deployment` (the Prometheus Operator's podTargetLabels rule)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", label)


ANNOTATION_CHECKSUM = f"{GROUP}/config-checksum"
MODEL_INIT_PREFIX = "model-"
"""Init container `model-<i>` pulls a component's i-th `models` entry (render writes it,
status reads it)."""


def short_hash(value: str, length: int = HASH_LENGTH) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def fit_name(name: str, limit: int = contract.MAX_NAME_LENGTH) -> str:
    """`name` if it fits in `limit` characters, else a cut prefix plus a hash of the full name."""
    if len(name) <= limit:
        return name
    prefix = name[: limit - HASH_LENGTH - 1].rstrip("-")
    return f"{prefix}-{short_hash(name)}"


def object_name(deployment: str, component: str) -> str:
    """Name of one component's Deployment, Service and HPA (and the API's Ingress)."""
    return fit_name(f"{deployment}-{contract.dns_label(component)}")


def api_name(deployment: str) -> str:
    """Name of the API Deployment, Service, HPA and Ingress."""
    return object_name(deployment, API_COMPONENT)


def selector_labels(deployment: str, role: str, member: str | None = None) -> dict[str, str]:
    """Labels that select one component's pods (immutable on a Deployment); `member` is the
    component's name when its role has many members (runners)."""
    labels = {LABEL_DEPLOYMENT: deployment, LABEL_KUBENTO_COMPONENT: role}
    if member is not None:
        labels[member_label(role)] = member
    return labels


def component_labels(deployment: str, role: str, member: str | None = None) -> dict[str, str]:
    """Recommended `app.kubernetes.io/*` labels plus the selector labels."""
    return {
        LABEL_NAME: "kubento",
        LABEL_INSTANCE: deployment,
        LABEL_COMPONENT: role,
        LABEL_PART_OF: deployment,
        LABEL_MANAGED_BY: MANAGED_BY,
        **selector_labels(deployment, role, member),
    }


def children_selector(deployment: str) -> str:
    """Label selector (string form) of every object owned by one BentoDeployment."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_DEPLOYMENT}={deployment}"
