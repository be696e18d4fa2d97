"""In-process reference points for `make bench`, without HTTP or gRPC.

- the model limit: rows/s of the bench MLP called directly at a fixed batch size, from
  one thread or (`--lanes N`) from N threads at once, as N model lanes would;
- the dispatcher alone: many asyncio callers submitting one row each to a
  `Dispatcher` whose model runs on its model threads, as in the runner worker.

Run: `python bench/inprocess.py heavy --seconds 5` (prints one JSON object).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent / "services"))

from mlp_model import MAX_BATCH_SIZE, MAX_LATENCY_MS, MODELS, forward, make_weights

from kubento.batching import BatchingConfig, Dispatcher


def model_limit(
    widths: tuple[int, ...], batch: int, seconds: float, lanes: int = 1
) -> dict[str, float]:
    """Rows/s and per-call ms of the bare model at one batch size, `lanes` calls at once."""
    layers = make_weights(widths)
    x = np.random.default_rng(0).standard_normal((batch, widths[0]), dtype=np.float32)
    forward(layers, x)
    calls = [0] * lanes
    started = time.perf_counter()

    def lane(index: int) -> None:
        while time.perf_counter() - started < seconds:
            forward(layers, x)
            calls[index] += 1

    threads = [threading.Thread(target=lane, args=(i,)) for i in range(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {
        "batch": batch,
        "lanes": lanes,
        "rows_per_s": sum(calls) * batch / elapsed,
        "ms_per_call": 1000 * elapsed * lanes / sum(calls),
    }


async def dispatcher_throughput(
    widths: tuple[int, ...],
    callers: int,
    seconds: float,
    lane_bound: int,
    max_batch_size: int = MAX_BATCH_SIZE,
) -> dict[str, Any]:
    """Closed loop: `callers` tasks each submit one row, await it, and repeat; the
    dispatcher's lanes under "auto" (the default) up to `lane_bound`."""
    layers = make_weights(widths)
    executor = ThreadPoolExecutor(lane_bound)
    loop = asyncio.get_running_loop()
    sizes: list[int] = []

    async def model(x: np.ndarray) -> np.ndarray:
        sizes.append(len(x))
        return await loop.run_in_executor(executor, forward, layers, x)

    config = BatchingConfig(max_batch_size=max_batch_size, max_latency_ms=MAX_LATENCY_MS)
    dispatcher = Dispatcher(model, config, lane_bound=lane_bound)
    row = np.random.default_rng(0).standard_normal((1, widths[0]), dtype=np.float32)
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds

    async def caller() -> None:
        while time.monotonic() < stop_at:
            started = time.monotonic()
            await dispatcher.submit(row)
            latencies.append(time.monotonic() - started)

    started = time.monotonic()
    await asyncio.gather(*(caller() for _ in range(callers)))
    elapsed = time.monotonic() - started
    await dispatcher.close()
    executor.shutdown()
    ordered = np.sort(np.asarray(latencies))
    return {
        "callers": callers,
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": 1000 * float(ordered[len(ordered) // 2]),
        "p99_ms": 1000 * float(ordered[int(len(ordered) * 0.99)]),
        "mean_batch": float(np.mean(sizes)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=MAX_BATCH_SIZE)
    parser.add_argument("--lanes", type=int, default=1, help="model calls at once")
    parser.add_argument("--callers", type=int, default=0, help="also run the dispatcher alone")
    args = parser.parse_args()
    widths = MODELS[args.model]
    result: dict[str, Any] = {"model": args.model}
    result["limit"] = model_limit(widths, args.batch, args.seconds, args.lanes)
    if args.callers:
        result["dispatcher"] = asyncio.run(
            dispatcher_throughput(widths, args.callers, args.seconds, len(os.sched_getaffinity(0)))
        )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
