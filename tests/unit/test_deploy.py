"""`kubento deploy`: the BentoDeployment built from a service graph and a deploy file."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import kubernetes_validate
import pytest
import yaml

import kubento
from kubento._deploy.manifest import API_VERSION, KIND, DeployError, build_manifest
from kubento._sdk.graph import build_graph
from kubento_operator import naming
from kubento_operator.render import render
from tests.integration.processes import SERVICES_DIR
from tests.unit.test_render import KUBERNETES_VERSION, env_of, find


@kubento.service(resources={"cpu": "2", "memory": "1Gi"}, workers=2)
class Encoder:
    @kubento.api
    def encode(self, text: str) -> list[float]:
        return [float(len(text))]


@kubento.service(resources={"gpu": 1}, envs=[{"name": "MODEL", "value": "small"}])
class Ranker:
    encoder = kubento.depends(Encoder)

    @kubento.api
    def rank(self, text: str) -> float:
        return self.encoder.encode(text)[0]


@kubento.service(resources={"cpu": "500m"})
class Search:
    ranker = kubento.depends(Ranker)

    @kubento.api
    def search(self, text: str) -> float:
        return self.ranker.rank(text)


KUBENTO = (sys.executable, "-m", "kubento")


def manifest(**kwargs: Any) -> dict[str, Any]:
    return build_manifest(
        build_graph(Search), import_path="app:Search", image="reg/app:1", **kwargs
    )


def test_the_api_version_and_kind_are_the_operators() -> None:
    assert (API_VERSION, KIND) == (naming.API_VERSION, naming.KIND)


def test_the_code_declares_each_services_resources_workers_and_envs() -> None:
    spec = manifest()["spec"]
    assert spec["resources"] == {"requests": {"cpu": "500m"}}
    assert spec["services"] == [
        {"name": "Encoder", "resources": {"requests": {"cpu": "2", "memory": "1Gi"}}, "workers": 2},
        {
            "name": "Ranker",
            "resources": {"requests": {"gpu": 1}},
            "envs": [{"name": "MODEL", "value": "small"}],
        },
    ]
    assert manifest()["metadata"] == {"name": "search"}


def test_a_deploy_file_overrides_scaling_resources_and_envs_per_service() -> None:
    overrides = {
        "name": "prod-search",
        "services": {
            "Search": {"scaling": {"min_replicas": 2, "max_replicas": 6}},
            "Ranker": {
                "envs": [{"name": "MODEL", "value": "large"}, {"name": "X", "value": "1"}],
                "batching": {"maxBatchSize": 32},
            },
            "Encoder": {"resources": {"limits": {"cpu": "4"}}},
        },
    }
    built = manifest(overrides=overrides, namespace="ml")
    assert built["metadata"] == {"name": "prod-search", "namespace": "ml"}
    spec = built["spec"]
    assert spec["autoscaling"] == {"minReplicas": 2, "maxReplicas": 6}
    encoder, ranker = spec["services"]
    assert encoder["resources"] == {"limits": {"cpu": "4"}}
    assert ranker["envs"] == [{"name": "MODEL", "value": "large"}, {"name": "X", "value": "1"}]
    assert ranker["batching"] == {"maxBatchSize": 32}


def test_the_built_object_renders_to_valid_kubernetes_one_deployment_per_service() -> None:
    built = manifest(namespace="ml")
    children = render(built)
    for child in children:
        kubernetes_validate.validate(child, KUBERNETES_VERSION, strict=True)
    deployments = sorted(c["metadata"]["name"] for c in children if c["kind"] == "Deployment")
    assert deployments == ["search-api", "search-encoder", "search-ranker"]
    assert (
        "nvidia.com/gpu"
        in find(children, "Deployment", "search-ranker")["spec"]["template"]["spec"]["containers"][
            0
        ]["resources"]["limits"]
    )
    assert env_of(find(children, "Deployment", "search-ranker"))["MODEL"] == "small"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"services": {"Nope": {}}}, r"names services \['Nope'\] that 'Search' does not use"),
        ({"services": {"Ranker": {"replicas": 2}}}, r"services\.Ranker has unknown keys"),
        ({"services": {"Search": {"workers": 2}}}, "the entry service is the API server"),
        ({"services": {"Ranker": {"scaling": {"max": 2}}}}, "scaling has unknown keys"),
        ({"replicas": 1}, "the deploy file has unknown keys"),
        ({"services": {"Ranker": {"resources": {"cpus": 1}}}}, "resources has unknown keys"),
        (
            {"services": {"Ranker": {"scaling": {"min_replicas": 5, "max_replicas": 2}}}},
            "minReplicas",
        ),
    ],
)
def test_a_bad_deploy_file_is_rejected_naming_the_field(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(DeployError, match=message):
        manifest(overrides=overrides)


def test_dry_run_prints_yaml_the_operator_accepts() -> None:
    out = subprocess.run(
        [
            *KUBENTO,
            "deploy",
            "graph:Diamond",
            "--image",
            "img:1",
            "--dry-run",
            "--working-dir",
            SERVICES_DIR,
            "--namespace",
            "ns",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    obj = yaml.safe_load(out)
    assert [s["name"] for s in obj["spec"]["services"]] == ["Embed", "ModelA", "ModelB"]
    assert len([c for c in render(obj) if c["kind"] == "Deployment"]) == 4


def test_deploying_a_runner_service_says_to_write_the_yaml() -> None:
    done = subprocess.run(
        [
            *KUBENTO,
            "deploy",
            "tagger:svc",
            "--image",
            "img:1",
            "--dry-run",
            "--working-dir",
            SERVICES_DIR,
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "is a kubento.Service" in done.stderr
