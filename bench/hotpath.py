"""The serving hot path in one process, a fixed amount of work, for instruction counts.

Wall-clock benches on a shared machine are noisy; callgrind's instruction counts are not.
Run a mode under callgrind with `--requests N` and with `--requests 0` (the setup alone);
the difference over N is the cost of one request:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python bench/hotpath.py dispatcher --requests 6400

- `dispatcher`: 64 callers submitting one row each to a `Dispatcher` in front of a trivial
  async model, on an injected clock that ticks per reading, so every batch decision (and
  so every instruction) repeats run to run.
- `serve`: 64 callers posting one JSON row each to the API server's ASGI app, whose runner
  is a `RunnerWorker` behind a real gRPC server on loopback, both in this process (the
  HTTP parser and socket are left out). gRPC's threads make counts vary a little.

With `OTEL_EXPORTER_OTLP_ENDPOINT` set, both trace (spans exported to that endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

CALLERS = 64


class TickingTimer:
    """A clock that advances 50 µs per reading; timers fire on the next loop turn."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        self.t += 50e-6
        return self.t

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.Handle:
        self.t = max(self.t, when)
        return asyncio.get_running_loop().call_soon(callback)


async def dispatcher(requests: int) -> None:
    from kubento.batching import BatchingConfig, Dispatcher

    async def model(x: np.ndarray) -> np.ndarray:
        return x * 2

    options: dict[str, Any] = {}
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        from kubento import _tracing

        tracing = _tracing.start("bench")
        assert tracing is not None
        options["tracing"] = tracing.dispatcher("bench", "predict")
    engine = Dispatcher(
        model,
        BatchingConfig(max_batch_size=64, max_latency_ms=100),
        timer=TickingTimer(),
        **options,
    )
    row = np.ones((1, 4), dtype=np.float32)
    per_caller = requests // CALLERS

    async def caller() -> None:
        for _ in range(per_caller):
            await engine.submit(row)

    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    await engine.close()


async def serve(requests: int) -> None:
    import grpc
    import httpx

    import kubento
    from kubento import contract
    from kubento._api.app import build_app
    from kubento._proto import runner_pb2 as pb
    from kubento._remote.client import CALL_METHOD
    from kubento._runner.worker import RunnerWorker
    from kubento.io import JSON

    class Double(kubento.Runnable):
        @kubento.Runnable.method(batchable=True, batch_dim=0)
        async def predict(self, x: np.ndarray) -> np.ndarray:
            return x * 2

    runner = kubento.Runner(Double, name="double", max_batch_size=64, max_latency_ms=5)
    svc = kubento.Service("hotpath", runners=[runner])

    @svc.api(input=JSON(), output=JSON())
    async def predict(rows: list[list[float]]) -> Any:
        out = await runner.predict.async_run(np.asarray(rows, dtype=np.float32))
        return out.tolist()

    worker = RunnerWorker(runner, contract.BatchingOverrides())
    server = grpc.aio.server()
    handler = grpc.method_handlers_generic_handler(
        "kubento.runner.v1.Runner",
        {
            CALL_METHOD.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(
                worker.call,
                request_deserializer=None,
                response_serializer=pb.CallResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await worker.load()
    app = build_app(svc, {"double": f"127.0.0.1:{port}"})
    per_caller = requests // CALLERS
    body = b"[[1.0, 2.0, 3.0, 4.0]]"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hotpath") as client:

            async def caller() -> None:
                for _ in range(per_caller):
                    reply = await client.post("/predict", content=body)
                    assert reply.status_code == 200, reply.text

            await client.post("/predict", content=body)  # connect before counting
            await asyncio.gather(*(caller() for _ in range(CALLERS)))
    await server.stop(None)
    await worker.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["dispatcher", "serve"])
    parser.add_argument("--requests", type=int, default=6400, help="a multiple of 64")
    args = parser.parse_args()
    asyncio.run({"dispatcher": dispatcher, "serve": serve}[args.mode](args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
