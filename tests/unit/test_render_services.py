"""`spec.services[]`: one Deployment, headless Service and HPA per dependency service."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from kubento import contract
from kubento_operator import spec
from kubento_operator.components import SERVICE
from kubento_operator.crd import custom_resource_definition
from kubento_operator.render import render
from kubento_operator.status import Desired, compute_status, desired_components
from tests.unit.test_render import KUBERNETES_VERSION, bento, container, env_of, find

DIAMOND = bento(
    service="service:Graph",
    services=[
        {"name": "Embed", "workers": 2, "batching": {"maxBatchSize": 64, "maxLatencyMs": 20}},
        {"name": "ModelA", "autoscaling": {"minReplicas": 1, "maxReplicas": 4}},
        {"name": "ModelB", "resources": {"limits": {"gpu": 1}}},
    ],
    runners=[{"name": "tokenizer"}],
)


def test_every_service_object_is_valid_kubernetes() -> None:
    for child in render(DIAMOND):
        kubernetes_validate.validate(child, KUBERNETES_VERSION, strict=True)


def test_each_service_gets_deployment_headless_service_and_its_hpa() -> None:
    names = sorted((c["kind"], c["metadata"]["name"]) for c in render(DIAMOND))
    for name in ("demo-embed", "demo-model-a", "demo-model-b"):
        assert ("Deployment", name) in names
        assert ("Service", name) in names
    assert ("HorizontalPodAutoscaler", "demo-model-a") in names
    assert ("HorizontalPodAutoscaler", "demo-embed") not in names
    service = find(render(DIAMOND), "Service", "demo-model-a")
    assert service["spec"]["clusterIP"] == "None"


def test_service_container_runs_the_contract_command_with_its_name_workers_and_batching() -> None:
    embed = find(render(DIAMOND), "Deployment", "demo-embed")
    box = container(embed)
    assert [*box["command"], *box["args"]] == contract.service_command(
        "service:Graph", "Embed", workers=2
    )
    env = env_of(embed)
    assert env[contract.ENV_SERVICE_NAME] == "Embed"
    assert env["KUBENTO_MAX_BATCH_SIZE"] == "64" and env["KUBENTO_MAX_LATENCY_MS"] == "20"
    assert box["readinessProbe"]["grpc"]["port"] == contract.RUNNER_PORT
    assert box["name"] == "service"


def test_api_and_services_share_one_map_of_runners_and_services() -> None:
    children = render(DIAMOND)
    expected = {
        "tokenizer": "dns:///demo-tokenizer.ns.svc:50051",
        "embed": "dns:///demo-embed.ns.svc:50051",
        "model-a": "dns:///demo-model-a.ns.svc:50051",
        "model-b": "dns:///demo-model-b.ns.svc:50051",
    }
    for name in ("demo-api", "demo-model-a"):
        raw = env_of(find(children, "Deployment", name))[contract.ENV_RUNNER_MAP]
        assert contract.decode_runner_map(raw) == expected


def test_gpu_service_gets_the_gpu_rollout_and_toleration() -> None:
    model_b = find(render(DIAMOND), "Deployment", "demo-model-b")
    assert model_b["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    assert container(model_b)["resources"]["limits"]["nvidia.com/gpu"] == "1"


@pytest.mark.parametrize(
    ("runners", "services", "message"),
    [
        ([], ["ModelA", "Model_A"], "service 'ModelA' and service 'Model_A' both become 'model-a'"),
        (["model_a"], ["ModelA"], "runner 'model_a' and service 'ModelA' both become 'model-a'"),
    ],
)
def test_names_that_collide_as_objects_are_rejected(
    runners: list[str], services: list[str], message: str
) -> None:
    obj = bento(runners=[{"name": n} for n in runners], services=[{"name": n} for n in services])
    with pytest.raises(spec.SpecError, match=message):
        render(obj)


@pytest.mark.parametrize("name", ["api", "Api", "2fast", "has-dash", "x" * 64])
def test_bad_service_names_are_rejected(name: str) -> None:
    with pytest.raises(spec.SpecError, match=r"spec\.services\[0\]\.name"):
        render(bento(services=[{"name": name}]))


def test_status_counts_services_in_their_own_column() -> None:
    bd = spec.parse(DIAMOND)
    desired = desired_components(bd)
    assert [d.name for d in desired if d.role is SERVICE] == ["Embed", "ModelA", "ModelB"]
    deployments: list[dict[str, Any]] = [
        {
            "metadata": {"name": d.deployment, "generation": 1},
            "spec": {"replicas": 1},
            "status": {
                "observedGeneration": 1,
                "replicas": 1,
                "updatedReplicas": 1,
                "readyReplicas": 1,
                "availableReplicas": 1 if d.name != "ModelB" else 0,
            },
        }
        for d in desired
    ]
    status = compute_status(
        generation=1,
        observed_generation=1,
        components=desired,
        deployments=deployments,
        pods=[],
        problem=None,
        endpoint=None,
        previous_conditions=[],
        now="2026-01-01T00:00:00Z",
    )
    assert status["servicesReady"] == "2/3"
    assert [s["name"] for s in status["services"]] == ["Embed", "ModelA", "ModelB"]
    assert status["readyComponents"] == "4/5"
    assert isinstance(desired[0], Desired)


def test_printer_columns_count_services() -> None:
    (version,) = custom_resource_definition()["spec"]["versions"]
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Services"] == ".status.servicesReady"


def test_the_contracts_deployment_url_is_the_rendered_api_service() -> None:
    from kubento_operator import naming

    for name in ("search", "a" * 59):
        assert contract.deployment_url(name) == f"http://{naming.api_name(name)}:3000"
