"""The examples/graph diamond served by BentoML 1.4 (`bench/graph.py --bentoml`): Graph
calls ModelA and ModelB concurrently, both call Embed. Same weights, batching and body
(`{"x": [[...256 floats...]]}`) as Kubento's. Never imported by Kubento."""

from __future__ import annotations

import asyncio
import itertools

import bentoml
import numpy as np

# examples/graph/service.py's model, restated: that module imports kubento, which this
# environment does not have.
FEATURES, EMBEDDING, CLASSES = 256, 64, 10


def mlp(seed: int, sizes: tuple[int, ...]) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)
        for a, b in itertools.pairwise(sizes)
    ]


def forward(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    for w in weights[:-1]:
        x = np.maximum(x @ w, 0)
    return x @ weights[-1]


@bentoml.service(workers=1)
class Embed:
    def __init__(self) -> None:
        self.weights = mlp(0, (FEATURES, 128, EMBEDDING))

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=20)
    def encode(self, x: np.ndarray) -> np.ndarray:
        return forward(self.weights, x.astype(np.float32))


@bentoml.service(workers=1)
class ModelA:
    embed = bentoml.depends(Embed)

    def __init__(self) -> None:
        self.weights = mlp(1, (EMBEDDING, 32, CLASSES))

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=20)
    async def predict(self, x: np.ndarray) -> np.ndarray:
        return forward(self.weights, await self.embed.to_async.encode(x))


@bentoml.service(workers=1)
class ModelB:
    embed = bentoml.depends(Embed)

    def __init__(self) -> None:
        self.weights = mlp(2, (EMBEDDING, 32, CLASSES))

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=20)
    async def predict(self, x: np.ndarray) -> np.ndarray:
        return forward(self.weights, await self.embed.to_async.encode(x))


@bentoml.service(workers=1)
class Graph:
    model_a = bentoml.depends(ModelA)
    model_b = bentoml.depends(ModelB)

    @bentoml.api
    async def classify(self, x: np.ndarray) -> dict:
        a, b = await asyncio.gather(
            self.model_a.to_async.predict(x), self.model_b.to_async.predict(x)
        )
        scores = (a + b) / 2
        return {"label": scores.argmax(axis=1).tolist(), "scores": scores.tolist()}
