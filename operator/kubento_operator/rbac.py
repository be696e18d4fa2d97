"""The RBAC rules the operator needs, and nothing more.

The Helm chart renders these rules (a Role per watched namespace, or one
ClusterRole), and a test compares the chart against them.
"""

from __future__ import annotations

from typing import TypedDict

from kubento_operator import naming


class PolicyRule(TypedDict):
    apiGroups: list[str]
    resources: list[str]
    verbs: list[str]


# Server-side apply is a PATCH that creates missing objects (authorized as
# `create`); prune lists by label and deletes; status follows watches.
CHILD_RULES: list[PolicyRule] = [
    {"apiGroups": [""], "resources": ["services"], "verbs": ["create", "patch", "list", "delete"]},
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["create", "patch", "list", "watch", "delete"],
    },
    {
        "apiGroups": ["autoscaling"],
        "resources": ["horizontalpodautoscalers"],
        "verbs": ["create", "patch", "list", "watch", "delete"],
    },
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["ingresses", "networkpolicies"],
        "verbs": ["create", "patch", "list", "delete"],
    },
    {
        "apiGroups": ["policy"],
        "resources": ["poddisruptionbudgets"],
        "verbs": ["create", "patch", "list", "delete"],
    },
    # `autoscaling.engine: keda`; granted whether or not KEDA is installed (no CRD, no use).
    # Watched for KEDA's verdict in the Autoscaling condition.
    {
        "apiGroups": ["keda.sh"],
        "resources": ["scaledobjects"],
        "verbs": ["create", "patch", "list", "watch", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]},
]

OWN_RULES: list[PolicyRule] = [
    {
        "apiGroups": [naming.GROUP],
        "resources": [naming.PLURAL],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {
        "apiGroups": [naming.GROUP],
        "resources": [f"{naming.PLURAL}/status"],
        "verbs": ["patch"],
    },
    # Owner references with blockOwnerDeletion need update on the owner's finalizers
    # where the OwnerReferencesPermissionEnforcement admission plugin is on.
    {
        "apiGroups": [naming.GROUP],
        "resources": [f"{naming.PLURAL}/finalizers"],
        "verbs": ["update"],
    },
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]

NAMESPACED_PEERING_RULE: PolicyRule = {
    "apiGroups": ["kopf.dev"],
    "resources": ["kopfpeerings"],
    "verbs": ["get", "list", "watch", "patch"],
}
CLUSTER_PEERING_RULE: PolicyRule = {
    "apiGroups": ["kopf.dev"],
    "resources": ["clusterkopfpeerings"],
    "verbs": ["get", "list", "watch", "patch"],
}


def rules(*, cluster_wide: bool, peering: bool) -> list[PolicyRule]:
    """Rules for one mode: `cluster_wide` (--all-namespaces) and `peering` (--peering NAME).

    Namespaced mode grants them in every watched namespace. The operator turns kopf's
    CRD and namespace scanning off, so it needs no cluster-scoped read access at all.
    """
    selected = [*OWN_RULES, *CHILD_RULES]
    if peering:
        selected.append(CLUSTER_PEERING_RULE if cluster_wide else NAMESPACED_PEERING_RULE)
    return [
        {
            "apiGroups": list(r["apiGroups"]),
            "resources": list(r["resources"]),
            "verbs": list(r["verbs"]),
        }
        for r in selected
    ]
