"""Iris classification with an ONNX graph on onnxruntime, through the pre-built runner.

`python train.py` puts the graph into the store; `run` returns (labels, probabilities).
"""

import numpy as np

import kubento
from kubento.io import NumpyNdarray

graph = kubento.onnx.get("iris-onnx:latest").to_runner(max_batch_size=64, max_latency_ms=10)
svc = kubento.Service("iris-onnx", runners=[graph])

FEATURES = NumpyNdarray(dtype="float32", shape=(-1, 4), sample=[[5.1, 3.5, 1.4, 0.2]])


@svc.api(input=FEATURES, output=NumpyNdarray())
async def classify(features: np.ndarray) -> np.ndarray:
    labels, _ = await graph.run.async_run(features)
    return labels


@svc.api(input=FEATURES, output=NumpyNdarray())
async def probabilities(features: np.ndarray) -> np.ndarray:
    _, probabilities = await graph.run.async_run(features)
    return probabilities
