"""The gRPC client of a dependency service: a `RunnerClient` that sends the request's
remaining time as each call's deadline and names the service in its errors.

A dependency service is served by a runner worker (graph.py), so the transport, the
coalescing of same-turn batchable calls and the status mapping are the runner's; only
the deadline (what is left of the caller's, hop by hop) and the words differ: a call
that runs out of time is a 504 naming the service, not a runner's 503.
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from kubento import contract
from kubento._proto import runner_pb2 as pb
from kubento._remote import codec
from kubento._remote.client import RunnerClient
from kubento._sdk.handles import deadline, request_id
from kubento.exceptions import DependencyTimeout, KubentoError


class ServiceClient(RunnerClient):
    """Calls one dependency service (all its pods) over gRPC."""

    def __init__(self, name: str, target: str, *, service: str, timeout_s: float) -> None:
        super().__init__(name, target, timeout_s=timeout_s)
        self.service = service

    def _where(self, method: str) -> str:
        return f"service {self.service!r} method {method!r}"

    async def call(
        self, method: str, args: tuple[Any, ...], request_ids: tuple[str, ...] | None = None
    ) -> Any:
        due = deadline.get()
        timeout = self.timeout_s if due is None else due - time.monotonic()
        if timeout <= 0:
            raise DependencyTimeout(
                f"{self._where(method)} was not called: the request's deadline had passed",
                {"dependency": self.service},
            )
        self._ensure_channels()
        call = self._pick()
        request = pb.CallRequest(method=method, args=[codec.encode(arg) for arg in args])
        rid = ",".join(request_ids) if request_ids is not None else request_id.get()
        metadata = ((contract.REQUEST_ID_METADATA, rid),) if rid else ()
        try:
            response = await call(request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            raise self._translate(method, exc) from None
        return codec.decode(response.result)

    def _translate(self, method: str, exc: grpc.aio.AioRpcError) -> KubentoError:
        where = self._where(method)
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DependencyTimeout(
                f"{where} did not answer within the request's deadline",
                {"dependency": self.service},
                retry_after_s=1.0,
            )
        error = super()._translate(method, exc)
        error.message = error.message.replace(f"runner {self.name!r} method {method!r}", where, 1)
        error.args = (error.message,)
        if error.status_code != 500:  # a 500's detail is the caller's request id
            error.detail = {"dependency": self.service}
        return error
