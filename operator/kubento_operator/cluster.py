"""The few Kubernetes API calls the reconciler makes, over any kubeconfig.

One field manager applies every child (server-side apply), deletes carry a
UID precondition so a prune never removes an object it did not mean to.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError, ResourceNotFoundError
from kubernetes.dynamic.resource import Resource

from kubento_operator import naming

# Kinds the operator creates, in the order a prune looks at them.
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("networking.k8s.io/v1", "Ingress"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("autoscaling/v2", "HorizontalPodAutoscaler"),
    ("apps/v1", "Deployment"),
    ("v1", "Service"),
)


def load_api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """An API client from the in-cluster service account, else from the kubeconfig."""
    if kubeconfig is None:
        try:
            config.load_incluster_config()
            return client.ApiClient()
        except config.ConfigException:
            pass
    configuration = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    return client.ApiClient(configuration)


ABSENT_RECHECK_S = 300.0
"""How long a prune trusts that a kind is not served before asking discovery again."""


class KindNotServed(Exception):
    """The API server serves no such kind: its CRD (KEDA's ScaledObject, say) is missing."""

    def __init__(self, api_version: str, kind: str) -> None:
        super().__init__(f"the cluster does not serve {kind} ({api_version})")
        self.api_version = api_version
        self.kind = kind


class Cluster:
    """Typed-enough access to the API server for the reconciler."""

    def __init__(
        self, api_client: client.ApiClient, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._dynamic = DynamicClient(api_client)
        self._resources: dict[tuple[str, str], Resource] = {}
        self._absent: dict[tuple[str, str], float] = {}
        self._clock = clock

    def _resource(self, api_version: str, kind: str) -> Resource:
        key = (api_version, kind)
        if key not in self._resources:
            try:
                found = self._dynamic.resources.get(api_version=api_version, kind=kind)
            except ResourceNotFoundError:
                self._absent[key] = self._clock()
                raise KindNotServed(api_version, kind) from None
            self._resources[key] = found
            self._absent.pop(key, None)
        return self._resources[key]

    def apply(self, manifest: dict[str, Any]) -> None:
        """Server-side apply one object as the operator's field manager.

        Raises KindNotServed when the cluster lacks the object's kind (its CRD)."""
        key = (manifest["apiVersion"], manifest["kind"])
        try:
            self._server_side_apply(self._resource(*key), manifest)
        except NotFoundError:
            # An apply creates what is missing, so a 404 means the kind itself is gone (its
            # CRD deleted since discovery was cached): discover again, once.
            self._resources.pop(key, None)
            self._dynamic.resources.invalidate_cache()
            self._server_side_apply(self._resource(*key), manifest)

    def _server_side_apply(self, resource: Resource, manifest: dict[str, Any]) -> None:
        self._dynamic.server_side_apply(
            resource,
            body=manifest,
            namespace=manifest["metadata"]["namespace"],
            field_manager=naming.FIELD_MANAGER,
            force_conflicts=True,
        )

    def list_children(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        """Like `list`, but a kind the cluster does not serve has no objects to prune; that
        answer is kept ABSENT_RECHECK_S (each miss costs a full discovery)."""
        seen_absent = self._absent.get((api_version, kind))
        if seen_absent is not None and self._clock() - seen_absent < ABSENT_RECHECK_S:
            return []
        try:
            return self.list(api_version, kind, namespace, label_selector)
        except KindNotServed:
            return []

    def list(
        self, api_version: str, kind: str, namespace: str, label_selector: str
    ) -> list[dict[str, Any]]:
        resource = self._resource(api_version, kind)
        listing = self._dynamic.get(resource, namespace=namespace, label_selector=label_selector)
        items = listing.to_dict().get("items") or []
        for item in items:
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items  # type: ignore[no-any-return]

    def delete(self, api_version: str, kind: str, namespace: str, name: str, uid: str) -> None:
        """Delete one object if it is still the one with `uid`."""
        resource = self._resource(api_version, kind)
        # Gone already, or replaced by another object of the same name (UID conflict).
        with contextlib.suppress(NotFoundError, ConflictError):
            self._dynamic.delete(
                resource,
                name=name,
                namespace=namespace,
                body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
            )

    def get_bento_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        resource = self._resource(naming.API_VERSION, naming.KIND)
        try:
            return self._dynamic.get(resource, name=name, namespace=namespace).to_dict()  # type: ignore[no-any-return]
        except NotFoundError:
            return None

    def patch_status(
        self, namespace: str, name: str, status: dict[str, Any], resource_version: str
    ) -> None:
        """Merge-patch the status subresource of a BentoDeployment.

        Raises ConflictError when the object changed since `resource_version` was read,
        so a status computed from a stale read never overwrites a newer one.
        """
        resource = self._resource(naming.API_VERSION, naming.KIND).subresources["status"]
        self._dynamic.patch(
            resource,
            body={"metadata": {"resourceVersion": resource_version}, "status": status},
            name=name,
            namespace=namespace,
            content_type="application/merge-patch+json",
        )
