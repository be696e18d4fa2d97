"""Bench services: float32 MLPs with seeded weights, one row per JSON request.

`heavy` (512 -> 4096 -> 4096 -> 16) is compute-bound: a batch of 64 costs little
more per call than a few batches of 1, so batching is where its throughput
comes from. `light` (256 -> 1024 -> 16) is serving-overhead-bound: the model is
nearly free and the HTTP/gRPC path dominates. Both are written as a new user
would: batch size and wait only; concurrency and threads are the runtime's
defaults (`max_concurrency="auto"`, the pod's thread budget).

Serve one with `kubento serve mlp:heavy --working-dir bench/services`.
"""

from __future__ import annotations

import numpy as np
from mlp_model import HEAVY, LIGHT, MAX_BATCH_SIZE, MAX_LATENCY_MS, forward, make_weights

import kubento
from kubento.io import NumpyNdarray


class MLP(kubento.Runnable):
    SUPPORTS_CPU_MULTI_THREADING = True

    def __init__(self, widths: tuple[int, ...]) -> None:
        self.layers = make_weights(widths)

    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def predict(self, x: np.ndarray) -> np.ndarray:
        return forward(self.layers, x)


def _service(name: str, widths: tuple[int, ...]) -> kubento.Service:
    runner = kubento.Runner(
        MLP,
        name=f"{name}-mlp",
        runnable_init_params={"widths": widths},
        max_batch_size=MAX_BATCH_SIZE,
        max_latency_ms=MAX_LATENCY_MS,
    )
    svc = kubento.Service(name, runners=[runner])

    @svc.api(
        input=NumpyNdarray(dtype="float32", shape=(-1, widths[0])),
        output=NumpyNdarray(),
        route="/predict",
    )
    async def predict(x: np.ndarray) -> np.ndarray:
        return await runner.predict.async_run(x)

    return svc


heavy = _service("heavy", HEAVY)
light = _service("light", LIGHT)
