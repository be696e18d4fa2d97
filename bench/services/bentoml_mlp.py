"""The same bench MLPs served by BentoML 1.4, for a side-by-side run (`bench/run.py --bentoml`).

Not part of Kubento and never imported by it: it runs in a separate virtual
environment that has BentoML installed. Request body: {"x": [[...one row...]]}.
"""

from __future__ import annotations

import bentoml
import numpy as np
from mlp_model import HEAVY, LIGHT, MAX_BATCH_SIZE, MAX_LATENCY_MS, forward, make_weights


@bentoml.service(workers=1)
class HeavyMLP:
    def __init__(self) -> None:
        self.layers = make_weights(HEAVY)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, x: np.ndarray) -> np.ndarray:
        return forward(self.layers, x.astype(np.float32))


@bentoml.service(workers=1)
class LightMLP:
    def __init__(self) -> None:
        self.layers = make_weights(LIGHT)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, x: np.ndarray) -> np.ndarray:
        return forward(self.layers, x.astype(np.float32))
