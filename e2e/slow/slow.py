"""The quickstart's classifier made as slow as a model on a busy accelerator, for the e2e's
queue autoscaling step (e2e/run.sh): every batch waits 50 ms on its model thread before it
runs, so concurrent callers' rows wait in the batching queue while the pod's CPU stays
idle, the load that CPU autoscaling does not see. Same weights, same answers.

Built FROM the quickstart image (e2e/slow/Dockerfile), served as `slow:svc`.
"""

import time

import numpy as np
from service import LinearClassifier

import kubento
from kubento.io import NumpyNdarray

BATCH_SECONDS = 0.05


class SlowClassifier(LinearClassifier):
    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def predict(self, features: np.ndarray) -> np.ndarray:
        time.sleep(BATCH_SECONDS)
        return super().predict(features)


classifier = kubento.Runner(SlowClassifier, name="classifier")
svc = kubento.Service("slow", runners=[classifier])


@svc.api(
    input=NumpyNdarray.from_sample(np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)),
    output=NumpyNdarray(dtype="int64", shape=(-1,)),
)
async def classify(features: np.ndarray) -> np.ndarray:
    return await classifier.predict.async_run(features)
