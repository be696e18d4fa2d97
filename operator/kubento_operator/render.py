"""render(): a BentoDeployment in, the Kubernetes objects it stands for out.

Pure and deterministic: no I/O, the same input always renders the same list,
so it is unit-tested directly and exposed as `kubento-operator render`.
Commands, environment, ports and probe endpoints come from `kubento.contract`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubento import contract
from kubento_operator import components, naming, spec
from kubento_operator.components import Component

Manifest = dict[str, Any]

DEFAULT_CPU_REQUEST = "250m"
DEFAULT_CPU_UTILIZATION = 80
KEDA_API_VERSION = "keda.sh/v1alpha1"
GPU_RESOURCE = "nvidia.com/gpu"
TMP_VOLUME = "tmp"
MODELS_VOLUME = "kubento-models"
MODEL_PULL_RESOURCES = {
    "requests": {"cpu": "100m", "memory": "128Mi"},
    "limits": {"memory": "512Mi"},
}
RESTRICTED = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
"""Every container's security context: the restricted Pod Security Standard."""

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
    parts = components.components_of(bd)
    children: list[Manifest] = []
    for component in parts:
        children += _component(bd, component, parts)
        ingress = bd.spec.ingress
        if component.role.entry and ingress is not None and ingress.enabled:
            children.append(_ingress(bd, component, ingress))
        if bd.spec.network_policy.enabled:
            children.append(_network_policy(bd, component))
    return children


def _network_policy(bd: spec.BentoDeployment, component: Component) -> Manifest:
    """Who may reach a component's pods: the entry's HTTP as configured (default: anyone);
    a runner's or service's gRPC only from this BentoDeployment's pods; metrics scrapes
    from `metricsFrom`."""
    policy = bd.spec.network_policy
    ports = dict(component.role.ports)
    rules: list[dict[str, Any]] = []
    for port_name in ports:
        port = [{"port": port_name, "protocol": "TCP"}]
        if port_name == contract.RUNNER_METRICS_PORT_NAME:
            rules.append({"from": policy.metrics_from, "ports": port})
        elif component.role.entry:
            rules.append(
                {"ports": port}
                if policy.api_from is None
                else {"from": policy.api_from, "ports": port}
            )
        else:
            own = {"podSelector": {"matchLabels": {naming.LABEL_DEPLOYMENT: bd.metadata.name}}}
            rules.append({"from": [own], "ports": port})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(bd, component.object_name, component.labels),
        "spec": {
            "podSelector": {"matchLabels": component.selector},
            "policyTypes": ["Ingress"],
            "ingress": rules,
        },
    }


def _disruption_budget(
    bd: spec.BentoDeployment, component: Component, budget: spec.DisruptionBudget
) -> Manifest:
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(bd, component.object_name, component.labels),
        "spec": {
            "maxUnavailable": budget.max_unavailable,
            "selector": {"matchLabels": component.selector},
        },
    }


Runtime = tuple[list[str], dict[str, str]]
"""argv and operator-set environment of a component's container."""


def _runner_map(bd: spec.BentoDeployment, parts: Sequence[Component]) -> str:
    """Runner name, or service name in its DNS form -> the gRPC target of its pods."""
    return contract.encode_runner_map(
        {
            _map_key(part): contract.runner_dns_target(part.object_name, bd.metadata.namespace)
            for part in parts
            if part.role in (components.RUNNER, components.SERVICE)
        }
    )


def _runner_batching(parts: Sequence[Component]) -> str:
    """Each called component's batching overrides, for the pods that call it. Always set on
    callers, so a service pod never mistakes its own knob variables for its runners'."""
    return contract.encode_runner_batching(
        {
            _map_key(part): contract.BatchingOverrides(**part.batching.model_dump())
            for part in parts
            if part.role in (components.RUNNER, components.SERVICE) and part.batching
        }
    )


def _map_key(part: Component) -> str:
    # Runners by the name the code gives them; services by their DNS form, as the
    # runtime's ServiceRunner is named.
    return part.name if part.role is components.RUNNER else contract.service_label(part.name)


def _api_runtime(bd: spec.BentoDeployment, api: Component, parts: Sequence[Component]) -> Runtime:
    env = {
        contract.ENV_DEPLOYMENT_NAME: bd.metadata.name,
        contract.ENV_RUNNER_MAP: _runner_map(bd, parts),
        contract.ENV_RUNNER_BATCHING: _runner_batching(parts),
    }
    probes = api.role.probe_port  # the port its pods are probed on, served apart from the loop
    return contract.api_command(bd.spec.service, probe_port=probes and probes[1]), env


def _service_runtime(
    bd: spec.BentoDeployment, service: Component, parts: Sequence[Component]
) -> Runtime:
    batching = service.batching or spec.Batching()
    env = {
        contract.ENV_DEPLOYMENT_NAME: bd.metadata.name,
        contract.ENV_SERVICE_NAME: service.name,
        # A service calls its own dependencies (and runners) through the same map.
        contract.ENV_RUNNER_MAP: _runner_map(bd, parts),
        contract.ENV_RUNNER_BATCHING: _runner_batching(parts),
        **contract.BatchingOverrides(**batching.model_dump()).to_env(),
    }
    argv = contract.service_command(bd.spec.service, service.name, workers=service.workers)
    return argv, env


def _runner_runtime(
    bd: spec.BentoDeployment, runner: Component, parts: Sequence[Component]
) -> Runtime:
    batching = runner.batching or spec.Batching()
    env = {
        contract.ENV_DEPLOYMENT_NAME: bd.metadata.name,
        contract.ENV_RUNNER_NAME: runner.name,
        # The spec's batching fields are the contract's override knobs, by name.
        **contract.BatchingOverrides(**batching.model_dump()).to_env(),
    }
    argv = contract.runner_command(bd.spec.service, runner.name, workers=runner.workers)
    return argv, env


# How each role's process starts, from the runtime contract.
_RUNTIME: dict[str, Callable[[spec.BentoDeployment, Component, Sequence[Component]], Runtime]] = {
    components.API.name: _api_runtime,
    components.RUNNER.name: _runner_runtime,
    components.SERVICE.name: _service_runtime,
}


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
    bd: spec.BentoDeployment, component: Component, parts: Sequence[Component]
) -> list[Manifest]:
    """The Service, Deployment and (with autoscaling) HPA of one component."""
    settings, labels, name = component.settings, component.labels, component.object_name
    service: Manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(bd, name, labels),
        "spec": {
            "type": "ClusterIP",
            "selector": component.selector,
            "ports": [
                {"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
                for port_name, port in component.role.ports
            ],
        },
    }
    if component.role.headless:
        # Headless: DNS returns every ready pod, and the API's gRPC client balances
        # calls across them; a ClusterIP would pin each HTTP/2 connection to one pod.
        service["spec"]["clusterIP"] = "None"
    deployment_spec: dict[str, Any] = {}
    if settings.autoscaling is None:
        # With an HPA the field stays unset: the HPA owns the replica count.
        deployment_spec["replicas"] = 1
    argv, env = _RUNTIME[component.role.name](bd, component, parts)
    deployment_spec |= {
        "selector": {"matchLabels": component.selector},
        "revisionHistoryLimit": 5,
        "template": _pod_template(
            bd,
            settings,
            labels,
            _container(bd, component, argv, env),
            _model_pulls(bd, settings),
            component.selector,
        ),
    }
    strategy = _rolling_update(settings)
    if strategy:
        deployment_spec["strategy"] = {"type": "RollingUpdate", "rollingUpdate": strategy}
    children: list[Manifest] = [
        service,
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _metadata(bd, name, labels),
            "spec": deployment_spec,
        },
    ]
    if settings.autoscaling is not None:
        scaler = _scaled_object if settings.autoscaling.engine == "keda" else _hpa
        children.append(scaler(bd, settings.autoscaling, component))
        if settings.autoscaling.max_replicas > 1:
            budget = settings.disruption_budget or spec.DisruptionBudget()
            children.append(_disruption_budget(bd, component, budget))
    return children


def _gpus(component: spec.ComponentSpec) -> int:
    resources = component.resources
    if resources is None:
        return 0
    for amounts in (resources.limits, resources.requests):
        if amounts is not None and amounts.gpu:
            return amounts.gpu
    return 0


def _rolling_update(component: spec.ComponentSpec) -> dict[str, int | str]:
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


def _resources(component: spec.ComponentSpec) -> dict[str, dict[str, str]]:
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


def _probe_timing(
    component: spec.ComponentSpec, kind: str, handler: dict[str, Any]
) -> dict[str, Any]:
    probe = {**handler, **_PROBE_DEFAULTS[kind]}
    overrides = getattr(component.probes, kind, None) if component.probes else None
    if overrides is not None:
        probe.update(overrides.model_dump(by_alias=True, exclude_none=True))
    return probe


def _probe(role: components.Role, kind: str) -> dict[str, Any]:
    if role.probe == "grpc":
        return {"grpc": {"port": contract.RUNNER_PORT}}
    path = contract.READINESS_PATH if kind == "readiness" else contract.LIVENESS_PATH
    port_name, _ = role.probed_port
    return {"httpGet": {"path": path, "port": port_name}}


def _container(
    bd: spec.BentoDeployment, component: Component, argv: list[str], env: dict[str, str]
) -> dict[str, Any]:
    settings = component.settings
    user_env = [env_var.model_dump(by_alias=True, exclude_none=True) for env_var in settings.envs]
    extra = settings.extra_pod_spec or spec.ExtraPodSpec()
    probes = {
        f"{kind}Probe": _probe_timing(settings, kind, _probe(component.role, kind))
        for kind in ("startup", "readiness", "liveness")
    }
    container: dict[str, Any] = {
        "name": component.role.name,
        "image": bd.spec.image,
        "command": argv[:1],
        "args": argv[1:],
        "ports": [
            {"name": port_name, "containerPort": port, "protocol": "TCP"}
            for port_name, port in component.role.container_ports
        ],
        "env": [{"name": key, "value": value} for key, value in env.items()] + user_env,
        "resources": _resources(settings),
        **probes,
        "securityContext": RESTRICTED,
        "volumeMounts": [{"name": TMP_VOLUME, "mountPath": "/tmp"}, *extra.volume_mounts],
        # Endpoints drop a terminating pod a moment after it gets SIGTERM: keep serving
        # until they have, then drain (the kubelet's own sleep: no binary needed).
        "lifecycle": {"preStop": {"sleep": {"seconds": contract.PRE_STOP_S}}},
    }
    if settings.models:
        # The fetched models, read-only: the component reads its store, never writes it.
        container["env"].append({"name": contract.ENV_HOME, "value": contract.MODELS_HOME})
        container["volumeMounts"].append(
            {"name": MODELS_VOLUME, "mountPath": contract.MODELS_HOME, "readOnly": True}
        )
    if bd.spec.image_pull_policy is not None:
        container["imagePullPolicy"] = bd.spec.image_pull_policy
    return container


def _model_pulls(
    bd: spec.BentoDeployment, component: spec.ComponentSpec
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The init containers that pull a component's models (one each, in order, so a failure
    names its model) and the volumes they need."""
    if not component.models:
        return [], []
    volumes: dict[str, dict[str, Any]] = {MODELS_VOLUME: {"name": MODELS_VOLUME, "emptyDir": {}}}
    inits = []
    for index, model in enumerate(component.models):
        env = [{"name": contract.ENV_HOME, "value": contract.MODELS_HOME}]
        if model.s3_endpoint:
            env.append({"name": contract.ENV_S3_ENDPOINT, "value": model.s3_endpoint})
        mounts: list[dict[str, Any]] = [
            {"name": MODELS_VOLUME, "mountPath": contract.MODELS_HOME},
            {"name": TMP_VOLUME, "mountPath": "/tmp"},
        ]
        if model.source.startswith("pvc://"):
            claim = model.source.removeprefix("pvc://").split("/", 1)[0]
            name = f"pvc-{claim}"[:63]
            volumes[name] = {
                "name": name,
                "persistentVolumeClaim": {"claimName": claim, "readOnly": True},
            }
            mounts.append(
                {"name": name, "mountPath": f"{contract.PVC_ROOT}/{claim}", "readOnly": True}
            )
        argv = contract.models_pull_command(model.tag, model.source, model.sha256)
        init: dict[str, Any] = {
            "name": f"{naming.MODEL_INIT_PREFIX}{index}",
            "image": bd.spec.image,
            "command": argv[:1],
            "args": argv[1:],
            "env": env,
            # The pull's last words become the status message that names the model.
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "resources": MODEL_PULL_RESOURCES,
            "securityContext": RESTRICTED,
            "volumeMounts": mounts,
        }
        if model.credentials_secret:
            init["envFrom"] = [{"secretRef": {"name": model.credentials_secret}}]
        if bd.spec.image_pull_policy is not None:
            init["imagePullPolicy"] = bd.spec.image_pull_policy
        inits.append(init)
    return inits, list(volumes.values())


def _pod_template(
    bd: spec.BentoDeployment,
    component: spec.ComponentSpec,
    labels: dict[str, str],
    container: dict[str, Any],
    pulls: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    selector: dict[str, str],
) -> dict[str, Any]:
    extra = component.extra_pod_spec or spec.ExtraPodSpec()
    init_containers, model_volumes = pulls
    extra_metadata = component.extra_pod_metadata or spec.ExtraPodMetadata()
    pod_spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": contract.RUNTIME_UID,
            "runAsGroup": contract.RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": TMP_VOLUME, "emptyDir": {}}, *model_volumes, *extra.volumes],
        "terminationGracePeriodSeconds": contract.TERMINATION_GRACE_S,
        # Spread over nodes when it can; never keeps a pod from scheduling.
        "topologySpreadConstraints": extra.topology_spread_constraints
        or [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector},
            }
        ],
    }
    if init_containers:
        pod_spec["initContainers"] = init_containers
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


def _scale_target(component: Component) -> dict[str, str]:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "name": component.object_name}


def _hpa_metric(autoscaling: spec.Autoscaling) -> dict[str, Any]:
    """CPU utilization, or the pods' batching gauge (served by prometheus-adapter) per pod."""
    if autoscaling.series is None:
        utilization = autoscaling.target or DEFAULT_CPU_UTILIZATION
        return {
            "type": "Resource",
            "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": utilization},
            },
        }
    return {
        "type": "Pods",
        "pods": {
            "metric": {"name": autoscaling.series},
            "target": {"type": "AverageValue", "averageValue": str(autoscaling.target)},
        },
    }


def _hpa(bd: spec.BentoDeployment, autoscaling: spec.Autoscaling, component: Component) -> Manifest:
    hpa_spec: dict[str, Any] = {
        "scaleTargetRef": _scale_target(component),
        "minReplicas": autoscaling.min_replicas,
        "maxReplicas": autoscaling.max_replicas,
        "metrics": autoscaling.metrics or [_hpa_metric(autoscaling)],
    }
    if autoscaling.behavior is not None:
        hpa_spec["behavior"] = autoscaling.behavior
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(bd, component.object_name, component.labels),
        "spec": hpa_spec,
    }


def series_query(bd: spec.BentoDeployment, component: Component, series: str) -> str:
    """PromQL: the total of `series` over one component's pods, selected by the pod labels
    the chart's PodMonitor copies onto every series (naming.prometheus_label)."""
    matchers = [f'namespace="{bd.metadata.namespace}"'] + [
        f'{naming.prometheus_label(key)}="{value}"' for key, value in component.selector.items()
    ]
    return f"sum({series}{{{','.join(matchers)}}})"


def _keda_trigger(
    bd: spec.BentoDeployment, autoscaling: spec.Autoscaling, component: Component
) -> dict[str, Any]:
    if autoscaling.series is None:
        utilization = autoscaling.target or DEFAULT_CPU_UTILIZATION
        return {"type": "cpu", "metricType": "Utilization", "metadata": {"value": str(utilization)}}
    # KEDA divides the query's total by the threshold: the pods it wants at `target` each.
    return {
        "type": "prometheus",
        "metadata": {
            "serverAddress": autoscaling.prometheus_address or spec.DEFAULT_PROMETHEUS_ADDRESS,
            "query": series_query(bd, component, autoscaling.series),
            "threshold": str(autoscaling.target),
        },
    }


def _scaled_object(
    bd: spec.BentoDeployment, autoscaling: spec.Autoscaling, component: Component
) -> Manifest:
    """A KEDA ScaledObject (keda.sh/v1alpha1): KEDA creates and owns the HPA behind it."""
    scaled_spec: dict[str, Any] = {
        "scaleTargetRef": _scale_target(component),
        "minReplicaCount": autoscaling.min_replicas,
        "maxReplicaCount": autoscaling.max_replicas,
        "triggers": [_keda_trigger(bd, autoscaling, component)],
    }
    if autoscaling.behavior is not None:
        scaled_spec["advanced"] = {
            "horizontalPodAutoscalerConfig": {"behavior": autoscaling.behavior}
        }
    return {
        "apiVersion": KEDA_API_VERSION,
        "kind": "ScaledObject",
        "metadata": _metadata(bd, component.object_name, component.labels),
        "spec": scaled_spec,
    }


def _ingress(bd: spec.BentoDeployment, entry: Component, ingress: spec.Ingress) -> Manifest:
    name = entry.object_name
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
    metadata = _metadata(bd, name, entry.labels)
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
