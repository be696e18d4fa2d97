"""A batching service for the tracing tests whose model a caller can hold busy.

Each row maps to 2*row + 1; a batch sleeps as many seconds as the largest first value of
its rows, so a test can keep the model busy and queue other callers behind it (they then
share the next batch: one batch runs at a time, and up to 8 rows go in one).
"""

import time

import numpy as np

import kubento
from kubento.io import NumpyNdarray


class Sleepy(kubento.Runnable):
    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def tag(self, rows: np.ndarray) -> np.ndarray:
        time.sleep(float(rows[:, 0].max()))
        return rows * 2 + 1


sleepy = kubento.Runner(Sleepy, name="sleepy", max_batch_size=8, max_latency_ms=5)
svc = kubento.Service("traced", runners=[sleepy])


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 3)), output=NumpyNdarray())
async def tag(rows: np.ndarray) -> np.ndarray:
    return await sleepy.tag.async_run(rows)
