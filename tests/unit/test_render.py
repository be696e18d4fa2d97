"""render(): the objects a BentoDeployment becomes, each valid for Kubernetes 1.33."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from kubento import contract
from kubento_operator import naming, spec
from kubento_operator.render import render

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(REPO.glob("examples/*/bentodeployment.yaml"))
KUBERNETES_VERSION = "1.33.0"


def bento(name: str = "demo", uid: str | None = None, **spec_fields: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": "ns"}
    if uid is not None:
        metadata["uid"] = uid
    return {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": metadata,
        "spec": {"image": "img:1", "service": "service:svc", **spec_fields},
    }


def find(children: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    for child in children:
        if child["kind"] == kind and child["metadata"]["name"] == name:
            return child
    raise AssertionError(f"no {kind}/{name} in {[c['metadata']['name'] for c in children]}")


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only  # type: ignore[no-any-return]


def env_of(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container(deployment)["env"]}


EDGE_CASES: dict[str, dict[str, Any]] = {
    "minimal": bento(),
    "gpu": bento(runners=[{"name": "llm", "resources": {"limits": {"gpu": 2}}}]),
    "custom-resources": bento(
        resources={
            "requests": {"custom": {"nvidia.com/mig-1g.10gb": "1", "ephemeral-storage": "1Gi"}},
            "limits": {"custom": {"ephemeral-storage": "2Gi"}},
        }
    ),
    "no-autoscaling": bento(runners=[{"name": "r"}]),
    "autoscaling-with-metrics": bento(
        autoscaling={
            "minReplicas": 2,
            "maxReplicas": 9,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "memory",
                        "target": {"type": "AverageValue", "averageValue": "1Gi"},
                    },
                }
            ],
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
        }
    ),
    "ingress-tls": bento(
        ingress={
            "enabled": True,
            "className": "nginx",
            "host": "demo.example.com",
            "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "32m"},
            "tls": {"secretName": "demo-tls"},
        }
    ),
    "long-names": bento(
        name="a-very-long-bento-deployment-name-that-goes-on-and-on",
        uid="0b1e2c3d-0000-4000-8000-000000000001",
        runners=[{"name": "runner_with_a_rather_long_name_" + s} for s in ("one", "two")],
    ),
    "models": bento(
        models=[
            {
                "tag": "iris:v1",
                "source": "s3://models/iris.tar",
                "sha256": "a" * 64,
                "s3Endpoint": "http://minio.storage:9000",
                "credentialsSecret": "s3-credentials",
            }
        ],
        runners=[
            {
                "name": "clf",
                "models": [
                    {
                        "tag": "iris:v1",
                        "source": "https://models.example/iris.tar",
                        "sha256": "b" * 64,
                    },
                    {"tag": "embed:v2", "source": "pvc://weights/embed/v2.tar", "sha256": "c" * 64},
                ],
            }
        ],
    ),
    "extra-pod-fields": bento(
        extraPodMetadata={"labels": {"team": "ml"}, "annotations": {"a": "b"}},
        extraPodSpec={
            "nodeSelector": {"pool": "cpu"},
            "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "z", "operator": "Exists"}]}
                        ]
                    }
                }
            },
            "topologySpreadConstraints": [
                {"maxSkew": 1, "topologyKey": "zone", "whenUnsatisfiable": "ScheduleAnyway"}
            ],
            "serviceAccountName": "models",
            "priorityClassName": "high",
            "runtimeClassName": "gvisor",
            "volumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "models"}}],
            "volumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True}],
        },
        imagePullSecrets=[{"name": "registry"}],
        imagePullPolicy="Always",
        envs=[{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
    ),
}


def _all_inputs() -> list[tuple[str, dict[str, Any]]]:
    examples = [(path.parent.name, yaml.safe_load(path.read_text())) for path in EXAMPLES]
    return examples + list(EDGE_CASES.items())


@pytest.mark.parametrize(("case", "obj"), _all_inputs(), ids=[c for c, _ in _all_inputs()])
def test_every_rendered_object_is_valid_kubernetes(case: str, obj: dict[str, Any]) -> None:
    children = render(obj)
    assert children
    for child in children:
        kubernetes_validate.validate(child, KUBERNETES_VERSION, strict=True)
        assert len(child["metadata"]["name"]) <= contract.MAX_NAME_LENGTH


def test_examples_exist() -> None:
    assert {path.parent.name for path in EXAMPLES} >= {"quickstart", "composition"}


def test_render_is_deterministic() -> None:
    obj = EDGE_CASES["long-names"]
    assert render(copy.deepcopy(obj)) == render(copy.deepcopy(obj))


def test_each_component_gets_deployment_service_and_hpa() -> None:
    obj = bento(
        autoscaling={"maxReplicas": 3}, runners=[{"name": "r", "autoscaling": {"maxReplicas": 2}}]
    )
    kinds = sorted((c["kind"], c["metadata"]["name"]) for c in render(obj))
    assert kinds == [
        ("Deployment", "demo-api"),
        ("Deployment", "demo-r"),
        ("HorizontalPodAutoscaler", "demo-api"),
        ("HorizontalPodAutoscaler", "demo-r"),
        ("NetworkPolicy", "demo-api"),
        ("NetworkPolicy", "demo-r"),
        ("PodDisruptionBudget", "demo-api"),
        ("PodDisruptionBudget", "demo-r"),
        ("Service", "demo-api"),
        ("Service", "demo-r"),
    ]


def test_a_component_that_may_run_several_pods_gets_a_disruption_budget() -> None:
    obj = bento(
        autoscaling={"minReplicas": 1, "maxReplicas": 1},
        runners=[
            {"name": "r", "autoscaling": {"maxReplicas": 4}},
            {
                "name": "s",
                "autoscaling": {"maxReplicas": 4},
                "disruptionBudget": {"maxUnavailable": "50%"},
            },
        ],
    )
    children = render(obj)
    budgets = {
        c["metadata"]["name"]: c["spec"] for c in children if c["kind"] == "PodDisruptionBudget"
    }
    assert set(budgets) == {"demo-r", "demo-s"}  # one pod at most: nothing to budget
    assert budgets["demo-r"]["maxUnavailable"] == 1
    assert budgets["demo-s"]["maxUnavailable"] == "50%"
    runner = find(children, "Deployment", "demo-r")
    assert budgets["demo-r"]["selector"] == runner["spec"]["selector"]


def test_runners_take_grpc_only_from_their_own_deployment_and_metrics_from_anywhere() -> None:
    children = render(bento(runners=[{"name": "r"}]))
    runner = find(children, "NetworkPolicy", "demo-r")["spec"]
    assert runner["podSelector"] == find(children, "Deployment", "demo-r")["spec"]["selector"]
    grpc, metrics = runner["ingress"]
    assert grpc == {
        "from": [{"podSelector": {"matchLabels": {naming.LABEL_DEPLOYMENT: "demo"}}}],
        "ports": [{"port": contract.RUNNER_PORT_NAME, "protocol": "TCP"}],
    }
    assert metrics["from"] == [{"namespaceSelector": {}}]
    assert metrics["ports"] == [{"port": contract.RUNNER_METRICS_PORT_NAME, "protocol": "TCP"}]
    api = find(children, "NetworkPolicy", "demo-api")["spec"]
    assert api["ingress"] == [{"ports": [{"port": contract.API_PORT_NAME, "protocol": "TCP"}]}]


def test_network_policy_peers_are_configurable_and_policies_can_be_turned_off() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"team": "web"}}}]
    scrapers = [{"namespaceSelector": {"matchLabels": {"name": "monitoring"}}}]
    obj = bento(runners=[{"name": "r"}], networkPolicy={"apiFrom": peers, "metricsFrom": scrapers})
    children = render(obj)
    assert find(children, "NetworkPolicy", "demo-api")["spec"]["ingress"][0]["from"] == peers
    assert find(children, "NetworkPolicy", "demo-r")["spec"]["ingress"][1]["from"] == scrapers
    off = render(bento(runners=[{"name": "r"}], networkPolicy={"enabled": False}))
    assert not [c for c in off if c["kind"] == "NetworkPolicy"]


def test_pods_spread_over_nodes_and_drain_before_they_stop() -> None:
    runner = find(render(bento(runners=[{"name": "r"}])), "Deployment", "demo-r")
    pod = runner["spec"]["template"]["spec"]
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"] == runner["spec"]["selector"]["matchLabels"]
    assert container(runner)["lifecycle"] == {
        "preStop": {"sleep": {"seconds": contract.PRE_STOP_S}}
    }
    assert pod["terminationGracePeriodSeconds"] > contract.PRE_STOP_S + contract.SHUTDOWN_GRACE_S


def test_api_pods_get_runner_map_of_headless_dns_targets() -> None:
    children = render(bento(runners=[{"name": "model_a"}, {"name": "b"}]))
    runner_map = contract.decode_runner_map(
        env_of(find(children, "Deployment", "demo-api"))[contract.ENV_RUNNER_MAP]
    )
    assert runner_map == {
        "model_a": contract.runner_dns_target("demo-model-a", "ns"),
        "b": contract.runner_dns_target("demo-b", "ns"),
    }


def test_api_container_runs_the_contract_command() -> None:
    api = container(find(render(bento()), "Deployment", "demo-api"))
    assert api["command"] + api["args"] == contract.api_command(
        "service:svc", probe_port=contract.API_PROBE_PORT
    )
    assert api["ports"] == [
        {"name": contract.API_PORT_NAME, "containerPort": contract.API_PORT, "protocol": "TCP"},
        {
            "name": contract.API_PROBE_PORT_NAME,
            "containerPort": contract.API_PROBE_PORT,
            "protocol": "TCP",
        },
    ]


def test_runner_container_runs_the_contract_command_with_workers_and_batching() -> None:
    obj = bento(
        runners=[
            {
                "name": "r",
                "workers": 3,
                "batching": {"maxBatchSize": 16, "maxLatencyMs": 40, "maxConcurrency": 2},
            }
        ]
    )
    deployment = find(render(obj), "Deployment", "demo-r")
    runner = container(deployment)
    assert runner["command"] + runner["args"] == contract.runner_command(
        "service:svc", "r", workers=3
    )
    assert env_of(deployment) == {
        contract.ENV_DEPLOYMENT_NAME: "demo",
        contract.ENV_RUNNER_NAME: "r",
        **contract.BatchingOverrides(
            max_batch_size=16, max_latency_ms=40, max_concurrency=2
        ).to_env(),
    }


def test_callers_learn_the_batching_limits_their_runners_apply() -> None:
    obj = bento(
        runners=[
            {"name": "small", "batching": {"maxBatchSize": 4, "maxQueueSize": 8}},
            {"name": "plain"},
        ]
    )
    api_env = env_of(find(render(obj), "Deployment", "demo-api"))
    assert contract.batching_overrides_for("small", api_env) == contract.BatchingOverrides(
        max_batch_size=4, max_queue_size=8
    )
    assert contract.batching_overrides_for("plain", api_env) == contract.BatchingOverrides()
    # Without runner overrides the variable is still set, so a caller never falls back to
    # its own knob variables (a service pod has them, for itself).
    api_env = env_of(find(render(bento(runners=[{"name": "plain"}])), "Deployment", "demo-api"))
    assert api_env[contract.ENV_RUNNER_BATCHING] == "{}"


def test_the_specs_batching_fields_are_the_contracts_override_knobs() -> None:
    knobs = {knob.name for knob in contract.BATCHING_KNOBS}
    assert set(spec.Batching.model_fields) == knobs


def test_user_envs_follow_the_operator_envs() -> None:
    deployment = find(render(bento(envs=[{"name": "A", "value": "1"}])), "Deployment", "demo-api")
    assert container(deployment)["env"][-1] == {"name": "A", "value": "1"}


def test_api_service_is_cluster_ip_on_the_http_port() -> None:
    service = find(render(bento()), "Service", "demo-api")
    assert "clusterIP" not in service["spec"]
    assert service["spec"]["ports"] == [
        {"name": "http", "port": contract.API_PORT, "targetPort": "http", "protocol": "TCP"}
    ]


def test_runner_service_is_headless_with_grpc_and_metrics_ports() -> None:
    service = find(render(bento(runners=[{"name": "r"}])), "Service", "demo-r")
    assert service["spec"]["clusterIP"] == "None"
    assert [p["name"] for p in service["spec"]["ports"]] == ["grpc", "metrics"]
    assert service["spec"]["selector"] == naming.selector_labels(
        "demo", naming.RUNNER_COMPONENT, "r"
    )


def test_autoscaled_deployment_leaves_replicas_to_the_hpa() -> None:
    children = render(bento(autoscaling={"minReplicas": 2, "maxReplicas": 4}))
    assert "replicas" not in find(children, "Deployment", "demo-api")["spec"]
    hpa = find(children, "HorizontalPodAutoscaler", "demo-api")
    assert hpa["spec"]["minReplicas"] == 2
    assert hpa["spec"]["maxReplicas"] == 4
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "demo-api",
    }
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_without_autoscaling_one_replica_and_no_hpa() -> None:
    children = render(bento())
    assert find(children, "Deployment", "demo-api")["spec"]["replicas"] == 1
    assert not [c for c in children if c["kind"] == "HorizontalPodAutoscaler"]


def test_cpu_request_is_always_set_for_the_hpa() -> None:
    resources = container(find(render(bento()), "Deployment", "demo-api"))["resources"]
    assert resources["requests"]["cpu"] == "250m"


def test_cpu_limit_alone_becomes_the_request() -> None:
    obj = bento(resources={"limits": {"cpu": "2"}})
    resources = container(find(render(obj), "Deployment", "demo-api"))["resources"]
    assert resources == {"requests": {"cpu": "2"}, "limits": {"cpu": "2"}}


def test_gpu_goes_in_requests_and_limits_with_toleration_and_gpu_safe_rollout() -> None:
    deployment = find(render(EDGE_CASES["gpu"]), "Deployment", "demo-llm")
    resources = container(deployment)["resources"]
    assert resources["requests"]["nvidia.com/gpu"] == "2"
    assert resources["limits"]["nvidia.com/gpu"] == "2"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in deployment[
        "spec"
    ]["template"]["spec"]["tolerations"]
    assert deployment["spec"]["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1},
    }


def test_user_strategy_overrides_the_gpu_rollout() -> None:
    obj = bento(resources={"requests": {"gpu": 1}}, strategy={"maxSurge": 1})
    deployment = find(render(obj), "Deployment", "demo-api")
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 1}


def test_cpu_only_components_keep_the_default_rollout() -> None:
    assert "strategy" not in find(render(bento()), "Deployment", "demo-api")["spec"]


def test_extended_custom_resources_are_mirrored_and_others_kept_as_given() -> None:
    resources = container(find(render(EDGE_CASES["custom-resources"]), "Deployment", "demo-api"))[
        "resources"
    ]
    assert resources["requests"]["nvidia.com/mig-1g.10gb"] == "1"
    assert resources["limits"]["nvidia.com/mig-1g.10gb"] == "1"
    assert resources["requests"]["ephemeral-storage"] == "1Gi"
    assert resources["limits"]["ephemeral-storage"] == "2Gi"


@pytest.mark.parametrize("component", ["demo-api", "demo-r"])
def test_pods_meet_restricted_pod_security(component: str) -> None:
    deployment = find(render(bento(runners=[{"name": "r"}])), "Deployment", component)
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container(deployment)["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in container(deployment)["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False


def test_api_probes_use_http_livez_and_readyz_on_the_probe_port() -> None:
    objects = render(bento())
    api = container(find(objects, "Deployment", "demo-api"))
    assert api["livenessProbe"]["httpGet"] == {"path": contract.LIVENESS_PATH, "port": "probes"}
    assert api["readinessProbe"]["httpGet"] == {"path": contract.READINESS_PATH, "port": "probes"}
    assert api["startupProbe"]["httpGet"] == {"path": contract.LIVENESS_PATH, "port": "probes"}
    # Only the kubelet probes it: the Service and the NetworkPolicy leave it out.
    service_ports = find(objects, "Service", "demo-api")["spec"]["ports"]
    assert [port["name"] for port in service_ports] == [contract.API_PORT_NAME]
    policy = find(objects, "NetworkPolicy", "demo-api")["spec"]["ingress"]
    assert [port["port"] for rule in policy for port in rule["ports"]] == [contract.API_PORT_NAME]


def test_runner_probes_use_grpc_health() -> None:
    runner = container(find(render(bento(runners=[{"name": "r"}])), "Deployment", "demo-r"))
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert runner[probe]["grpc"] == {"port": contract.RUNNER_PORT}


def test_probe_timing_overrides_apply_for_slow_model_loads() -> None:
    obj = bento(
        runners=[
            {"name": "r", "probes": {"startup": {"failureThreshold": 200, "periodSeconds": 10}}}
        ]
    )
    startup = container(find(render(obj), "Deployment", "demo-r"))["startupProbe"]
    assert (startup["failureThreshold"], startup["periodSeconds"]) == (200, 10)
    assert startup["grpc"] == {"port": contract.RUNNER_PORT}


def test_labels_are_recommended_plus_selector_labels() -> None:
    deployment = find(render(bento(runners=[{"name": "model_a"}])), "Deployment", "demo-model-a")
    labels = deployment["metadata"]["labels"]
    assert labels[naming.LABEL_MANAGED_BY] == "kubento-operator"
    assert labels[naming.LABEL_INSTANCE] == "demo"
    assert labels[naming.LABEL_COMPONENT] == "runner"
    assert labels[naming.LABEL_DEPLOYMENT] == "demo"
    assert labels[naming.LABEL_KUBENTO_COMPONENT] == "runner"
    assert labels[naming.LABEL_RUNNER] == "model_a"
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_extra_pod_labels_cannot_override_selector_labels() -> None:
    obj = bento(extraPodMetadata={"labels": {naming.LABEL_DEPLOYMENT: "other"}})
    labels = find(render(obj), "Deployment", "demo-api")["spec"]["template"]["metadata"]["labels"]
    assert labels[naming.LABEL_DEPLOYMENT] == "demo"


def test_checksum_annotation_changes_with_the_pod_config_only() -> None:
    def checksum(obj: dict[str, Any], name: str = "demo-api") -> str:
        template = find(render(obj), "Deployment", name)["spec"]["template"]
        return str(template["metadata"]["annotations"][naming.ANNOTATION_CHECKSUM])

    base = checksum(bento())
    assert checksum(bento()) == base
    assert checksum(bento(envs=[{"name": "A", "value": "1"}])) != base
    assert checksum(bento(autoscaling={"maxReplicas": 5})) == base
    # A new runner changes the API's runner map, so API pods roll too.
    assert checksum(bento(runners=[{"name": "r"}])) != base


def test_long_names_fit_63_characters_with_distinct_hash_suffixes() -> None:
    children = render(EDGE_CASES["long-names"])
    names = {c["metadata"]["name"] for c in children if c["kind"] == "Deployment"}
    assert len(names) == 3
    for name in names:
        assert len(name) <= 63
        assert name[-1].isalnum()
    runner_names = sorted(n for n in names if not n.endswith("-api"))
    assert runner_names[0][:54] == runner_names[1][:54]


def test_ingress_routes_to_the_api_service_when_enabled() -> None:
    ingress = find(render(EDGE_CASES["ingress-tls"]), "Ingress", "demo-api")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "demo.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "demo-api",
        "port": {"name": "http"},
    }
    assert ingress["spec"]["tls"] == [{"hosts": ["demo.example.com"], "secretName": "demo-tls"}]
    assert ingress["metadata"]["annotations"] == {
        "nginx.ingress.kubernetes.io/proxy-body-size": "32m"
    }


def test_no_ingress_unless_enabled() -> None:
    children = render(bento(ingress={"enabled": False, "host": "x.example.com"}))
    assert not [c for c in children if c["kind"] == "Ingress"]


def test_children_are_owned_by_the_bento_deployment_when_it_has_a_uid() -> None:
    for child in render(EDGE_CASES["long-names"]):
        (owner,) = child["metadata"]["ownerReferences"]
        assert owner["uid"] == "0b1e2c3d-0000-4000-8000-000000000001"
        assert owner["controller"] is True
        assert owner["blockOwnerDeletion"] is True
        assert owner["kind"] == naming.KIND


def test_dry_run_without_uid_has_no_owner_references() -> None:
    assert all("ownerReferences" not in c["metadata"] for c in render(bento()))


def test_extra_pod_spec_fields_pass_through() -> None:
    deployment = find(render(EDGE_CASES["extra-pod-fields"]), "Deployment", "demo-api")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"pool": "cpu"}
    assert pod["serviceAccountName"] == "models"
    assert pod["automountServiceAccountToken"] is True
    assert pod["runtimeClassName"] == "gvisor"
    assert pod["imagePullSecrets"] == [{"name": "registry"}]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container(deployment)[
        "volumeMounts"
    ]
    assert container(deployment)["imagePullPolicy"] == "Always"


def test_models_are_pulled_by_init_containers_into_a_volume_the_component_reads() -> None:
    children = render(EDGE_CASES["models"])
    runner = find(children, "Deployment", "demo-clf")
    pod_spec = runner["spec"]["template"]["spec"]
    first, second = pod_spec["initContainers"]
    assert [first["name"], second["name"]] == ["model-0", "model-1"]
    assert first["command"] + first["args"] == contract.models_pull_command(
        "iris:v1", "https://models.example/iris.tar", "b" * 64
    )
    assert first["image"] == "img:1"
    assert first["securityContext"]["readOnlyRootFilesystem"] is True
    # The pvc:// source's claim is mounted read-only where the pull looks for it.
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    assert volumes["pvc-weights"]["persistentVolumeClaim"] == {
        "claimName": "weights",
        "readOnly": True,
    }
    assert {
        "name": "pvc-weights",
        "mountPath": f"{contract.PVC_ROOT}/weights",
        "readOnly": True,
    } in (second["volumeMounts"])
    # The runner reads the store the pulls wrote, read-only, through KUBENTO_HOME.
    assert env_of(runner)[contract.ENV_HOME] == contract.MODELS_HOME
    mount = next(m for m in container(runner)["volumeMounts"] if m["name"] == "kubento-models")
    assert mount == {"name": "kubento-models", "mountPath": contract.MODELS_HOME, "readOnly": True}
    # The API's own model comes from S3 with its endpoint and credentials.
    api = find(children, "Deployment", "demo-api")
    (pull,) = api["spec"]["template"]["spec"]["initContainers"]
    assert {"name": contract.ENV_S3_ENDPOINT, "value": "http://minio.storage:9000"} in pull["env"]
    assert pull["envFrom"] == [{"secretRef": {"name": "s3-credentials"}}]


def test_components_without_models_get_no_init_containers() -> None:
    for child in render(bento(runners=[{"name": "r"}])):
        if child["kind"] == "Deployment":
            assert "initContainers" not in child["spec"]["template"]["spec"]
            assert contract.ENV_HOME not in env_of(child)


@pytest.mark.parametrize(
    ("model", "complaint"),
    [
        ({"tag": "iris", "source": "s3://b/k", "sha256": "a" * 64}, "tag"),
        ({"tag": "iris:v1", "source": "ftp://b/k", "sha256": "a" * 64}, "source"),
        ({"tag": "iris:v1", "source": "s3://b/k", "sha256": "abc"}, "sha256"),
    ],
)
def test_a_bad_model_reference_is_refused_naming_the_field(
    model: dict[str, str], complaint: str
) -> None:
    with pytest.raises(spec.SpecError) as info:
        spec.parse(bento(models=[model]))
    assert complaint in str(info.value)


def test_a_model_listed_twice_is_refused() -> None:
    model = {"tag": "iris:v1", "source": "s3://b/k", "sha256": "a" * 64}
    with pytest.raises(spec.SpecError, match=r"\['iris:v1'\] more than once"):
        spec.parse(bento(models=[model, model]))
