"""A batching test service with a slow model, to overload on purpose.

Each row maps to 2*row + 1, so a caller can tell its own rows from anyone
else's; every batch sleeps 30 ms as a model call would, releasing the GIL
like numpy does.
"""

import time

import numpy as np

import kubento
from kubento.io import NumpyNdarray

BATCH_S = 0.030


class SlowTagger(kubento.Runnable):
    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def tag(self, rows: np.ndarray) -> np.ndarray:
        time.sleep(BATCH_S)
        return rows * 2 + 1


tagger = kubento.Runner(SlowTagger, name="slow", max_batch_size=8, max_latency_ms=200)
svc = kubento.Service("slow-tagger", runners=[tagger])


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 3)), output=NumpyNdarray())
async def tag(rows: np.ndarray) -> np.ndarray:
    return await tagger.tag.async_run(rows)
