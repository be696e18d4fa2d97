"""Operator and runtime agree: the runtime starts from exactly what render() puts in pods.

Each rendered pod becomes a local process with the pod's command, args and env.
The only translation is the network: every pod gets its own loopback address
(so all of them keep the contract's ports), and the cluster DNS names in the
API's runner map point at those addresses. If the two halves drift apart
(a renamed flag, env var, port or probe path), this test fails.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from kubento import contract
from kubento_operator.render import render
from tests.integration.processes import REPO_ROOT, example_module, stop, wait_http

EXAMPLE = REPO_ROOT / "examples" / "composition"
BIN_DIR = str(Path(sys.executable).parent)


def rendered_pods(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Deployment name -> its single container, from the operator's render()."""
    pods = {}
    for obj in render(manifest):
        if obj["kind"] == "Deployment":
            (container,) = obj["spec"]["template"]["spec"]["containers"]
            pods[obj["metadata"]["name"]] = container
    return pods


def plain_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", []) if "value" in item}


def probe_path(container: dict[str, Any], kind: str) -> str | None:
    probe = container.get(kind, {})
    return probe.get("httpGet", {}).get("path")


@pytest.fixture(scope="module")
def deployment() -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    manifest = yaml.safe_load((EXAMPLE / "bentodeployment.yaml").read_text())
    manifest["metadata"].setdefault("namespace", "default")
    pods = rendered_pods(manifest)
    api_name = f"{manifest['metadata']['name']}-api"
    addresses = {name: f"127.0.0.{i + 2}" for i, name in enumerate(sorted(pods))}
    dns_to_address = {
        f"{name}.{manifest['metadata']['namespace']}.svc": address
        for name, address in addresses.items()
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> None:
        container = pods[name]
        argv = [*container["command"], *container["args"]]
        argv[argv.index("--host") + 1] = addresses[name]
        env = {**os.environ, "PATH": f"{BIN_DIR}:{os.environ['PATH']}", **plain_env(container)}
        if contract.ENV_RUNNER_MAP in env:
            env[contract.ENV_RUNNER_MAP] = re.sub(
                r"dns:///([^:]+):",
                lambda m: f"dns:///{dns_to_address[m.group(1)]}:",
                env[contract.ENV_RUNNER_MAP],
            )
        processes.append(subprocess.Popen(argv, cwd=EXAMPLE, env=env))

    try:
        for name in sorted(pods):
            if name != api_name:
                start(name)
        start(api_name)
        url = f"http://{addresses[api_name]}:{contract.API_PORT}"
        wait_http(url + probe_path(pods[api_name], "readinessProbe"), timeout=60, watch=processes)
        yield url, pods
    finally:
        for process in processes:
            stop(process)


def test_api_pod_serves_a_request_through_every_rendered_runner(
    deployment: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    url, _ = deployment
    features = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]
    reply = httpx.post(url + "/score", json=features, timeout=30)
    assert reply.status_code == 200, reply.text

    example = example_module("composition")  # the example's own code, run in-process
    example.svc.init_local()
    expected = example.scorer.score.run(
        example.embed_small.embed.run(np.asarray(features, dtype=np.float32)),
        example.embed_large.embed.run(np.asarray(features, dtype=np.float32)),
    )
    np.testing.assert_allclose(reply.json(), expected, rtol=1e-6)


def test_rendered_probes_answer_on_the_rendered_ports(
    deployment: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    url, pods = deployment
    api = next(c for name, c in pods.items() if name.endswith("-api"))
    for kind in ("livenessProbe", "readinessProbe", "startupProbe"):
        path = probe_path(api, kind)
        if path is not None:
            assert httpx.get(url + path).status_code == 200, kind
    for name, container in pods.items():
        if name.endswith("-api"):
            continue
        assert container["readinessProbe"]["grpc"]["port"] == contract.RUNNER_PORT
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {
            contract.RUNNER_PORT_NAME: contract.RUNNER_PORT,
            contract.RUNNER_METRICS_PORT_NAME: contract.RUNNER_METRICS_PORT,
        }
