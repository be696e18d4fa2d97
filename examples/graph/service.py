"""A diamond of services, BentoML 1.2+ style: `Graph` calls `ModelA` and `ModelB`
concurrently, and both call the shared `Embed` service.

Every service is its own process locally (`kubento serve service:Graph`) and its own
Deployment in the cluster; calls between them are gRPC with binary tensors, and the
batchable methods are batched on the callee's side. A diamond shares one `Embed`.

    curl -s -X POST localhost:3000/classify -H 'content-type: application/json' \\
        -d "{\\"x\\": [$(python3 -c 'print(",".join(["0.1"] * 256))')]}"
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Annotated

import numpy as np
from pydantic import BaseModel

import kubento
from kubento import DType, Shape

FEATURES = 256
EMBEDDING = 64
CLASSES = 10

Rows = Annotated[np.ndarray, DType("float32"), Shape((-1, FEATURES))]


def mlp(seed: int, sizes: tuple[int, ...]) -> list[np.ndarray]:
    """Seeded weights of a small MLP (a stand-in for a model loaded in __init__)."""
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)
        for a, b in itertools.pairwise(sizes)
    ]


def forward(weights: list[np.ndarray], x: np.ndarray) -> np.ndarray:
    for w in weights[:-1]:
        x = np.maximum(x @ w, 0)
    return x @ weights[-1]


@kubento.service(resources={"cpu": "1", "memory": "512Mi"})
class Embed:
    def __init__(self) -> None:
        self.weights = mlp(0, (FEATURES, 128, EMBEDDING))

    @kubento.api(batchable=True, max_batch_size=64, max_latency_ms=20)
    def encode(self, x: np.ndarray) -> np.ndarray:
        return forward(self.weights, x)


@kubento.service(resources={"cpu": "1", "memory": "256Mi"})
class ModelA:
    embed = kubento.depends(Embed)

    def __init__(self) -> None:
        self.weights = mlp(1, (EMBEDDING, 32, CLASSES))

    @kubento.api(batchable=True, max_batch_size=64, max_latency_ms=20)
    async def predict(self, x: np.ndarray) -> np.ndarray:
        return forward(self.weights, await self.embed.to_async.encode(x))


@kubento.service(resources={"cpu": "1", "memory": "256Mi"})
class ModelB:
    embed = kubento.depends(Embed)

    def __init__(self) -> None:
        self.weights = mlp(2, (EMBEDDING, 32, CLASSES))

    @kubento.api(batchable=True, max_batch_size=64, max_latency_ms=20)
    async def predict(self, x: np.ndarray) -> np.ndarray:
        return forward(self.weights, await self.embed.to_async.encode(x))


class Prediction(BaseModel):
    label: list[int]
    """The class with the highest averaged score, per row."""
    scores: list[list[float]]
    """The two models' scores averaged, per row."""


@kubento.service(resources={"cpu": "500m", "memory": "256Mi"}, traffic={"timeout": 10})
class Graph:
    model_a = kubento.depends(ModelA)
    model_b = kubento.depends(ModelB)

    @kubento.api
    async def classify(self, x: Rows) -> Prediction:
        a, b = await asyncio.gather(
            self.model_a.to_async.predict(x), self.model_b.to_async.predict(x)
        )
        scores = (a + b) / 2
        return Prediction(label=scores.argmax(axis=1).tolist(), scores=scores.tolist())


def reference(x: np.ndarray) -> np.ndarray:
    """What `classify` answers, computed in this process (for tests)."""
    embedding = forward(mlp(0, (FEATURES, 128, EMBEDDING)), x)
    a = forward(mlp(1, (EMBEDDING, 32, CLASSES)), embedding)
    b = forward(mlp(2, (EMBEDDING, 32, CLASSES)), embedding)
    return (a + b) / 2
