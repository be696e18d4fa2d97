"""The BentoDeployment a service graph stands for: pure, from the code plus a deploy file.

What the code declares (each service's `resources`, `workers` and `envs`; runners by
name) becomes the spec; a deploy file shaped like BentoML's deployment config overrides
it per service:

    name: my-graph                      # optional, as --name
    services:
      Graph: {scaling: {min_replicas: 1, max_replicas: 4}}
      Embed: {resources: {cpu: "2", memory: 2Gi}, envs: [{name: LOG, value: debug}]}

The entry service's settings are the spec's top level (the API server); every other
service is one `services[]` entry. Batching and traffic stay in the code, which the
runtime reads; a deploy file sets `batching` per service only to override it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubento import contract
from kubento._sdk.classes import ServiceConfig
from kubento._sdk.graph import Graph

API_VERSION = "serving.kubento.io/v1alpha1"
KIND = "BentoDeployment"
SERVICE_KEYS = frozenset({"scaling", "resources", "envs", "workers", "batching"})
SCALING_KEYS = {"min_replicas": "minReplicas", "max_replicas": "maxReplicas"}
FLAT_RESOURCES = frozenset({"cpu", "memory", "gpu"})


class DeployError(ValueError):
    """The code or the deploy file cannot become a BentoDeployment; says which field."""


def default_name(graph: Graph) -> str:
    return contract.service_label(graph.entry.name)


def resources(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    """BentoML's flat `{cpu, memory, gpu}` as requests (GPUs are set in both by the
    operator), or Kubernetes-shaped `{requests, limits}` as given."""
    if set(value) <= {"requests", "limits"}:
        return dict(value)
    unknown = sorted(set(value) - FLAT_RESOURCES)
    if unknown:
        raise DeployError(
            f"{where}.resources has unknown keys {unknown}: use cpu, memory and gpu, or "
            f"requests/limits"
        )
    return {"requests": {key: value[key] for key in ("cpu", "memory", "gpu") if key in value}}


def _component(config: ServiceConfig, member: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": config.name} if member else {}
    if config.resources:
        out["resources"] = resources(config.resources, f"service {config.name!r}")
    if config.envs:
        out["envs"] = [dict(env) for env in config.envs]
    if member and config.workers != 1:
        out["workers"] = config.workers
    return out


def _override(component: dict[str, Any], name: str, settings: Any, member: bool) -> None:
    where = f"services.{name}"
    if not isinstance(settings, Mapping):
        raise DeployError(f"{where} must be a mapping, got {settings!r}")
    unknown = sorted(set(settings) - SERVICE_KEYS)
    if unknown:
        raise DeployError(f"{where} has unknown keys {unknown}; allowed: {sorted(SERVICE_KEYS)}")
    if "scaling" in settings:
        scaling = settings["scaling"] or {}
        bad = sorted(set(scaling) - set(SCALING_KEYS))
        if bad:
            raise DeployError(
                f"{where}.scaling has unknown keys {bad}; allowed: min_replicas, max_replicas"
            )
        autoscaling = {SCALING_KEYS[key]: value for key, value in scaling.items()}
        autoscaling.setdefault("maxReplicas", autoscaling.get("minReplicas", 1))
        component["autoscaling"] = autoscaling
    if "resources" in settings:
        component["resources"] = resources(settings["resources"], where)
    if "envs" in settings:
        by_name = {env["name"]: env for env in component.get("envs", [])}
        for env in settings["envs"] or []:
            by_name[env["name"]] = dict(env)
        component["envs"] = list(by_name.values())
    for key in ("workers", "batching"):
        if key in settings:
            if not member:
                raise DeployError(
                    f"{where}.{key}: the entry service is the API server; set "
                    f"{key} on the services it depends on"
                )
            component[key] = settings[key]


def build_manifest(
    graph: Graph,
    *,
    import_path: str,
    image: str,
    name: str | None = None,
    namespace: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The BentoDeployment object for `graph`, overridden by a deploy file's contents."""
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - {"name", "services"})
    if unknown:
        raise DeployError(f"the deploy file has unknown keys {unknown}; allowed: name, services")
    per_service = overrides.get("services") or {}
    known = {config.name for config in graph.services}
    stray = sorted(set(per_service) - known)
    if stray:
        raise DeployError(
            f"the deploy file names services {stray} that {graph.entry.name!r} does not use; "
            f"it has {sorted(known)}"
        )
    spec: dict[str, Any] = {"image": image, "service": import_path}
    top = _component(graph.entry, member=False)
    if graph.entry.name in per_service:
        _override(top, graph.entry.name, per_service[graph.entry.name], member=False)
    spec |= top
    runners = graph.runners()
    if runners:
        spec["runners"] = [{"name": runner.name} for runner in runners]
    services = []
    for config in graph.dependencies:
        member = _component(config, member=True)
        if config.name in per_service:
            _override(member, config.name, per_service[config.name], member=True)
        services.append(member)
    if services:
        spec["services"] = services
    metadata: dict[str, Any] = {"name": name or overrides.get("name") or default_name(graph)}
    if namespace:
        metadata["namespace"] = namespace
    manifest = {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}
    _validate(manifest)
    return manifest


def _validate(manifest: dict[str, Any]) -> None:
    """Check the object against the operator's spec models (the CRD's source) when they are
    installed, so a bad value fails here rather than at the API server."""
    try:
        import kubento_operator.spec as operator_spec
    except ImportError:
        return
    try:
        operator_spec.parse(manifest)
    except operator_spec.SpecError as exc:
        raise DeployError(str(exc)) from None
