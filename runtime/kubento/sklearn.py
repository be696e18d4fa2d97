"""Pre-built runners for scikit-learn estimators (`pip install 'kubento[sklearn]'`).

    model = kubento.sklearn.save_model(
        "iris-clf", clf, signatures={"predict": {"batchable": True, "batch_dim": 0}}
    )
    runner = kubento.sklearn.get("iris-clf:latest").to_runner()

Stored as `saved_model.joblib` (joblib's pickle). Loading it unpickles, which runs code
the file names: that is a trust decision about your own store. Load only models you
saved or imported from an archive you trust (`kubento models pull` checks the archive's
sha256 before importing); nothing is ever unpickled from the network by a runner.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubento._models import framework
from kubento._models.store import Model, ModelStore, home
from kubento._models.tag import Tag

FRAMEWORK = "sklearn"
MODEL_FILE = "saved_model.joblib"
DEFAULT_SIGNATURES: dict[str, dict[str, Any]] = {"predict": {"batchable": False}}

__all__ = ["get", "load_model", "runnable_class", "save_model"]


def save_model(
    name: str,
    model: Any,
    *,
    signatures: Mapping[str, Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Model:
    """Save any estimator; `signatures` maps its methods (predict, predict_proba, transform,
    ...) to `{"batchable": bool, "batch_dim": int}` (default: predict, not batchable)."""
    import joblib

    checked = framework.signatures_of(model, signatures, DEFAULT_SIGNATURES, FRAMEWORK)
    with ModelStore(home()).create(
        name,
        framework=FRAMEWORK,
        signatures=checked,
        labels=labels,
        metadata=metadata,
        options={"model_class": f"{type(model).__module__}.{type(model).__qualname__}"},
        framework_versions=framework.versions_of("scikit-learn", "joblib"),
    ) as saved:
        joblib.dump(model, saved.path / MODEL_FILE)
    return saved


def get(tag: str | Tag) -> Model:
    model = ModelStore(home()).get(tag)
    framework.require_framework(model, FRAMEWORK)
    return model


def load_model(tag: str | Tag | Model) -> Any:
    """The estimator, unpickled from the store (see the trust note above)."""
    import joblib

    model = tag if isinstance(tag, Model) else get(tag)
    framework.require_framework(model, FRAMEWORK)
    return joblib.load(model.path / MODEL_FILE)


def _call(estimator: Any, method: str, args: tuple[Any, ...]) -> Any:
    return getattr(estimator, method)(*args)


def runnable_class(model: Model) -> type:
    """Estimators run on CPU; BLAS/OpenMP inside them use the worker's thread budget."""
    return framework.build_runnable(
        model,
        framework=FRAMEWORK,
        load=load_model,
        call=_call,
        supported_resources=("cpu",),
        multi_threading=True,
    )
