"""The same logistic regression served by BentoML 1.4 from its own model store, for the
side-by-side run (`bench/run.py --bentoml`); runs in BentoML's virtual environment.
Request body: {"x": [[...one row...]]}."""

from __future__ import annotations

import bentoml
import numpy as np
from lr_model import NAME
from mlp_model import MAX_BATCH_SIZE, MAX_LATENCY_MS


@bentoml.service(workers=1)
class LogisticRegression:
    def __init__(self) -> None:
        self.model = bentoml.sklearn.load_model(f"{NAME}:latest")

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS)
    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.model.predict_proba(x)
