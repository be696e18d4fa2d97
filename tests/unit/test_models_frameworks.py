"""kubento.sklearn and kubento.onnx in-process: save, get, load, to_runner."""

from pathlib import Path

import numpy as np
import pytest

from kubento import models
from tests.models_fixtures import BATCHED, affine_graph, iris_classifier, iris_rows

pytest.importorskip("sklearn")
pytest.importorskip("onnxruntime")

import kubento.onnx
import kubento.sklearn


@pytest.fixture(autouse=True)
def store_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_sklearn_save_get_load_returns_an_estimator_that_answers_the_same() -> None:
    clf = iris_classifier()
    saved = kubento.sklearn.save_model(
        "iris-clf", clf, signatures={"predict": BATCHED, "predict_proba": BATCHED}
    )
    got = kubento.sklearn.get("iris-clf:latest")
    assert got.tag == saved.tag
    assert got.info.framework == "sklearn"
    assert got.info.signatures == {"predict": BATCHED, "predict_proba": BATCHED}
    assert "scikit-learn" in got.info.framework_versions
    rows = iris_rows(16)
    loaded = kubento.sklearn.load_model("iris-clf")
    np.testing.assert_array_equal(loaded.predict_proba(rows), clf.predict_proba(rows))


def test_sklearn_to_runner_runs_each_signature_as_the_estimator_does() -> None:
    clf = iris_classifier()
    kubento.sklearn.save_model(
        "iris-clf", clf, signatures={"predict": BATCHED, "predict_proba": {"batchable": False}}
    )
    runner = kubento.sklearn.get("iris-clf").to_runner()
    assert runner.name == "iris-clf"
    assert runner.runnable_class.SUPPORTED_RESOURCES == ("cpu",)
    assert runner.runnable_class.SUPPORTS_CPU_MULTI_THREADING is True
    assert [m.tag.name for m in runner.models] == ["iris-clf"]
    runner.init_local()
    rows = iris_rows(8)
    np.testing.assert_array_equal(runner.predict.run(rows), clf.predict(rows))
    np.testing.assert_array_equal(runner.predict_proba.run(rows), clf.predict_proba(rows))


def test_a_signature_the_estimator_lacks_is_refused_naming_it() -> None:
    with pytest.raises(ValueError, match="'decision_tree'"):
        kubento.sklearn.save_model("clf", iris_classifier(), signatures={"decision_tree": {}})
    with pytest.raises(ValueError, match="batchsize"):
        kubento.sklearn.save_model(
            "clf", iris_classifier(), signatures={"predict": {"batchsize": 1}}
        )
    assert models.list() == []


def test_runners_of_two_models_get_distinct_names() -> None:
    kubento.sklearn.save_model("clf-a", iris_classifier())
    kubento.sklearn.save_model("clf.b", iris_classifier())
    a, b = kubento.sklearn.get("clf-a").to_runner(), kubento.sklearn.get("clf.b").to_runner()
    assert a.name != b.name
    assert a.runnable_class is not b.runnable_class
    assert kubento.sklearn.get("clf-a").to_runner(name="custom").name == "custom"


def test_loading_with_the_wrong_framework_names_the_model_and_its_framework() -> None:
    saved = kubento.sklearn.save_model("clf", iris_classifier())
    with pytest.raises(models.ModelStoreError, match=f"{saved.tag}.*kubento.sklearn"):
        kubento.onnx.load_model("clf")


def test_onnx_save_records_the_graph_inputs_and_outputs() -> None:
    kubento.onnx.save_model("affine", affine_graph(), signatures={"run": BATCHED})
    run = kubento.onnx.get("affine").info.signatures["run"]
    assert run["batchable"] is True and run["batch_dim"] == 0
    assert run["inputs"] == [{"name": "x", "type": "tensor(float)", "shape": ["batch", 4]}]
    assert run["outputs"] == [{"name": "y", "type": "tensor(float)", "shape": ["batch", 3]}]


def test_onnx_accepts_a_model_proto_its_bytes_or_a_path(tmp_path: Path) -> None:
    graph = affine_graph()
    (tmp_path / "a.onnx").write_bytes(graph.SerializeToString())
    digests = {
        kubento.onnx.save_model(f"affine-{i}", source).info.digest
        for i, source in enumerate([graph, graph.SerializeToString(), tmp_path / "a.onnx"])
    }
    assert len(digests) == 1
    with pytest.raises(TypeError, match=r"onnx\.ModelProto"):
        kubento.onnx.save_model("affine", 42)


def test_onnx_runner_returns_what_onnxruntime_returns() -> None:
    import onnxruntime

    graph = affine_graph(outputs=2)
    kubento.onnx.save_model("affine2", graph, signatures={"run": BATCHED})
    rows = iris_rows(5).astype(np.float32)
    session = onnxruntime.InferenceSession(
        graph.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    expected = session.run(None, {"x": rows})
    runner = kubento.onnx.get("affine2").to_runner()
    assert runner.runnable_class.SUPPORTED_RESOURCES == ("nvidia.com/gpu", "cpu")
    runner.init_local()
    y, p = runner.run.run(rows)
    np.testing.assert_array_equal(y, expected[0])
    np.testing.assert_array_equal(p, expected[1])
    with pytest.raises(TypeError, match="takes 1 inputs"):
        runner.run.run(rows, rows)


def test_onnx_has_only_the_run_signature() -> None:
    with pytest.raises(ValueError, match="only signature is 'run'"):
        kubento.onnx.save_model("affine", affine_graph(), signatures={"predict": {}})
