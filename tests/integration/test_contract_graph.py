"""The contract for service graphs: every rendered pod of examples/graph (the API server
and one per dependency service) started with exactly its rendered command, args and env.

As in test_contract.py, each pod gets its own loopback address (so all keep the
contract's ports) and the cluster DNS names in the runner map point at those addresses.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
import yaml

from kubento import contract
from tests.integration.processes import REPO_ROOT, example_module, stop, wait_http
from tests.integration.test_contract import BIN_DIR, plain_env, probe_path, rendered_pods

EXAMPLE = REPO_ROOT / "examples" / "graph"


@pytest.fixture(scope="module")
def graph() -> Iterator[tuple[str, dict[str, dict[str, Any]]]]:
    manifest = yaml.safe_load((EXAMPLE / "bentodeployment.yaml").read_text())
    manifest["metadata"].setdefault("namespace", "default")
    namespace = manifest["metadata"]["namespace"]
    pods = rendered_pods(manifest)
    api_name = f"{manifest['metadata']['name']}-api"
    # 127.0.1.x: apart from test_contract.py's addresses, should both modules run at once.
    addresses = {name: f"127.0.1.{i + 2}" for i, name in enumerate(sorted(pods))}
    dns = {f"{name}.{namespace}.svc": address for name, address in addresses.items()}
    processes: list[subprocess.Popen[bytes]] = []

    def start(name: str) -> None:
        container = pods[name]
        argv = [*container["command"], *container["args"]]
        argv[argv.index("--host") + 1] = addresses[name]
        env = {**os.environ, "PATH": f"{BIN_DIR}:{os.environ['PATH']}", **plain_env(container)}
        env[contract.ENV_RUNNER_MAP] = re.sub(
            r"dns:///([^:]+):", lambda m: f"dns:///{dns[m.group(1)]}:", env[contract.ENV_RUNNER_MAP]
        )
        processes.append(subprocess.Popen(argv, cwd=EXAMPLE, env=env))

    try:
        for name in sorted(pods):
            start(name)
        url = f"http://{addresses[api_name]}:{contract.API_PORT}"
        wait_http(url + probe_path(pods[api_name], "readinessProbe"), timeout=90, watch=processes)
        yield url, pods
    finally:
        for process in processes:
            stop(process)


def test_every_service_pod_runs_the_rendered_service_command(
    graph: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    _, pods = graph
    commands = sorted(c["args"][0] for c in pods.values())
    assert commands == ["api", "service", "service", "service"]
    for container in pods.values():
        if container["args"][0] == "service":
            env = plain_env(container)
            name = env[contract.ENV_SERVICE_NAME]
            assert container["args"][container["args"].index("--name") + 1] == name


def test_the_api_pod_answers_through_every_rendered_service(
    graph: tuple[str, dict[str, dict[str, Any]]],
) -> None:
    url, _ = graph
    x = np.random.default_rng(7).normal(size=(3, 256)).astype(np.float32)
    reply = httpx.post(url + "/classify", json={"x": x.tolist()}, timeout=30)
    assert reply.status_code == 200, reply.text
    expected = example_module("graph").reference(x)
    np.testing.assert_allclose(reply.json()["scores"], expected, rtol=1e-4, atol=1e-5)
    assert reply.json()["label"] == expected.argmax(axis=1).tolist()
