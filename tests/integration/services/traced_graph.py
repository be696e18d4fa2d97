"""A chain of service classes for the tracing tests: Entry -> Model -> Embed, each its own
process under `kubento serve`. Embed adds 1, Model doubles."""

from __future__ import annotations

from typing import Annotated

import numpy as np

import kubento
from kubento import DType, Shape

Rows = Annotated[np.ndarray, DType("float32"), Shape((-1, 4))]


@kubento.service
class Embed:
    @kubento.api(batchable=True, max_batch_size=16, max_latency_ms=5)
    def encode(self, x: np.ndarray) -> np.ndarray:
        return x + 1


@kubento.service
class Model:
    embed = kubento.depends(Embed)

    @kubento.api(batchable=True, max_batch_size=16, max_latency_ms=5)
    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.embed.encode(x) * 2


@kubento.service
class Entry:
    model = kubento.depends(Model)

    @kubento.api
    async def predict(self, x: Rows) -> np.ndarray:
        return await self.model.to_async.predict(x)
