"""The gRPC client of a dependency service: a `RunnerClient` whose errors name the service.

A dependency service is served by a runner worker (graph.py), so the transport, the
request's remaining time as each call's deadline, the coalescing of same-turn batchable
calls and the status mapping are the runner's; only the words differ, and 503/504
answers say which dependency (`detail.dependency`).
"""

from __future__ import annotations

from typing import Any

from kubento._remote.client import RunnerClient
from kubento._tracing import Carrier
from kubento.exceptions import KubentoError


class ServiceClient(RunnerClient):
    """Calls one dependency service (all its pods) over gRPC."""

    def __init__(self, name: str, target: str, *, service: str, timeout_s: float) -> None:
        super().__init__(name, target, timeout_s=timeout_s)
        self.service = service

    async def call(
        self,
        method: str,
        args: tuple[Any, ...],
        request_ids: tuple[str, ...] | None = None,
        traces: tuple[Carrier, ...] = (),
    ) -> Any:
        try:
            return await super().call(method, args, request_ids, traces)
        except KubentoError as error:
            where = f"service {self.service!r} method {method!r}"
            error.message = error.message.replace(
                f"runner {self.name!r} method {method!r}", where, 1
            )
            error.args = (error.message,)
            if error.status_code != 500:  # a 500's detail is the caller's request id
                error.detail = {"dependency": self.service}
            raise
