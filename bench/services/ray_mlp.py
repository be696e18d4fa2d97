"""The bench MLPs served by Ray Serve 2.60, for the side-by-side run (`bench/run.py`).

Not part of Kubento and never imported by it: it runs in Ray's own virtual
environment (`bench/envs.py ray`). One replica, `@serve.batch` with the same batch
size and wait as Kubento's and BentoML's, the same JSON body as Kubento's (`[[...one
row...]]`). `max_ongoing_requests` is raised from Ray's default of 5 to twice the
batch size, as Ray's batching guide advises, or no batch could grow past 5 rows.
GET /readyz answers once the app is deployed; GET /metrics counts batches and rows.

Run: `python ray_mlp.py heavy --port 8000` (stops on SIGINT/SIGTERM).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading

import numpy as np
import ray
from mlp_model import MAX_BATCH_SIZE, MAX_LATENCY_MS, MODELS, forward, make_weights
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response


@serve.deployment(num_replicas=1, max_ongoing_requests=2 * MAX_BATCH_SIZE)
class MLP:
    def __init__(self, widths: tuple[int, ...]) -> None:
        self.layers = make_weights(widths)
        self.batches = 0
        self.rows = 0

    @serve.batch(max_batch_size=MAX_BATCH_SIZE, batch_wait_timeout_s=MAX_LATENCY_MS / 1000)
    async def predict(self, xs: list[np.ndarray]) -> list[list[list[float]]]:
        sizes = [len(x) for x in xs]
        out = forward(self.layers, np.concatenate(xs))
        self.batches += 1
        self.rows += sum(sizes)
        return [part.tolist() for part in np.split(out, np.cumsum(sizes)[:-1])]

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET":
            if request.url.path.endswith("/metrics"):
                return PlainTextResponse(
                    f"ray_bench_batch_size_count{{}} {self.batches}\n"
                    f"ray_bench_batch_size_sum{{}} {self.rows}\n"
                )
            return PlainTextResponse("ready")
        x = np.asarray(await request.json(), dtype=np.float32)
        return JSONResponse(await self.predict(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=sorted(MODELS))
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    ray.init(include_dashboard=False, num_cpus=os.cpu_count(), log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": args.port})
    serve.run(MLP.bind(MODELS[args.model]), route_prefix="/")
    stop.wait()
    serve.shutdown()
    ray.shutdown()


if __name__ == "__main__":
    main()
