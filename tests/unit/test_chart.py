"""The Helm chart: it lints, renders valid objects for every supported value combination,
grants exactly the RBAC the operator declares, and passes the operator the right arguments.

helm is the binary tests/cluster/bins.sh builds (`make cluster-bins`, a prerequisite of
`make test`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from kubento import contract
from kubento_operator import components, naming, rbac
from kubento_operator import render as operator_render
from tests import crd_fixtures

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "kubento-operator"
RELEASE = "kubento"
RELEASE_NAMESPACE = "kubento-system"
FULLNAME = "kubento-kubento-operator"
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")  # the local control plane's and kind's

# name -> values: the combinations users install.
COMBINATIONS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watch": {"allNamespaces": False, "namespaces": ["team-a", "team-b"]}},
    "ha-all-namespaces": {"replicas": 3},
    "ha-namespaced": {
        "replicas": 2,
        "watch": {"allNamespaces": False, "namespaces": ["team-a", "team-b"]},
    },
    "debug-plain-logs": {"log": {"level": "debug", "format": "plain"}},
    "existing-service-account": {
        "serviceAccount": {"create": False, "name": "ops"},
        "metrics": {"service": {"enabled": False}},
    },
    "scheduling-and-env": {
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {
            "podAntiAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "podAffinityTerm": {
                            "topologyKey": "kubernetes.io/hostname",
                            "labelSelector": {
                                "matchLabels": {"app.kubernetes.io/name": "kubento-operator"}
                            },
                        },
                    }
                ]
            }
        },
        "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}],
        "imagePullSecrets": [{"name": "registry"}],
        "priorityClassName": "system-cluster-critical",
        "podAnnotations": {"prometheus.io/scrape": "true"},
    },
    "monitors": {
        "monitoring": {
            "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            "podMonitor": {"enabled": True, "interval": "10s"},
        }
    },
    "monitors-namespaced": {
        "watch": {"allNamespaces": False, "namespaces": ["team-a", "team-b"]},
        "monitoring": {"podMonitor": {"enabled": True}},
    },
}


def _helm_path() -> Path | None:
    out = subprocess.run(
        ["bash", str(REPO / "tests" / "cluster" / "bins.sh"), "--print"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        name, _, path = line.partition("=")
        if name == "helm" and os.access(path, os.X_OK):
            return Path(path)
    return None


@pytest.fixture(scope="module")
def helm() -> Path:
    path = _helm_path()
    if path is None:
        message = "helm is not built: run `make cluster-bins` (make test does)"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


class HelmError(RuntimeError):
    pass


def run_helm(helm: Path, *args: str) -> str:
    result = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise HelmError(result.stderr.strip() or result.stdout.strip())
    return result.stdout


def values_file(tmp_path: Path, values: Mapping[str, Any]) -> Path:
    path = tmp_path / "values.json"  # JSON is YAML
    path.write_text(json.dumps(values))
    return path


def render(helm: Path, tmp_path: Path, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = run_helm(
        helm,
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--kube-version",
        KUBERNETES_VERSIONS[0],
        "--values",
        str(values_file(tmp_path, values)),
    )
    return [doc for doc in yaml.safe_load_all(out) if doc]


def find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    matches = find(objects, kind)
    assert len(matches) == 1, f"expected one {kind}, got {len(matches)}"
    return matches[0]


def operator_container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    container: dict[str, Any] = containers[0]
    return container


def chart_crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD the chart ships."""
    schemas = {}
    for path in sorted((CHART / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
            schemas[key] = version["schema"]["openAPIV3Schema"]
    return schemas


# --- lint and schema ------------------------------------------------------------------------


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_chart_passes_helm_lint_strict(helm: Path, tmp_path: Path, combination: str) -> None:
    run_helm(
        helm,
        "lint",
        "--strict",
        str(CHART),
        "--namespace",
        RELEASE_NAMESPACE,
        "--values",
        str(values_file(tmp_path, COMBINATIONS[combination])),
    )


@pytest.mark.parametrize("combination", sorted(COMBINATIONS))
def test_every_rendered_object_is_valid(helm: Path, tmp_path: Path, combination: str) -> None:
    objects = render(helm, tmp_path, COMBINATIONS[combination])
    custom = chart_crd_schemas() | crd_fixtures.schemas(
        crd_fixtures.POD_MONITORS, crd_fixtures.SERVICE_MONITORS
    )
    assert objects
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in custom:
            jsonschema.validate(obj, custom[key])
            continue
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(obj, version, strict=True)


def test_invalid_value_is_rejected_naming_the_field(helm: Path, tmp_path: Path) -> None:
    with pytest.raises(HelmError, match=r"/log/format'?: value must be one of"):
        render(helm, tmp_path, {"log": {"format": "xml"}})


def test_namespaced_mode_without_namespaces_is_rejected(helm: Path, tmp_path: Path) -> None:
    with pytest.raises(HelmError, match=r"watch\.namespaces must list at least one namespace"):
        render(helm, tmp_path, {"watch": {"allNamespaces": False, "namespaces": []}})


def test_replicas_without_leader_election_are_rejected(helm: Path, tmp_path: Path) -> None:
    with pytest.raises(HelmError, match=r"replicas=2 needs leaderElection\.enabled=true"):
        render(helm, tmp_path, {"replicas": 2, "leaderElection": {"enabled": False}})


# --- the operator's command line --------------------------------------------------------------


def test_defaults_run_one_standalone_operator_on_all_namespaces(helm: Path, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, {})
    container = operator_container(objects)
    assert container["command"] == ["kubento-operator"]
    assert container["args"] == [
        "run",
        "--all-namespaces",
        "--standalone",
        "--health-port",
        "8080",
        "--metrics-port",
        "9091",
        "--log-format",
        "json",
    ]
    assert only(objects, "Deployment")["spec"]["replicas"] == 1
    assert not find(objects, "ClusterKopfPeering") and not find(objects, "KopfPeering")


def test_standalone_operator_is_never_rolled_over_by_a_second_one(
    helm: Path, tmp_path: Path
) -> None:
    deployment = only(render(helm, tmp_path, {}), "Deployment")
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}


def test_namespaced_mode_passes_each_watched_namespace(helm: Path, tmp_path: Path) -> None:
    args = operator_container(render(helm, tmp_path, COMBINATIONS["namespaced"]))["args"]
    assert args[:6] == ["run", "--namespace", "team-a", "--namespace", "team-b", "--standalone"]
    assert "--all-namespaces" not in args


def test_replicas_peer_through_a_cluster_kopf_peering(helm: Path, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, COMBINATIONS["ha-all-namespaces"])
    args = operator_container(objects)["args"]
    assert args[:4] == ["run", "--all-namespaces", "--peering", FULLNAME]
    assert "--standalone" not in args
    peering = only(objects, "ClusterKopfPeering")
    assert (peering["apiVersion"], peering["metadata"]["name"]) == ("kopf.dev/v1", FULLNAME)
    assert only(objects, "Deployment")["spec"]["strategy"] == {"type": "RollingUpdate"}


def test_namespaced_replicas_peer_in_every_watched_namespace(helm: Path, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, COMBINATIONS["ha-namespaced"])
    peerings = find(objects, "KopfPeering")
    assert sorted(p["metadata"]["namespace"] for p in peerings) == ["team-a", "team-b"]
    assert {p["metadata"]["name"] for p in peerings} == {FULLNAME}
    assert not find(objects, "ClusterKopfPeering")


def test_debug_level_adds_verbose_and_log_format_is_passed(helm: Path, tmp_path: Path) -> None:
    args = operator_container(render(helm, tmp_path, COMBINATIONS["debug-plain-logs"]))["args"]
    assert args[-3:] == ["--log-format", "plain", "--verbose"]


def test_image_tag_defaults_to_the_chart_app_version(helm: Path, tmp_path: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    image = operator_container(render(helm, tmp_path, {}))["image"]
    assert image == f"ghcr.io/kubento/kubento-operator:{chart['appVersion']}"


def test_chart_app_version_is_the_package_version() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_extra_env_is_appended_to_the_downward_api_env(helm: Path, tmp_path: Path) -> None:
    env = operator_container(render(helm, tmp_path, COMBINATIONS["scheduling-and-env"]))["env"]
    assert [e["name"] for e in env] == ["POD_NAME", "POD_NAMESPACE", "HTTPS_PROXY"]


# --- pod security and probes -----------------------------------------------------------------


def test_operator_pod_meets_the_restricted_pod_security_standard(
    helm: Path, tmp_path: Path
) -> None:
    objects = render(helm, tmp_path, {})
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    container = operator_container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] > 0
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]


def test_probes_hit_the_operator_health_endpoint(helm: Path, tmp_path: Path) -> None:
    container = operator_container(render(helm, tmp_path, {"healthPort": 8181}))
    assert {"name": "health", "containerPort": 8181, "protocol": "TCP"} in container["ports"]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["args"][container["args"].index("--health-port") + 1] == "8181"


def test_metrics_service_targets_the_metrics_port(helm: Path, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, {})
    service = only(objects, "Service")
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 9091, "targetPort": "metrics", "protocol": "TCP"}
    ]
    pod_labels = only(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


# --- monitors ----------------------------------------------------------------------------------


def test_monitors_are_off_by_default(helm: Path, tmp_path: Path) -> None:
    kinds = {obj["kind"] for obj in render(helm, tmp_path, {})}
    assert not kinds & {"ServiceMonitor", "PodMonitor"}


def test_service_monitor_scrapes_the_operator_metrics_service(helm: Path, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, COMBINATIONS["monitors"])
    monitor, service = only(objects, "ServiceMonitor"), only(objects, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [RELEASE_NAMESPACE]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}


def test_service_monitor_without_the_metrics_service_is_rejected(
    helm: Path, tmp_path: Path
) -> None:
    values = {
        "metrics": {"service": {"enabled": False}},
        "monitoring": {"serviceMonitor": {"enabled": True}},
    }
    with pytest.raises(HelmError, match=r"needs metrics\.service\.enabled=true"):
        render(helm, tmp_path, values)


def _pod_templates() -> list[dict[str, Any]]:
    """Pod templates the operator renders for an API, a runner and a dependency service."""
    bd = {
        "metadata": {"name": "demo", "namespace": "team-a"},
        "spec": {
            "image": "img:1",
            "service": "service:svc",
            "runners": [{"name": "clf"}],
            "services": [{"name": "ModelA"}],
        },
    }
    children = operator_render.render(bd)
    return [c["spec"]["template"] for c in children if c["kind"] == "Deployment"]


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not selector["matchLabels"].items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_pod_monitor_scrapes_every_component_pod_on_its_metrics_endpoint(
    helm: Path, tmp_path: Path
) -> None:
    monitor = only(render(helm, tmp_path, COMBINATIONS["monitors"]), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    assert monitor["spec"]["podMetricsEndpoints"][0]["interval"] == "10s"
    endpoints = {e["port"]: e["path"] for e in monitor["spec"]["podMetricsEndpoints"]}
    templates = _pod_templates()
    assert {t["metadata"]["labels"][naming.LABEL_KUBENTO_COMPONENT] for t in templates} == {
        role.name for role in components.ROLES
    }
    for template in templates:
        assert _selects(monitor["spec"]["selector"], template["metadata"]["labels"])
        (container,) = template["spec"]["containers"]
        ports = {port["name"] for port in container["ports"]}
        # Exactly one endpoint per pod: the metrics port of a runner, the HTTP port of the API.
        scraped = ports & endpoints.keys()
        assert len(scraped) == 1, (container["name"], ports)
        assert endpoints[scraped.pop()] == contract.METRICS_PATH
    assert {contract.RUNNER_METRICS_PORT_NAME, contract.API_PORT_NAME} == endpoints.keys()


def test_pod_monitor_copies_the_labels_keda_queries_select_by(helm: Path, tmp_path: Path) -> None:
    monitor = only(render(helm, tmp_path, COMBINATIONS["monitors"]), "PodMonitor")
    assert tuple(monitor["spec"]["podTargetLabels"]) == naming.POD_TARGET_LABELS


def test_pod_monitor_looks_only_in_watched_namespaces(helm: Path, tmp_path: Path) -> None:
    monitor = only(render(helm, tmp_path, COMBINATIONS["monitors-namespaced"]), "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["team-a", "team-b"]}


# --- RBAC --------------------------------------------------------------------------------------


def test_all_namespaces_mode_binds_one_cluster_role_to_the_service_account(
    helm: Path, tmp_path: Path
) -> None:
    objects = render(helm, tmp_path, {})
    assert not find(objects, "Role") and not find(objects, "RoleBinding")
    binding = only(objects, "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == only(objects, "ClusterRole")["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}
    ]
    assert only(objects, "ServiceAccount")["metadata"]["name"] == FULLNAME


def test_namespaced_mode_grants_rights_only_in_watched_namespaces(
    helm: Path, tmp_path: Path
) -> None:
    objects = render(helm, tmp_path, COMBINATIONS["namespaced"])
    assert not find(objects, "ClusterRole") and not find(objects, "ClusterRoleBinding")
    roles = find(objects, "Role")
    bindings = find(objects, "RoleBinding")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": FULLNAME,
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": FULLNAME, "namespace": RELEASE_NAMESPACE}
        ]


@pytest.mark.parametrize(
    ("combination", "kind", "cluster_wide", "peering"),
    [
        ("defaults", "ClusterRole", True, False),
        ("ha-all-namespaces", "ClusterRole", True, True),
        ("namespaced", "Role", False, False),
        ("ha-namespaced", "Role", False, True),
    ],
)
def test_rbac_rules_are_exactly_what_the_operator_declares(
    helm: Path, tmp_path: Path, combination: str, kind: str, cluster_wide: bool, peering: bool
) -> None:
    expected = rbac.rules(cluster_wide=cluster_wide, peering=peering)
    roles = find(render(helm, tmp_path, COMBINATIONS[combination]), kind)
    assert roles
    for role in roles:
        assert role["rules"] == expected


def test_existing_service_account_is_bound_and_not_created(helm: Path, tmp_path: Path) -> None:
    objects = render(helm, tmp_path, COMBINATIONS["existing-service-account"])
    assert not find(objects, "ServiceAccount")
    assert not find(objects, "Service")
    assert only(objects, "ClusterRoleBinding")["subjects"][0]["name"] == "ops"
    pod = only(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "ops"


# --- CRDs -----------------------------------------------------------------------------------


def test_chart_crds_are_byte_identical_to_the_repository_crds() -> None:
    generated = sorted((REPO / "crds").glob("*.yaml"))
    assert generated, "crds/ is empty: run `make crds`"
    for path in generated:
        copy = CHART / "crds" / path.name
        assert copy.is_file(), f"{copy.relative_to(REPO)} is missing: run `make crds`"
        assert copy.read_bytes() == path.read_bytes(), (
            f"{copy.relative_to(REPO)} differs from {path.relative_to(REPO)}: run `make crds`"
        )


def test_chart_ships_kopf_peering_crds() -> None:
    assert {("kopf.dev/v1", "ClusterKopfPeering"), ("kopf.dev/v1", "KopfPeering")} <= set(
        chart_crd_schemas()
    )
