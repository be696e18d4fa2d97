"""Composition: three runners, two of them the same Runnable with other init params.

`score` calls the two embedders concurrently, then feeds both embeddings to the
scorer. `embed` shows a sync API calling a runner with `.run()`.
"""

import asyncio
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, Field

import kubento
from kubento.io import JSON, NumpyNdarray


class Embedder(kubento.Runnable):
    """A seeded random projection followed by tanh."""

    def __init__(self, dim: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.projection = rng.normal(size=(4, dim)).astype(np.float32)

    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def embed(self, features: np.ndarray) -> np.ndarray:
        return np.tanh(features @ self.projection)


class Scorer(kubento.Runnable):
    """Scores a pair of embeddings: mean of the small one times mean of the large one."""

    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def score(self, small: np.ndarray, large: np.ndarray) -> np.ndarray:
        return small.mean(axis=1) * large.mean(axis=1)


embed_small = kubento.Runner(
    Embedder, name="embed-small", runnable_init_params={"dim": 8, "seed": 1}, max_batch_size=32
)
embed_large = kubento.Runner(
    Embedder, name="embed-large", runnable_init_params={"dim": 16, "seed": 2}, max_batch_size=32
)
scorer = kubento.Runner(Scorer, name="scorer", max_batch_size=64, max_latency_ms=10)

svc = kubento.Service("composition", runners=[embed_small, embed_large, scorer])

SAMPLE = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]], dtype=np.float32)


@svc.api(input=NumpyNdarray.from_sample(SAMPLE), output=NumpyNdarray(dtype="float32", shape=(-1,)))
async def score(features: np.ndarray) -> np.ndarray:
    small, large = await asyncio.gather(
        embed_small.embed.async_run(features), embed_large.embed.async_run(features)
    )
    return await scorer.score.async_run(small, large)


class EmbedRequest(BaseModel):
    # Rows of the embedders' 4 features, at least one: anything else is the caller's 400.
    features: list[Annotated[list[float], Field(min_length=4, max_length=4)]] = Field(min_length=1)
    size: Literal["small", "large"] = "small"


@svc.api(input=JSON(pydantic_model=EmbedRequest), output=JSON())
def embed(request: EmbedRequest) -> dict[str, object]:
    runner = embed_small if request.size == "small" else embed_large
    vectors = runner.embed.run(np.asarray(request.features, dtype=np.float32))
    return {"size": request.size, "embeddings": vectors}
