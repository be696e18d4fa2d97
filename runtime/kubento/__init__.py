"""Kubento: serve batched ML models. The SDK users import as `import kubento`."""

import importlib
from types import ModuleType

from kubento import io, models
from kubento._sdk.runnable import Runnable
from kubento._sdk.runner import Runner
from kubento._sdk.service import Service

__all__ = ["Runnable", "Runner", "Service", "io", "models"]
__version__ = "0.1.0"

# Imported on first use (`kubento.sklearn.save_model`), so the framework is only needed then.
_FRAMEWORK_MODULES = frozenset({"sklearn", "onnx", "pytorch"})


def __getattr__(name: str) -> ModuleType:
    if name in _FRAMEWORK_MODULES:
        return importlib.import_module(f"kubento.{name}")
    raise AttributeError(f"module 'kubento' has no attribute {name!r}")
