"""Quickstart: a numpy classifier behind one batchable runner.

kubento serve service:svc --working-dir examples/quickstart
"""

import numpy as np

import kubento
from kubento.io import NumpyNdarray


class LinearClassifier(kubento.Runnable):
    """Softmax regression over 4 features and 3 classes, with seeded weights."""

    SUPPORTED_RESOURCES = ("cpu",)
    SUPPORTS_CPU_MULTI_THREADING = False

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.weights = rng.normal(size=(4, 3)).astype(np.float32)
        self.bias = rng.normal(size=3).astype(np.float32)

    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def predict(self, features: np.ndarray) -> np.ndarray:
        logits = features @ self.weights + self.bias
        return np.argmax(logits, axis=1).astype(np.int64)


classifier = kubento.Runner(
    LinearClassifier, name="classifier", max_batch_size=64, max_latency_ms=20
)
svc = kubento.Service("quickstart", runners=[classifier])


@svc.api(
    input=NumpyNdarray.from_sample(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)),
    output=NumpyNdarray(dtype="int64", shape=(-1,)),
)
async def classify(features: np.ndarray) -> np.ndarray:
    return await classifier.predict.async_run(features)
