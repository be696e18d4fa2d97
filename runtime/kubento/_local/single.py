"""`kubento serve --single-process`: a whole service graph in this one process.

For debugging (breakpoints, one log): every dependency service and runner runs
in-process, unbatched, one instance per class, behind the same HTTP API server.
Served any other way, a dependency never runs in-process.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from types import FrameType

import uvicorn

from kubento._api.app import build_app
from kubento._api.protocol import server_options
from kubento._sdk.service import Service


class _Server(uvicorn.Server):
    """Ctrl-C/SIGTERM stop it and `serve` exits 0, as the multi-process `serve` does."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(signum: int, frame: FrameType | None) -> None:
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def serve_single(service: Service, *, port: int, host: str) -> int:
    service.init_local()
    print(f"kubento serve: {service.name} (single process) on http://{host}:{port}", flush=True)
    for api in service.apis.values():
        print(f"  POST http://{host}:{port}{api.route}", flush=True)
    config = uvicorn.Config(build_app(service, {}), host=host, port=port, **server_options())
    _Server(config).run()
    return 0
