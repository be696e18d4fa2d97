"""CRDs of other projects, committed under tests/fixtures/ with their version and origin, to
check the objects Kubento renders for them (KEDA's ScaledObject, the Prometheus Operator's
monitors) against their real schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KEDA_SCALED_OBJECTS = FIXTURES / "keda" / "keda.sh_scaledobjects.yaml"
POD_MONITORS = FIXTURES / "prometheus-operator" / "monitoring.coreos.com_podmonitors.yaml"
SERVICE_MONITORS = FIXTURES / "prometheus-operator" / "monitoring.coreos.com_servicemonitors.yaml"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD schema that, like the API server's strict field validation, refuses unknown
    fields (structural schemas otherwise let JSON Schema accept them)."""
    out = dict(schema)
    if "properties" in out:
        out["properties"] = {key: strict(value) for key, value in out["properties"].items()}
        if "additionalProperties" not in out and not out.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    for key in ("items", "additionalProperties"):
        if isinstance(out.get(key), dict):
            out[key] = strict(out[key])
    return out


def schemas(*paths: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> strict openAPIV3Schema of every served version in `paths`."""
    found = {}
    for path in paths:
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            if version["served"]:
                key = (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])
                found[key] = strict(version["schema"]["openAPIV3Schema"])
    return found
