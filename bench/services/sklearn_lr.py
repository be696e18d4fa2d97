"""The bench's logistic regression through Kubento's pre-built scikit-learn runner, loaded
from the model store (`lr_model.py kubento` saves it). One JSON row per request."""

from __future__ import annotations

import numpy as np
from lr_model import FEATURES, NAME
from mlp_model import MAX_BATCH_SIZE, MAX_LATENCY_MS

import kubento
from kubento.io import NumpyNdarray

runner = kubento.sklearn.get(f"{NAME}:latest").to_runner(
    max_batch_size=MAX_BATCH_SIZE, max_latency_ms=MAX_LATENCY_MS
)
svc = kubento.Service("sklearn", runners=[runner])


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, FEATURES)), output=NumpyNdarray())
async def predict(x: np.ndarray) -> np.ndarray:
    return await runner.predict_proba.async_run(x)
