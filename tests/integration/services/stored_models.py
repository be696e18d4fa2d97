"""A service over pre-built runners for models saved in $KUBENTO_HOME by the test."""

import numpy as np

import kubento
import kubento.onnx
import kubento.sklearn
from kubento.io import NumpyNdarray

clf = kubento.sklearn.get("iris-clf:latest").to_runner(max_batch_size=64, max_latency_ms=5)
affine = kubento.onnx.get("affine:latest").to_runner(max_batch_size=64, max_latency_ms=5)
svc = kubento.Service("stored-models", runners=[clf, affine])


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 4)), output=NumpyNdarray())
async def predict(rows: np.ndarray) -> np.ndarray:
    return await clf.predict.async_run(rows)


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 4)), output=NumpyNdarray())
async def predict_proba(rows: np.ndarray) -> np.ndarray:
    return await clf.predict_proba.async_run(rows)


@svc.api(input=NumpyNdarray(dtype="float32", shape=(-1, 4)), output=NumpyNdarray())
async def run(rows: np.ndarray) -> np.ndarray:
    return await affine.run.async_run(rows)
