"""Kubento: serve batched ML models. The SDK users import as `import kubento`."""

import importlib
from types import ModuleType

from kubento import io, models
from kubento._sdk.classes import api, service
from kubento._sdk.depends import depends
from kubento._sdk.runnable import Runnable
from kubento._sdk.runner import Runner
from kubento._sdk.service import Service
from kubento._sdk.typed import DType, Shape

__all__ = [
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
]
__version__ = "0.1.0"

# Imported on first use (`kubento.sklearn.save_model`), so the framework is only needed then.
_FRAMEWORK_MODULES = frozenset({"sklearn", "onnx", "pytorch"})


def __getattr__(name: str) -> ModuleType:
    if name in _FRAMEWORK_MODULES:
        return importlib.import_module(f"kubento.{name}")
    raise AttributeError(f"module 'kubento' has no attribute {name!r}")
