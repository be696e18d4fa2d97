"""kubento.pytorch in-process; skipped when torch is not installed (not in the default suite)."""

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import kubento.pytorch  # noqa: E402
from tests.models_fixtures import BATCHED, iris_rows  # noqa: E402
from tests.torch_modules import Doubler  # noqa: E402


@pytest.fixture(autouse=True)
def store_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("KUBENTO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_pytorch_runner_returns_what_the_module_returns() -> None:
    module = Doubler(torch.nn.Linear(4, 2)).eval()
    saved = kubento.pytorch.save_model("doubler", module, signatures={"forward": BATCHED})
    assert kubento.pytorch.get("doubler").tag == saved.tag
    rows = iris_rows(6).astype(np.float32)
    with torch.inference_mode():
        expected = module(torch.as_tensor(rows)).numpy()
    np.testing.assert_array_equal(
        kubento.pytorch.load_model("doubler")(torch.as_tensor(rows)).detach().numpy(), expected
    )
    runner = kubento.pytorch.get("doubler").to_runner()
    assert runner.runnable_class.SUPPORTED_RESOURCES == ("nvidia.com/gpu", "cpu")
    runner.init_local()
    np.testing.assert_array_equal(runner.forward.run(rows), expected)


def test_pytorch_refuses_what_is_not_a_module() -> None:
    with pytest.raises(TypeError, match=r"torch\.nn\.Module"):
        kubento.pytorch.save_model("doubler", object())
