"""Service graphs for the integration tests: a diamond, a chain, and failing dependencies.

Every answer is a deterministic function of the input, so each caller's rows can be
checked exactly: Embed adds 1, ModelA doubles, ModelB negates.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Annotated

import numpy as np
from pydantic import BaseModel

import kubento
from kubento import DType, Shape

Rows = Annotated[np.ndarray, DType("float32"), Shape((-1, 4))]


@kubento.service
class Embed:
    @kubento.api(batchable=True, max_batch_size=64, max_latency_ms=2000)
    def encode(self, x: np.ndarray) -> np.ndarray:
        return x + 1


@kubento.service(name="ModelA")
class ModelA:
    embed = kubento.depends(Embed)

    @kubento.api(batchable=True, max_batch_size=64, max_latency_ms=2000)
    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.embed.encode(x) * 2


@kubento.service
class ModelB:
    embed = kubento.depends(Embed)

    @kubento.api(batchable=True, max_batch_size=64, max_latency_ms=2000)
    async def predict(self, x: np.ndarray) -> np.ndarray:
        return -(await self.embed.to_async.encode(x))


class Scores(BaseModel):
    a: list[list[float]]
    b: list[list[float]]
    tag: str


# Its tests check answers, not speed: 512 callers through two services must not meet a
# deadline a busy 2-core machine can miss (Fragile and Outside test the timeouts).
@kubento.service(traffic={"timeout": 60})
class Diamond:
    model_a = kubento.depends(ModelA)
    model_b = kubento.depends(ModelB)

    @kubento.api
    async def score(self, x: Rows, tag: str = "") -> Scores:
        a, b = await asyncio.gather(
            self.model_a.to_async.predict(x), self.model_b.to_async.predict(x)
        )
        return Scores(a=a.tolist(), b=b.tolist(), tag=tag)

    @kubento.api
    def chain(self, x: Rows) -> np.ndarray:
        """Sequential: ModelA's answer goes through ModelB."""
        return self.model_b.predict(self.model_a.predict(x))


class Flaky:
    """Behaviour switched by a file, so a test can break and heal a running process."""

    @staticmethod
    def mode() -> str:
        path = os.environ.get("GRAPH_FLAKY_FILE", "")
        return open(path).read().strip() if path and os.path.exists(path) else "ok"


@kubento.service
class Unreliable:
    @kubento.api
    def work(self, x: np.ndarray) -> np.ndarray:
        mode = Flaky.mode()
        if mode == "slow":
            time.sleep(3)
        elif mode == "raise":
            raise ValueError("the model broke")
        return x * 10


@kubento.service
class Relay:
    """A hop between the entry and Unreliable: a dependency's own dependency."""

    unreliable = kubento.depends(Unreliable)

    @kubento.api
    async def work(self, x: np.ndarray) -> np.ndarray:
        return await self.unreliable.to_async.work(x)


@kubento.service(traffic={"timeout": 1})
class Fragile:
    unreliable = kubento.depends(Unreliable)
    embed = kubento.depends(Embed)
    relay = kubento.depends(Relay)

    @kubento.api
    async def both(self, x: Rows) -> dict[str, list[list[float]]]:
        work, encode = await asyncio.gather(
            self.unreliable.to_async.work(x), self.embed.to_async.encode(x)
        )
        return {"work": work.tolist(), "encode": encode.tolist()}

    @kubento.api
    async def embed_only(self, x: Rows) -> np.ndarray:
        return await self.embed.to_async.encode(x)

    @kubento.api
    async def relayed(self, x: Rows) -> np.ndarray:
        return await self.relay.to_async.work(x)


@kubento.service(traffic={"timeout": 2})
class Outside:
    """Calls the Diamond deployment over its HTTP API, as a service outside its graph."""

    diamond = kubento.depends(url=os.environ.get("GRAPH_DIAMOND_URL", "http://127.0.0.1:9"))

    @kubento.api
    async def relay(self, x: Rows) -> list[list[float]]:
        return await self.diamond.to_async.chain(x=x)  # type: ignore[no-any-return]

    @kubento.api
    def relay_sync(self, x: Rows) -> list[list[float]]:
        return self.diamond.chain(x=x)  # type: ignore[no-any-return]


class Scale(kubento.Runnable):
    @kubento.Runnable.method(batchable=True)
    def scale(self, x: np.ndarray) -> np.ndarray:
        return x * 3


scaler = kubento.Runner(Scale, name="scaler", max_batch_size=64, max_latency_ms=2000)


@kubento.service
class Mixed:
    """A runner and a dependency service in one service class."""

    scaler = scaler
    embed = kubento.depends(Embed)

    @kubento.api
    async def both(self, x: Rows) -> np.ndarray:
        return await self.scaler.scale.async_run(await self.embed.to_async.encode(x))
