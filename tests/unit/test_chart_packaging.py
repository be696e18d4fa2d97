"""What ships beside the chart and cannot be built or run here (no container engine, no kind):
the Dockerfiles, the e2e script and the GitHub workflows. They are linted with the same
tools `make lint` uses, and their load-bearing lines are checked against the runtime contract.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubento import contract

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile.runtime"
EXAMPLE_DOCKERFILES = sorted((REPO / "examples").glob("*/Dockerfile"))
E2E_DOCKERFILES = [REPO / "e2e" / "slow" / "Dockerfile"]
E2E_SCRIPT = REPO / "e2e" / "run.sh"
KIND_CONFIG = REPO / "e2e" / "kind.yaml"
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yaml"))
USER = f"{contract.RUNTIME_UID}:{contract.RUNTIME_UID}"


def venv_tool(name: str) -> str:
    """A linter the dev extra installs next to this interpreter."""
    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    assert found, f"{name} is missing: `make install` installs it from the dev extra"
    return found


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs of a Dockerfile, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", path.read_text())
    pairs = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions."""
    result: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            name = rest.split(" AS ")[-1].strip() if " AS " in rest else f"stage{len(result)}"
            current = result.setdefault(name, [])
        current.append((keyword, rest))
    return result


def single(stage: list[tuple[str, str]], keyword: str) -> str:
    values = [rest for kw, rest in stage if kw == keyword]
    assert len(values) == 1, f"expected one {keyword}, got {values}"
    return values[0]


# --- Dockerfiles -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [DOCKERFILE, *EXAMPLE_DOCKERFILES, *E2E_DOCKERFILES],
    ids=lambda p: str(p.relative_to(REPO)),
)
def test_dockerfile_passes_hadolint(path: Path) -> None:
    result = subprocess.run(
        [venv_tool("hadolint"), str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_runtime_image_is_the_default_target_with_kubento_as_entrypoint() -> None:
    final = list(stages(DOCKERFILE))[-1]
    assert final == "runtime"
    runtime = stages(DOCKERFILE)["runtime"]
    assert json.loads(single(runtime, "ENTRYPOINT")) == [contract.EXECUTABLE]


def test_operator_target_runs_kubento_operator() -> None:
    operator = stages(DOCKERFILE)["operator"]
    assert json.loads(single(operator, "ENTRYPOINT")) == ["kubento-operator"]


@pytest.mark.parametrize("target", ["runtime", "operator"])
def test_final_images_run_as_a_numeric_non_root_user(target: str) -> None:
    assert single(stages(DOCKERFILE)[target], "USER") == USER


@pytest.mark.parametrize("target", ["runtime", "operator"])
def test_final_images_take_only_the_virtualenv_from_the_build(target: str) -> None:
    stage = stages(DOCKERFILE)[target]
    assert [rest for kw, rest in stage if kw == "RUN"] == []
    (copy,) = [rest for kw, rest in stage if kw == "COPY"]
    assert re.fullmatch(r"--from=build-(runtime|operator) /opt/kubento /opt/kubento", copy)
    base = stages(DOCKERFILE)["base"]
    installs = " ".join(rest for kw, rest in base if kw == "RUN")
    assert not re.search(r"apt-get|gcc|build-essential|pip ", installs)


def test_python_base_image_is_a_slim_build_arg() -> None:
    args = [rest for kw, rest in instructions(DOCKERFILE) if kw == "ARG"]
    assert any(re.fullmatch(r"PYTHON_IMAGE=python:3\.\d+-slim\S*", arg) for arg in args)
    # The build stage may start from another image (e2e/images.sh: one with the machine's CA
    # for pip); by default it is the same slim image, and the final images never use it.
    assert "BUILD_IMAGE=${PYTHON_IMAGE}" in args
    froms = [rest for kw, rest in instructions(DOCKERFILE) if kw == "FROM"]
    assert all(
        f.startswith(("${PYTHON_IMAGE} ", "${BUILD_IMAGE} ", "build ", "base ")) for f in froms
    )
    assert not any(f.startswith("${BUILD_IMAGE} AS base") for f in froms)


@pytest.mark.parametrize("target", ["runtime", "operator"])
def test_final_images_carry_oci_labels(target: str) -> None:
    labels = " ".join(rest for kw, rest in stages(DOCKERFILE)[target] if kw == "LABEL")
    for key in ("title", "description", "version", "revision", "licenses", "source"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_runtime_image_exposes_the_contract_ports() -> None:
    exposed = single(stages(DOCKERFILE)["runtime"], "EXPOSE").split()
    assert exposed == [
        str(contract.API_PORT),
        str(contract.RUNNER_PORT),
        str(contract.RUNNER_METRICS_PORT),
    ]


def test_build_context_admits_only_the_package_sources() -> None:
    lines = (REPO / ".dockerignore").read_text().split()
    assert lines[lines.index("**") + 1 :][:4] == [
        "!pyproject.toml",
        "!README.md",
        "!runtime/",
        "!operator/",
    ]
    copied = [rest for kw, rest in stages(DOCKERFILE)["build"] if kw == "COPY"]
    assert copied == ["pyproject.toml README.md ./", "runtime ./runtime", "operator ./operator"]


@pytest.mark.parametrize("path", EXAMPLE_DOCKERFILES, ids=lambda p: p.parent.name)
def test_example_image_adds_its_service_under_app_on_the_runtime(path: Path) -> None:
    pairs = instructions(path)
    assert ("FROM", "${RUNTIME_IMAGE}") in pairs
    assert any(kw == "COPY" and rest.endswith(" /app/") for kw, rest in pairs)
    assert (path.parent / "service.py").is_file()
    assert "WORKDIR /app" in DOCKERFILE.read_text()


# --- e2e and workflows -------------------------------------------------------------------------


def test_e2e_script_passes_shellcheck() -> None:
    result = subprocess.run(
        [venv_tool("shellcheck"), str(E2E_SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _network_policy_agent() -> dict:
    """The container of the NetworkPolicy agent's DaemonSet (e2e/network-policies.yaml)."""
    documents = yaml.safe_load_all((REPO / "e2e" / "network-policies.yaml").read_text())
    (daemonset,) = [d for d in documents if d["kind"] == "DaemonSet"]
    (container,) = daemonset["spec"]["template"]["spec"]["containers"]
    return container


def test_network_policy_agent_script_passes_shellcheck(tmp_path: Path) -> None:
    command = _network_policy_agent()["command"]
    assert command[:2] == ["bash", "-c"]
    script = tmp_path / "agent.sh"
    script.write_text("#!/usr/bin/env bash\n" + command[2])
    result = subprocess.run(
        [venv_tool("shellcheck"), str(script)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_network_policy_agent_asks_for_capabilities_not_privilege() -> None:
    # privileged containers fail where the host lacks CAP_SYS_RESOURCE (e2e/engine.sh)
    context = _network_policy_agent()["securityContext"]
    assert context["privileged"] is False
    assert set(context["capabilities"]["add"]) == {"NET_ADMIN", "NET_RAW"}


def test_kind_nodes_are_pinned_by_digest_to_one_image() -> None:
    config = yaml.safe_load(KIND_CONFIG.read_text())
    images = {node["image"] for node in config["nodes"]}
    assert len(images) == 1
    (image,) = images
    assert re.fullmatch(r"kindest/node:v1\.\d+\.\d+@sha256:[0-9a-f]{64}", image)
    assert re.search(r"^KIND_VERSION=v\d+\.\d+\.\d+ ", E2E_SCRIPT.read_text(), re.MULTILINE)


def _actionlint() -> str | None:
    """The actionlint `make lint` builds: the Makefile pins its version and cache path."""
    version = re.search(r"^ACTIONLINT_VERSION := (\S+)$", (REPO / "Makefile").read_text(), re.M)
    assert version, "the Makefile no longer pins ACTIONLINT_VERSION"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    path = cache / "kubento" / f"actionlint-{version.group(1)}" / "actionlint"
    return str(path) if os.access(path, os.X_OK) else None


def test_workflows_pass_actionlint() -> None:
    actionlint = _actionlint()
    if actionlint is None:
        pytest.skip("actionlint is not built yet: `make lint` builds it")
    result = subprocess.run(
        [actionlint, "-shellcheck", venv_tool("shellcheck"), *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_e2e_workflow_uploads_artifacts_on_failure_and_runs_make_e2e() -> None:
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "e2e.yaml").read_text())
    steps = workflow["jobs"]["kind"]["steps"]
    assert any(step.get("run") == "make e2e" for step in steps)
    upload = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert len(upload) == 1 and upload[0]["if"] == "failure()"
