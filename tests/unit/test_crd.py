"""The generated CRD: up to date, structural, and accepting what the spec models accept."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from kubento import contract
from kubento_operator import crd, naming, spec

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "crds" / f"{crd.CRD_NAME}.yaml"
EXAMPLES = sorted(REPO.glob("examples/*/bentodeployment.yaml"))


def version() -> dict[str, Any]:
    (only,) = crd.custom_resource_definition()["spec"]["versions"]
    return only  # type: ignore[no-any-return]


def schema() -> dict[str, Any]:
    return version()["schema"]["openAPIV3Schema"]  # type: ignore[no-any-return]


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(path, node)]
    for name, sub in (node.get("properties") or {}).items():
        found += walk(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        found += walk(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        found += walk(node["additionalProperties"], f"{path}{{}}")
    return found


def test_committed_crd_is_up_to_date() -> None:
    assert COMMITTED.read_text() == crd.render_yaml(), (
        "crds/ is stale: run `make crds` and commit the result"
    )


def test_names_and_scope() -> None:
    definition = crd.custom_resource_definition()
    assert definition["metadata"]["name"] == "bentodeployments.serving.kubento.io"
    names = definition["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "BentoDeployment",
        "bentodeployments",
        ["bd"],
    )
    assert definition["spec"]["group"] == "serving.kubento.io"
    assert definition["spec"]["scope"] == "Namespaced"
    assert version()["name"] == "v1alpha1"


def test_status_subresource_is_enabled() -> None:
    assert version()["subresources"] == {"status": {}}


def test_every_schema_node_is_structural() -> None:
    for path, node in walk(schema()):
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "type" in node, f"{path} has no type"
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path


@pytest.mark.parametrize("part", ["spec", "status"])
def test_every_field_has_a_description_for_kubectl_explain(part: str) -> None:
    for path, node in walk(schema()["properties"][part], f".{part}"):
        if path.endswith(("[]", "{}")):
            continue
        assert node.get("description"), f"{path} has no description"


def test_yatai_field_names_are_kept() -> None:
    spec = schema()["properties"]["spec"]["properties"]
    assert {"resources", "autoscaling", "envs", "runners", "ingress"} <= spec.keys()
    assert {"extraPodMetadata", "extraPodSpec"} <= spec.keys()
    resources = spec["resources"]["properties"]["requests"]["properties"]
    assert set(resources) == {"cpu", "memory", "gpu", "custom"}
    # Yatai's four, plus the queue-depth autoscaling fields.
    assert {"minReplicas", "maxReplicas", "metrics", "behavior"} <= set(
        spec["autoscaling"]["properties"]
    )


def test_printer_columns_cover_readiness_replicas_runners_endpoint_age() -> None:
    columns = {c["name"]: c["jsonPath"] for c in version()["additionalPrinterColumns"]}
    assert columns["Ready"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["API"] == ".status.apiReplicas"
    assert columns["Runners"] == ".status.runnersReady"
    assert columns["Endpoint"] == ".status.endpoint"
    assert columns["Age"] == ".metadata.creationTimestamp"
    status = schema()["properties"]["status"]["properties"]
    for path in columns.values():
        field = path.removeprefix(".status.")
        if path.startswith(".status.") and "[" not in field:
            assert field in status, f"printer column reads missing status field {path}"


def rules_at(path: str) -> list[str]:
    nodes = dict(walk(schema()))
    return [r["rule"] for r in nodes[path].get("x-kubernetes-validations", [])]


def test_cel_rule_for_min_below_max_replicas() -> None:
    for path in (".spec.autoscaling", ".spec.runners[].autoscaling"):
        assert any("self.minReplicas <= self.maxReplicas" in r for r in rules_at(path)), path


def test_cel_rule_for_unique_runner_names() -> None:
    assert any("exists_one" in r for r in rules_at(".spec"))


def test_cel_rules_for_object_name_length() -> None:
    assert "self.metadata.name.size() <= 63" in rules_at("")


def test_runner_names_are_bounded_for_cel_cost() -> None:
    runners = schema()["properties"]["spec"]["properties"]["runners"]
    assert runners["maxItems"] == 32
    assert runners["items"]["properties"]["name"]["maxLength"] == 63


def _openapi_validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.parent.name for p in EXAMPLES])
def test_examples_are_accepted_by_the_crd_schema(path: Path) -> None:
    _openapi_validator().validate(yaml.safe_load(path.read_text()))


def test_crd_schema_rejects_a_misspelt_quantity() -> None:
    bad = {
        "apiVersion": naming.API_VERSION,
        "kind": naming.KIND,
        "metadata": {"name": "x"},
        "spec": {"image": "i", "service": "a:b", "resources": {"limits": {"cpu": "two"}}},
    }
    with pytest.raises(jsonschema.ValidationError):
        _openapi_validator().validate(bad)


def batching_schema() -> dict[str, Any]:
    return dict(walk(schema()))[".spec.runners[].batching"]


def test_batching_fields_are_the_knob_tables_fields() -> None:
    assert list(batching_schema()["properties"]) == [k.field for k in contract.BATCHING_KNOBS]


@pytest.mark.parametrize("knob", contract.BATCHING_KNOBS, ids=lambda knob: knob.name)
def test_batching_field_descriptions_and_bounds_derive_from_the_knob_table(
    knob: contract.Knob,
) -> None:
    node = batching_schema()["properties"][knob.field]
    assert node["description"] == " ".join(spec.crd_words(knob.description).split())
    if knob.words:  # int-or-string: bounds for the number form, a pattern for the words
        assert node["x-kubernetes-int-or-string"] is True
        assert "x-kubernetes-validations" not in node  # over the API server's CEL cost budget
        assert (node["minimum"], node.get("maximum")) == (knob.minimum, knob.maximum)
        assert all(re.fullmatch(node["pattern"], word) for word in knob.words)
        assert not re.fullmatch(node["pattern"], "auto2")
        return
    assert node["type"] == "integer"
    assert node["minimum"] == knob.minimum + (1 if knob.exclusive_minimum else 0)
    assert node.get("maximum") == knob.maximum


def test_committed_crd_describes_the_queue_in_rows_and_the_latency_as_queue_wait() -> None:
    committed = yaml.safe_load(COMMITTED.read_text())
    (only,) = committed["spec"]["versions"]
    batching = only["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["runners"][
        "items"
    ]["properties"]["batching"]["properties"]
    assert batching["maxQueueSize"]["description"].startswith("Rows (not calls)")
    assert "wait in the queue" in batching["maxLatencyMs"]["description"]


def test_cel_rule_between_knobs_says_the_contracts_rule_in_crd_field_names() -> None:
    (rule,) = batching_schema()["x-kubernetes-validations"]
    assert rule["message"] == ("maxQueueSize must be 0 (unbounded) or at least maxBatchSize")
    assert rule["message"] == spec.crd_words(contract.QUEUE_HOLDS_A_BATCH)


def test_readme_knob_table_is_up_to_date() -> None:
    readme = (REPO / "README.md").read_text()
    assert crd.knob_table() in readme, (
        "README.md's batching knob table is stale: run `make crds` and commit the result"
    )
