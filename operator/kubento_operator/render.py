"""render(): a BentoDeployment in, the Kubernetes objects it stands for out.

Pure and deterministic: no I/O, the same input always renders the same list,
so it is unit-tested directly and exposed as `kubento-operator render`.
Commands, environment, ports and probe endpoints come from `kubento.contract`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from kubento import contract
from kubento_operator import naming, spec

Manifest = dict[str, Any]

DEFAULT_CPU_REQUEST = "250m"
DEFAULT_CPU_UTILIZATION = 80
GPU_RESOURCE = "nvidia.com/gpu"
TMP_VOLUME = "tmp"
API_CONTAINER = "api"
RUNNER_CONTAINER = "runner"

# (startup, readiness, liveness) defaults; startup allows 5 minutes for a model load.
_PROBE_DEFAULTS: dict[str, dict[str, int]] = {
    "startup": {"periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 60},
    "readiness": {"periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
    "liveness": {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3},
}


def render(bento_deployment: Mapping[str, Any] | spec.BentoDeployment) -> list[Manifest]:
    """Every child object of a BentoDeployment, in apply order.

    Raises spec.SpecError naming the field when the input is invalid.
    """
    bd = (
        bento_deployment
        if isinstance(bento_deployment, spec.BentoDeployment)
        else spec.parse(bento_deployment)
    )
    name, namespace = bd.metadata.name, bd.metadata.namespace
    runner_targets = {
        runner.name: contract.runner_dns_target(naming.runner_name(name, runner.name), namespace)
        for runner in bd.spec.runners
    }
    api_env = {
        contract.ENV_DEPLOYMENT_NAME: name,
        contract.ENV_RUNNER_MAP: contract.encode_runner_map(runner_targets),
    }
    children = _component(
        bd,
        component=bd.spec,
        object_name=naming.api_name(name),
        labels=naming.component_labels(name, naming.API_COMPONENT),
        selector=naming.selector_labels(name, naming.API_COMPONENT),
        container=_container(
            API_CONTAINER,
            bd,
            bd.spec,
            contract.api_command(bd.spec.service),
            ports=[(contract.API_PORT_NAME, contract.API_PORT)],
            env=api_env,
            probe=_http_probe,
        ),
        service_ports=[(contract.API_PORT_NAME, contract.API_PORT)],
        headless=False,
    )
    if bd.spec.ingress is not None and bd.spec.ingress.enabled:
        children.append(_ingress(bd, bd.spec.ingress))
    for runner in bd.spec.runners:
        batching = runner.batching or spec.Batching()
        runner_env = {
            contract.ENV_DEPLOYMENT_NAME: name,
            contract.ENV_RUNNER_NAME: runner.name,
            # The spec's batching fields are the contract's override knobs, by name.
            **contract.BatchingOverrides(**batching.model_dump()).to_env(),
        }
        ports = [
            (contract.RUNNER_PORT_NAME, contract.RUNNER_PORT),
            (contract.RUNNER_METRICS_PORT_NAME, contract.RUNNER_METRICS_PORT),
        ]
        children += _component(
            bd,
            component=runner,
            object_name=naming.runner_name(name, runner.name),
            labels=naming.component_labels(name, naming.RUNNER_COMPONENT, runner.name),
            selector=naming.selector_labels(name, naming.RUNNER_COMPONENT, runner.name),
            container=_container(
                RUNNER_CONTAINER,
                bd,
                runner,
                contract.runner_command(bd.spec.service, runner.name, workers=runner.workers),
                ports=ports,
                env=runner_env,
                probe=_grpc_probe,
            ),
            service_ports=ports,
            headless=True,
        )
    return children


def endpoint(bd: spec.BentoDeployment) -> str:
    """Where the API answers: the Ingress URL when it has a host, else the Service URL."""
    ingress = bd.spec.ingress
    if ingress is not None and ingress.enabled and ingress.host:
        scheme = "https" if ingress.tls else "http"
        return f"{scheme}://{ingress.host}{ingress.path}"
    service = naming.api_name(bd.metadata.name)
    return f"http://{service}.{bd.metadata.namespace}.svc:{contract.API_PORT}"


def owner_reference(bd: spec.BentoDeployment) -> dict[str, Any] | None:
    if bd.metadata.uid is None:
        return None
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "name": bd.metadata.name,
        "uid": bd.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _metadata(bd: spec.BentoDeployment, name: str, labels: dict[str, str]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": bd.metadata.namespace,
        "labels": dict(labels),
    }
    owner = owner_reference(bd)
    if owner is not None:
        metadata["ownerReferences"] = [owner]
    return metadata


def _component(
    bd: spec.BentoDeployment,
    *,
    component: spec.Component,
    object_name: str,
    labels: dict[str, str],
    selector: dict[str, str],
    container: dict[str, Any],
    service_ports: list[tuple[str, int]],
    headless: bool,
) -> list[Manifest]:
    service: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(bd, object_name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": dict(selector),
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
                for port_name, port in service_ports
            ],
        },
    }
    if headless:
        # Headless: DNS returns every ready pod, and the API's gRPC client balances
        # calls across them; a ClusterIP would pin each HTTP/2 connection to one pod.
        service["spec"]["clusterIP"] = "None"
    deployment_spec: dict[str, Any] = {}
    if component.autoscaling is None:
        # With an HPA the field stays unset: the HPA owns the replica count.
        deployment_spec["replicas"] = 1
    deployment_spec |= {
        "selector": {"matchLabels": dict(selector)},
        "revisionHistoryLimit": 5,
        "template": _pod_template(bd, component, labels, container),
    }
    strategy = _rolling_update(component)
    if strategy:
        deployment_spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    children: list[Manifest] = [
        service,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(bd, object_name, labels),
            "spec": deployment_spec,
        },
    ]
    if component.autoscaling is not None:
        children.append(_hpa(bd, component.autoscaling, object_name, labels))
    return children


def _gpus(component: spec.Component) -> int:
    resources = component.resources
    if resources is None:
        return 0
    for amounts in (resources.limits, resources.requests):
        if amounts is not None and amounts.gpu:
            return amounts.gpu
    return 0


def _rolling_update(component: spec.Component) -> dict[str, int | str]:
    strategy: dict[str, int | str] = {}
    if _gpus(component):
        # A GPU rollout must never need a spare GPU: replace pods one by one.
        strategy = {"maxSurge": 0, "maxUnavailable": 1}
    if component.strategy is not None:
        if component.strategy.max_surge is not None:
            strategy["maxSurge"] = component.strategy.max_surge
        if component.strategy.max_unavailable is not None:
            strategy["maxUnavailable"] = component.strategy.max_unavailable
    return strategy


def _must_match(name: str) -> bool:
    """Resources whose requests must equal their limits (extended resources, hugepages)."""
    if name.startswith("hugepages-"):
        return True
    domain = name.split("/", 1)[0] if "/" in name else ""
    return bool(domain) and not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _resources(component: spec.Component) -> dict[str, dict[str, str]]:
    resources = component.resources or spec.Resources()
    wanted = resources.requests or spec.ResourceList()
    capped = resources.limits or spec.ResourceList()
    requests: dict[str, str] = {}
    limits: dict[str, str] = {}
    # The HPA computes CPU utilization against requests, so there always is one.
    requests["cpu"] = wanted.cpu or capped.cpu or DEFAULT_CPU_REQUEST
    if capped.cpu is not None:
        limits["cpu"] = capped.cpu
    if wanted.memory is not None:
        requests["memory"] = wanted.memory
    if capped.memory is not None:
        limits["memory"] = capped.memory
    gpus = _gpus(component)
    if gpus:
        requests[GPU_RESOURCE] = limits[GPU_RESOURCE] = str(gpus)
    requests |= wanted.custom
    limits |= capped.custom
    for resource in sorted(set(requests) | set(limits)):
        if _must_match(resource):
            requests[resource] = limits[resource] = limits.get(resource) or requests[resource]
    result = {"requests": dict(sorted(requests.items()))}
    if limits:
        result["limits"] = dict(sorted(limits.items()))
    return result


def _probe_timing(component: spec.Component, kind: str, handler: dict[str, Any]) -> dict[str, Any]:
    probe = {**handler, **_PROBE_DEFAULTS[kind]}
    overrides = getattr(component.probes, kind, None) if component.probes else None
    if overrides is not None:
        probe.update(overrides.model_dump(by_alias=True, exclude_none=True))
    return probe


def _http_probe(kind: str) -> dict[str, Any]:
    path = contract.READINESS_PATH if kind == "readiness" else contract.LIVENESS_PATH
    return {"httpGet": {"path": path, "port": contract.API_PORT_NAME}}


def _grpc_probe(kind: str) -> dict[str, Any]:
    return {"grpc": {"port": contract.RUNNER_PORT}}


def _container(
    container_name: str,
    bd: spec.BentoDeployment,
    component: spec.Component,
    argv: list[str],
    *,
    ports: list[tuple[str, int]],
    env: dict[str, str],
    probe: Any,
) -> dict[str, Any]:
    user_env = [env_var.model_dump(by_alias=True, exclude_none=True) for env_var in component.envs]
    extra = component.extra_pod_spec or spec.ExtraPodSpec()
    container: dict[str, Any] = {
        "name": container_name,
        "image": bd.spec.image,
        "command": argv[:1],
        "args": argv[1:],
        "ports": [
            {"name": port_name, "containerPort": port, "protocol": "TCP"}
            for port_name, port in ports
        ],
        "env": [{"name": key, "value": value} for key, value in env.items()] + user_env,
        "resources": _resources(component),
        "startupProbe": _probe_timing(component, "startup", probe("startup")),
        "readinessProbe": _probe_timing(component, "readiness", probe("readiness")),
        "livenessProbe": _probe_timing(component, "liveness", probe("liveness")),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}, *extra.volume_mounts],
    }
    if bd.spec.image_pull_policy is not None:
        container["imagePullPolicy"] = bd.spec.image_pull_policy
    return container


def _pod_template(
    bd: spec.BentoDeployment,
    component: spec.Component,
    labels: dict[str, str],
    container: dict[str, Any],
) -> dict[str, Any]:
    extra = component.extra_pod_spec or spec.ExtraPodSpec()
    extra_metadata = component.extra_pod_metadata or spec.ExtraPodMetadata()
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}, *extra.volumes],
    }
    tolerations = list(extra.tolerations)
    if _gpus(component):
        tolerations.append({"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"})
    if tolerations:
        pod_spec["tolerations"] = tolerations
    if bd.spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": ref.name} for ref in bd.spec.image_pull_secrets]
    if extra.service_account_name is not None:
        pod_spec["serviceAccountName"] = extra.service_account_name
        # A service account chosen on purpose is there to talk to the API.
        pod_spec["automountServiceAccountToken"] = True
    for key, value in (
        ("nodeSelector", extra.node_selector),
        ("affinity", extra.affinity),
        ("topologySpreadConstraints", extra.topology_spread_constraints),
        ("priorityClassName", extra.priority_class_name),
        ("runtimeClassName", extra.runtime_class_name),
    ):
        if value:
            pod_spec[key] = value
    pod_labels = {**extra_metadata.labels, **labels}
    checksum = hashlib.sha256(
        json.dumps({"labels": pod_labels, "spec": pod_spec}, sort_keys=True).encode()
    ).hexdigest()
    annotations = {**extra_metadata.annotations, naming.ANNOTATION_CHECKSUM: checksum}
    return {
        "metadata": {"labels": pod_labels, "annotations": annotations},
        "spec": pod_spec,
    }


def _hpa(
    bd: spec.BentoDeployment,
    autoscaling: spec.Autoscaling,
    object_name: str,
    labels: dict[str, str],
) -> Manifest:
    metrics = autoscaling.metrics or [
        {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": DEFAULT_CPU_UTILIZATION},
            },
        }
    ]
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": object_name},
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": metrics,
    }
    if autoscaling.behavior is not None:
        hpa_spec["behavior"] = autoscaling.behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(bd, object_name, labels),
        "spec": hpa_spec,
    }


def _ingress(bd: spec.BentoDeployment, ingress: spec.Ingress) -> Manifest:
    name = naming.api_name(bd.metadata.name)
    rule: dict[str, Any] = {
        "http": {
            "paths": [
                {
                    "path": ingress.path,
                    "pathType": "Prefix",
                    "backend": {
                        "service": {"name": name, "port": {"name": contract.API_PORT_NAME}}
                    },
                }
            ]
        }
    }
    if ingress.host:
        rule["host"] = ingress.host
    metadata = _metadata(bd, name, naming.component_labels(bd.metadata.name, naming.API_COMPONENT))
    if ingress.annotations:
        metadata["annotations"] = dict(ingress.annotations)
    ingress_spec: dict[str, Any] = {"rules": [rule]}
    if ingress.class_name:
        ingress_spec["ingressClassName"] = ingress.class_name
    if ingress.tls is not None and ingress.host:
        ingress_spec["tls"] = [{"hosts": [ingress.host], "secretName": ingress.tls.secret_name}]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": ingress_spec,
    }
