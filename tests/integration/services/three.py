"""Three cheap numpy runners with a tight batching budget: a pipeline then a fan-out."""

import asyncio

import numpy as np

import kubento
from kubento.io import NumpyNdarray


class Affine(kubento.Runnable):
    def __init__(self, scale: float, shift: float) -> None:
        self.scale = scale
        self.shift = shift

    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def apply(self, rows: np.ndarray) -> np.ndarray:
        return rows * self.scale + self.shift


def affine(name: str, scale: float, shift: float) -> kubento.Runner:
    return kubento.Runner(
        Affine,
        name=name,
        runnable_init_params={"scale": scale, "shift": shift},
        max_batch_size=32,
        max_latency_ms=20,
    )


first, left, right = affine("first", 2, 1), affine("left", 3, 0), affine("right", -1, 5)
svc = kubento.Service("three", runners=[first, left, right])


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 4)), output=NumpyNdarray())
async def predict(rows: np.ndarray) -> np.ndarray:
    x = await first.apply.async_run(rows)
    a, b = await asyncio.gather(left.apply.async_run(x), right.apply.async_run(x))
    return a + b  # (2r + 1) * 3 + 5 - (2r + 1) = 4r + 7
