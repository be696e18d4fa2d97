"""`kubento serve --single-process`: a whole service graph in this one process.

For debugging (breakpoints, one log): every dependency service and runner runs
in-process, unbatched, one instance per class, behind the same HTTP API server.
Served any other way, a dependency never runs in-process.
"""

from __future__ import annotations

import uvicorn

from kubento._api.app import build_app
from kubento._sdk.service import Service


def serve_single(service: Service, *, port: int, host: str) -> int:
    service.init_local()
    print(f"kubento serve: {service.name} (single process) on http://{host}:{port}", flush=True)
    for api in service.apis.values():
        print(f"  POST http://{host}:{port}{api.route}", flush=True)
    uvicorn.run(build_app(service, {}), host=host, port=port, log_level="warning")
    return 0
