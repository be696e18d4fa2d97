"""Nothing happens at import: no metrics registered, no threads started."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, threading
import kubento, kubento.batching, kubento.io, kubento.models, kubento.contract
import kubento._api.app, kubento._runner.worker, kubento._remote.client, kubento._local.supervisor
import kubento._sdk.graph, kubento._remote.services, kubento._local.single
from prometheus_client import REGISTRY
names = sorted(m.name for m in REGISTRY.collect() if m.name.startswith("kubento"))
print(json.dumps({"metrics": names, "threads": threading.active_count()}))
"""


def test_importing_the_runtime_registers_no_metrics_and_starts_no_threads() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    ).stdout
    seen = json.loads(out)
    assert seen == {"metrics": [], "threads": 1}


def test_the_public_facade_is_the_sdk_only() -> None:
    import kubento

    assert set(kubento.__all__) == {
        "DType",
        "Runnable",
        "Runner",
        "Service",
        "Shape",
        "api",
        "depends",
        "io",
        "models",
        "service",
    }
    assert kubento.Runner.__module__ == "kubento._sdk.runner"


def test_kubento_service_stays_the_decorator_when_every_internal_module_is_imported() -> None:
    import kubento
    import kubento._local.supervisor
    import kubento._sdk.graph
    import kubento._sdk.service  # a submodule import rebinds nothing public

    assert callable(kubento.service) and kubento.service.__module__ == "kubento._sdk.classes"
    assert kubento.api.__module__ == "kubento._sdk.classes"
