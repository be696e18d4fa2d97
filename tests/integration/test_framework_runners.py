"""Pre-built sklearn and ONNX runners served through real runner and API processes."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.processes import running_service
from tests.models_fixtures import BATCHED, affine_graph, iris_classifier, iris_rows

pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")

import kubento.onnx
import kubento.sklearn


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("models") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KUBENTO_HOME", str(home))
        kubento.sklearn.save_model(
            "iris-clf", iris_classifier(), signatures={"predict": BATCHED, "predict_proba": BATCHED}
        )
        kubento.onnx.save_model("affine", affine_graph(), signatures={"run": BATCHED})
        with running_service(
            "stored_models:svc", ["iris-clf", "affine"], env={"KUBENTO_HOME": str(home)}
        ) as (url, _):
            yield url, home


@pytest.fixture
def in_store(served: tuple[str, Path], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("KUBENTO_HOME", str(served[1]))
    return served[0]


@pytest.mark.parametrize("method", ["predict", "predict_proba"])
def test_served_sklearn_answers_exactly_what_the_estimator_answers(
    in_store: str, method: str
) -> None:
    clf = kubento.sklearn.load_model("iris-clf")
    for count in (1, 7, 40):
        rows = iris_rows(count, seed=count)
        reply = httpx.post(f"{in_store}/{method}", json=rows.tolist(), timeout=30)
        assert reply.status_code == 200, reply.text
        expected = getattr(clf, method)(rows)
        served = np.asarray(reply.json(), dtype=expected.dtype)
        np.testing.assert_array_equal(served, expected)


def test_served_onnx_answers_exactly_what_onnxruntime_answers(in_store: str) -> None:
    session = kubento.onnx.load_model("affine")
    for count in (1, 9):
        rows = iris_rows(count, seed=count).astype(np.float32)
        reply = httpx.post(f"{in_store}/run", json=rows.tolist(), timeout=30)
        assert reply.status_code == 200, reply.text
        (expected,) = session.run(None, {"x": rows})
        np.testing.assert_array_equal(np.asarray(reply.json(), dtype=np.float32), expected)
