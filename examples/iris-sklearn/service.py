"""Iris classification through the pre-built scikit-learn runner.

The model comes from the store: `python train.py` saves it; in a pod it is baked into the
image (Dockerfile) or pulled at start (`spec.models`, see README). `IRIS_MODEL`
pins a version; by default the newest `iris-clf` is served.
"""

import os

import numpy as np

import kubento
from kubento.io import NumpyNdarray

model = kubento.sklearn.get(os.environ.get("IRIS_MODEL", "iris-clf:latest"))
classifier = model.to_runner(max_batch_size=64, max_latency_ms=10)
svc = kubento.Service("iris", runners=[classifier])

SAMPLE = np.array([[5.1, 3.5, 1.4, 0.2]])


@svc.api(input=NumpyNdarray.from_sample(SAMPLE), output=NumpyNdarray())
async def classify(features: np.ndarray) -> np.ndarray:
    return await classifier.predict.async_run(features)


@svc.api(input=NumpyNdarray.from_sample(SAMPLE), output=NumpyNdarray())
async def probabilities(features: np.ndarray) -> np.ndarray:
    return await classifier.predict_proba.async_run(features)
