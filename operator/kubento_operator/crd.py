"""Generate the BentoDeployment CustomResourceDefinition from the spec models, and the
README's table of batching knobs from contract.BATCHING_KNOBS.

Pydantic's JSON Schema is turned into a structural OpenAPI v3 schema: `$ref`s
inlined, `Optional` unions collapsed, titles dropped, and the Kubernetes
extensions (`x-kubernetes-int-or-string`, `x-kubernetes-preserve-unknown-fields`,
`x-kubernetes-validations`) kept as the models declare them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubento import contract
from kubento_operator import components, naming, spec

CRD_NAME = f"{naming.PLURAL}.{naming.GROUP}"

_KEPT_KEYS = {
    "type",
    "description",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "enum",
    "default",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
    "anyOf",
    "x-kubernetes-int-or-string",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-validations",
}


def _structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
        return _structural(merged, defs)
    if "anyOf" in node and not node.get("x-kubernetes-int-or-string"):
        options = [option for option in node["anyOf"] if option.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union {node['anyOf']} in a structural schema")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        return _structural({**options[0], **rest}, defs)
    if "patternProperties" in node:
        # Structural schemas have no patternProperties: keep the value schema and check
        # the key pattern with CEL.
        ((pattern, values),) = node["patternProperties"].items()
        rule = {
            "rule": f"self.all(key, key.matches({_cel_string(pattern)}))",
            "message": f"keys must match {pattern}",
        }
        node = {
            **{k: v for k, v in node.items() if k != "patternProperties"},
            "additionalProperties": values,
            "x-kubernetes-validations": [*node.get("x-kubernetes-validations", []), rule],
        }
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key not in _KEPT_KEYS:
            continue
        if key == "default" and value in (None, [], {}):
            continue
        if key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            if value is False:
                continue
            out[key] = _structural(value, defs)
        elif key == "description":
            out[key] = " ".join(value.split())
        else:
            out[key] = value
    if "properties" in out and "additionalProperties" in out:
        del out["additionalProperties"]
    return out


def _cel_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def openapi_schema(model: type[spec.Model]) -> dict[str, Any]:
    """Structural OpenAPI v3 schema of a spec model."""
    raw = model.model_json_schema(by_alias=True)
    return _structural(raw, raw.get("$defs", {}))


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
        "description": "Every component has its pods ready.",
    },
    {
        "name": "Components",
        "type": "string",
        "jsonPath": ".status.readyComponents",
        "description": "Ready components / all components.",
    },
    *(role.printer_column() for role in components.ROLES),
    {
        "name": "Endpoint",
        "type": "string",
        "jsonPath": ".status.endpoint",
        "description": "Where the API answers.",
    },
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
        "description": "Why the deployment is (not) ready.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]

NAME_RULES: list[dict[str, str]] = [
    {
        "rule": f"self.metadata.name.size() <= {contract.MAX_NAME_LENGTH}",
        "message": (
            f"metadata.name must be at most {contract.MAX_NAME_LENGTH} characters "
            "(it is a label value on every child)"
        ),
    },
    {
        "rule": "self.metadata.name.matches('^[a-z]')",
        "message": "metadata.name must start with a letter (it prefixes Service names)",
    },
]


def custom_resource_definition() -> dict[str, Any]:
    """The BentoDeployment CRD as a dict."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": CRD_NAME,
            "labels": {naming.LABEL_PART_OF: "kubento"},
        },
        "spec": {
            "group": naming.GROUP,
            "names": {
                "kind": naming.KIND,
                "listKind": f"{naming.KIND}List",
                "plural": naming.PLURAL,
                "singular": naming.SINGULAR,
                "shortNames": [naming.SHORT_NAME],
                "categories": ["kubento"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": naming.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "BentoDeployment serves a Kubento service: one API server "
                                "Deployment plus one Deployment per runner and per dependency "
                                "service, each with its own resources, Service and autoscaler."
                            ),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": openapi_schema(spec.BentoDeploymentSpec),
                                "status": openapi_schema(spec.BentoDeploymentStatus),
                            },
                            "x-kubernetes-validations": NAME_RULES,
                        }
                    },
                }
            ],
        },
    }


class _NoAliasDumper(yaml.SafeDumper):
    """Spell shared sub-schemas out in full: anchors make a CRD hard to read and diff."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def render_yaml() -> str:
    header = "# Generated by `make crds` from kubento_operator/spec.py; do not edit.\n"
    body = yaml.dump(
        custom_resource_definition(), Dumper=_NoAliasDumper, sort_keys=False, width=100
    )
    return header + body


def write(directory: Path) -> Path:
    """Write the CRD file into `directory` and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{CRD_NAME}.yaml"
    path.write_text(render_yaml())
    return path


README_BEGIN = "<!-- batching-knobs: generated by `make crds` from kubento/contract.py -->"
README_END = "<!-- /batching-knobs -->"


def knob_table() -> str:
    """The README's table of batching knobs (Markdown), between its markers."""
    header = ("Runner / `method_configs`", "`batching.` field", "Environment", "Default")
    rows = [
        "| " + " | ".join((*header, "Allowed", "Meaning")) + " |",
        "|---|---|---|---|---|---|",
    ]
    for knob in contract.BATCHING_KNOBS:
        if knob.default is None:
            default = "none"
        else:
            default = f"`{knob.default}`" if isinstance(knob.default, str) else f"{knob.default:,}"
        rows.append(
            f"| `{knob.name}` | `{knob.field}` | `{knob.env}` | {default} | {knob.allowed} "
            f"| {knob.description} |"
        )
    rule = f"Between knobs: {contract.QUEUE_HOLDS_A_BATCH}."
    return "\n".join([README_BEGIN, *rows, "", rule, README_END])


def with_knob_table(readme: str) -> str:
    """`readme` with the text between the knob-table markers regenerated."""
    head, found, rest = readme.partition(README_BEGIN)
    _, ended, tail = rest.partition(README_END)
    if not (found and ended):
        raise ValueError(f"the README has no {README_BEGIN} ... {README_END} section")
    return head + knob_table() + tail
