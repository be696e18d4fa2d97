"""Kubento: serve batched ML models. The SDK users import as `import kubento`."""

from kubento import io
from kubento.runnable import Runnable
from kubento.runner import Runner
from kubento.service import Service

__all__ = ["Runnable", "Runner", "Service", "io"]
__version__ = "0.1.0"
