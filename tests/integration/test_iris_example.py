"""examples/iris-sklearn: train and save, export, import where an image would, serve through
real runner and API processes, and print a BentoDeployment that fetches the model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import kubernetes_validate
import numpy as np
import pytest
import yaml

from kubento import contract
from tests.integration.processes import running_service

pytest.importorskip("sklearn")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "iris-sklearn"
KUBERNETES_VERSION = "1.33"


def run(argv: list[str], home: Path) -> str:
    env = {**os.environ, contract.ENV_HOME: str(home)}
    return subprocess.run(
        argv, cwd=EXAMPLE, env=env, capture_output=True, text=True, check=True, timeout=120
    ).stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """(store the model was trained into, the exported archive, what train.py printed)."""
    work = tmp_path_factory.mktemp("iris")
    archive = work / "iris-clf.tar"
    printed = run(
        [
            sys.executable,
            "train.py",
            "--export",
            str(archive),
            "--source",
            "https://models.example.com/iris-clf.tar",
        ],
        work / "trained",
    )
    return work / "trained", archive, printed


@pytest.fixture(scope="module")
def served(trained: tuple[Path, Path, str]) -> Iterator[str]:
    """Served from a second store the archive was imported into, as the Dockerfile does."""
    _, archive, _ = trained
    baked = archive.parent / "baked"
    run([sys.executable, "-m", "kubento", "models", "import", str(archive)], baked)
    env = {contract.ENV_HOME: str(baked)}
    with running_service("service:svc", ["iris-clf"], env=env, working_dir=str(EXAMPLE)) as (
        url,
        _,
    ):
        yield url


@pytest.mark.parametrize(
    ("api", "method"), [("classify", "predict"), ("probabilities", "predict_proba")]
)
def test_the_served_model_answers_exactly_what_the_estimator_answers(
    served: str,
    trained: tuple[Path, Path, str],
    api: str,
    method: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import kubento.sklearn

    monkeypatch.setenv(contract.ENV_HOME, str(trained[0]))
    estimator = kubento.sklearn.load_model("iris-clf:latest")
    rows = np.random.default_rng(3).uniform(0.1, 7.0, size=(25, 4)).round(2)
    reply = httpx.post(f"{served}/{api}", json=rows.tolist(), timeout=30)
    assert reply.status_code == 200, reply.text
    np.testing.assert_allclose(np.asarray(reply.json()), getattr(estimator, method)(rows))


def test_train_prints_a_valid_deployment_that_fetches_the_exported_archive(
    trained: tuple[Path, Path, str],
) -> None:
    from kubento_operator import spec
    from kubento_operator.render import render

    _, archive, printed = trained
    manifest = yaml.safe_load(printed.split("---\n", 1)[1])
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    (runner,) = manifest["spec"]["runners"]
    assert runner["models"][0]["sha256"] == digest
    assert manifest["spec"]["models"] == runner["models"]
    children = render(spec.parse(manifest))
    for child in children:
        kubernetes_validate.validate(child, KUBERNETES_VERSION, strict=True)
    pulls = [
        init["args"]
        for child in children
        if child["kind"] == "Deployment"
        for init in child["spec"]["template"]["spec"].get("initContainers", [])
    ]
    tag = runner["models"][0]["tag"]
    assert (
        pulls == [contract.models_pull_command(tag, runner["models"][0]["source"], digest)[1:]] * 2
    )


def test_the_onnx_example_answers_exactly_what_onnxruntime_answers(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    import onnxruntime

    example = EXAMPLE.parent / "iris-onnx"
    home = tmp_path / "home"
    subprocess.run(
        [sys.executable, "train.py"],
        cwd=example,
        env={**os.environ, contract.ENV_HOME: str(home)},
        check=True,
        capture_output=True,
        timeout=120,
    )
    (graph,) = home.glob("models/iris-onnx/*/model.onnx")
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    rows = np.random.default_rng(5).uniform(0.1, 7.0, size=(17, 4)).astype(np.float32)
    labels, probabilities = session.run(None, {session.get_inputs()[0].name: rows})
    env = {contract.ENV_HOME: str(home)}
    with running_service("service:svc", ["iris-onnx"], env=env, working_dir=str(example)) as (
        url,
        _,
    ):
        for api, expected in (("classify", labels), ("probabilities", probabilities)):
            reply = httpx.post(f"{url}/{api}", json=rows.tolist(), timeout=30)
            assert reply.status_code == 200, reply.text
            np.testing.assert_allclose(np.asarray(reply.json()), expected, rtol=1e-6)
