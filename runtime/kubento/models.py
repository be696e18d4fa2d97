"""The model store: save models once, then load them by tag in any process.

    with kubento.models.create("iris-clf", labels={"team": "ml"}) as model:
        (model.path / "weights.npy").write_bytes(...)
    model = kubento.models.get("iris-clf:latest")

Models live in `$KUBENTO_HOME/models/<name>/<version>/` (default `~/kubento`); framework
modules (`kubento.sklearn`, `kubento.onnx`, `kubento.pytorch`) save and load through it.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubento._models.store import (
    CorruptModel,
    Model,
    ModelExists,
    ModelInfo,
    ModelNotFound,
    ModelStore,
    ModelStoreError,
    home,
)
from kubento._models.tag import BadTag, Tag

__all__ = [
    "BadTag",
    "CorruptModel",
    "Model",
    "ModelExists",
    "ModelInfo",
    "ModelNotFound",
    "ModelStore",
    "ModelStoreError",
    "Tag",
    "create",
    "delete",
    "export_model",
    "get",
    "import_model",
    "list",
    "store",
]


def store() -> ModelStore:
    """The store at `$KUBENTO_HOME` (read on every call, so tests and CLIs can point it)."""
    return ModelStore(home())


@contextmanager
def create(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> Iterator[Model]:
    """Write a model's files into `model.path`; it is saved when the block ends without error."""
    with store().create(name, labels=labels, metadata=metadata) as model:
        yield model


def get(tag: str | Tag) -> Model:
    """`"name:version"`, `"name:latest"` or `"name"`."""
    return store().get(tag)


def list(name: str | None = None) -> builtins.list[Model]:
    return store().list(name)


def delete(tag: str | Tag) -> Model:
    return store().delete(tag)


def export_model(tag: str | Tag, path: str | Path) -> Path:
    """Write one archive holding the model; `path` may be a directory."""
    return store().export_model(tag, path)


def import_model(path: str | Path) -> Model:
    """Import an archive made by `export_model`; its digest is checked."""
    return store().import_model(path)
