"""A test service whose answers reveal any mixing of rows between callers."""

import math
import os

import numpy as np
from pydantic import BaseModel

import kubento
from kubento.io import JSON, File, NumpyNdarray, Text


class RowTagger(kubento.Runnable):
    """Maps each row to 2*row + 1, and remembers the batch sizes it was given."""

    def __init__(self) -> None:
        self.batch_sizes: list[int] = []

    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def tag(self, rows: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(int(rows.shape[0]))
        return rows * 2 + 1

    @kubento.Runnable.method
    def stats(self) -> dict[str, int]:
        sizes = self.batch_sizes or [0]
        return {"calls": len(self.batch_sizes), "max_batch": max(sizes), "rows": sum(sizes)}

    @kubento.Runnable.method
    def whoami(self) -> int:
        return os.getpid()

    @kubento.Runnable.method
    def fail(self, message: str) -> str:
        raise RuntimeError(message)

    @kubento.Runnable.method(batchable=True, batch_dim=0)
    def refuse(self, rows: np.ndarray) -> np.ndarray:
        raise ValueError(f"refused a batch of {len(rows)} rows")


tagger = kubento.Runner(RowTagger, name="tagger", max_batch_size=64, max_latency_ms=50)
svc = kubento.Service("tagger", runners=[tagger])


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 3)), output=NumpyNdarray())
async def tag(rows: np.ndarray) -> np.ndarray:
    return await tagger.tag.async_run(rows)


@svc.api(input=NumpyNdarray(dtype="float64", shape=(-1, 3)), output=NumpyNdarray())
async def refuse(rows: np.ndarray) -> np.ndarray:
    return await tagger.refuse.async_run(rows)


@svc.api(input=JSON(), output=JSON())
async def stats(_: object) -> dict[str, int]:
    return await tagger.stats.async_run()


@svc.api(input=Text(), output=Text())
def shout(text: str) -> str:
    return text.upper()


@svc.api(input=File(), output=File())
def reverse(data: bytes) -> bytes:
    return data[::-1]


class Point(BaseModel):
    x: float
    y: float


@svc.api(input=JSON(pydantic_model=Point), output=JSON())
def norm(point: Point) -> dict[str, float]:
    return {"norm": math.hypot(point.x, point.y)}


@svc.api(input=Text(), output=Text())
async def fail(message: str) -> str:
    return await tagger.fail.async_run(message)


@svc.api(input=Text(), output=Text())
def broken(message: str) -> str:
    raise KeyError(message)
