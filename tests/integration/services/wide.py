"""A runner of wide rows (1 MiB each), so a request near the body limit is a real tensor."""

import numpy as np

import kubento
from kubento.io import NumpyNdarray

WIDTH = 256 * 1024  # float32: 1 MiB a row


class RowMeans(kubento.Runnable):
    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def mean(self, rows: np.ndarray) -> np.ndarray:
        return rows.mean(axis=1, keepdims=True)


wide = kubento.Runner(RowMeans, name="wide", max_batch_size=64, max_latency_ms=20)
svc = kubento.Service("wide", runners=[wide])


@svc.api(input=NumpyNdarray(dtype="float32", shape=(-1, WIDTH)), output=NumpyNdarray())
async def mean(rows: np.ndarray) -> np.ndarray:
    return await wide.mean.async_run(rows)
