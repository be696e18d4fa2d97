"""Names and labels of the objects the operator owns.

Object names must be DNS-1123 labels of at most 63 characters; when
`<deployment>-<component>` is longer, it is cut and given a deterministic
hash suffix so two long names never collide and a re-render names the same
object.
"""

from __future__ import annotations

import hashlib

GROUP = "serving.kubento.io"
VERSION = "v1alpha1"
KIND = "BentoDeployment"
PLURAL = "bentodeployments"
SINGULAR = "bentodeployment"
SHORT_NAME = "bd"
API_VERSION = f"{GROUP}/{VERSION}"

FIELD_MANAGER = "kubento-operator"
MANAGED_BY = "kubento-operator"

MAX_NAME_LENGTH = 63
HASH_LENGTH = 8

API_COMPONENT = "api"
RUNNER_COMPONENT = "runner"

LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_DEPLOYMENT = f"{GROUP}/deployment"
LABEL_KUBENTO_COMPONENT = f"{GROUP}/component"
LABEL_RUNNER = f"{GROUP}/runner"

ANNOTATION_CHECKSUM = f"{GROUP}/config-checksum"


def dns_label(value: str) -> str:
    """A runner name as it appears in object names: `model_runner_a` -> `model-runner-a`."""
    return value.lower().replace("_", "-").replace(".", "-")


def short_hash(value: str, length: int = HASH_LENGTH) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:length]


def fit_name(name: str, limit: int = MAX_NAME_LENGTH) -> str:
    """`name` if it fits in `limit` characters, else a cut prefix plus a hash of the full name."""
    if len(name) <= limit:
        return name
    prefix = name[: limit - HASH_LENGTH - 1].rstrip("-")
    return f"{prefix}-{short_hash(name)}"


def api_name(deployment: str) -> str:
    """Name of the API Deployment, Service, HPA and Ingress."""
    return fit_name(f"{deployment}-{API_COMPONENT}")


def runner_name(deployment: str, runner: str) -> str:
    """Name of a runner's Deployment, headless Service and HPA."""
    return fit_name(f"{deployment}-{dns_label(runner)}")


def selector_labels(deployment: str, component: str, runner: str | None = None) -> dict[str, str]:
    """Labels that select one component's pods (immutable on a Deployment)."""
    labels = {LABEL_DEPLOYMENT: deployment, LABEL_KUBENTO_COMPONENT: component}
    if runner is not None:
        labels[LABEL_RUNNER] = runner
    return labels


def component_labels(deployment: str, component: str, runner: str | None = None) -> dict[str, str]:
    """Recommended `app.kubernetes.io/*` labels plus the selector labels."""
    return {
        LABEL_NAME: "kubento",
        LABEL_INSTANCE: deployment,
        LABEL_COMPONENT: component,
        LABEL_PART_OF: deployment,
        LABEL_MANAGED_BY: MANAGED_BY,
        **selector_labels(deployment, component, runner),
    }


def children_selector(deployment: str) -> str:
    """Label selector (string form) of every object owned by one BentoDeployment."""
    return f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_DEPLOYMENT}={deployment}"
