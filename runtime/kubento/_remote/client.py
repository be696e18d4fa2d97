"""The API server's gRPC client for runner workers.

With a `dns:///` target (a headless Service) a channel resolves every runner
pod and balances calls over them round robin. A runner pod may run several
worker processes on one port (SO_REUSEPORT), and the kernel hands each
*connection* to one of them, so the client keeps a few channels with their own
connections and rotates calls over those too.

When a runner pod goes away (a rollout, a scale-down) its connections get a
GOAWAY and the channels re-resolve the Service; until one has connected to a
pod that is still there, calls wait for it, up to `connect_wait_s` after the
first one found no connection, rather than failing at once (a runner that stays
down still gets fast 503s after that). A call is not sent before a connection is
up, so no runner ever sees it twice: nothing is retried after a runner answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import itertools
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from kubento import _tracing, contract
from kubento._memory import OFFLOAD_BYTES
from kubento._proto import runner_pb2 as pb
from kubento._remote import codec
from kubento._remote.coalescing import Coalescer
from kubento._sdk.handles import call_end, deadline, finish_within, request_id
from kubento._tracing import Carrier
from kubento.batching import NeverFits
from kubento.exceptions import (
    BadInput,
    GatewayTimeout,
    KubentoError,
    RunnerError,
    RunnerOverloaded,
    RunnerUnavailable,
)

if TYPE_CHECKING:
    from kubento._sdk.runner import Runner
    from kubento._tracing.spans import Tracing

CALL_METHOD = "/kubento.runner.v1.Runner/Call"
MAX_MESSAGE_BYTES = 256 * 1024 * 1024
DEFAULT_TIMEOUT_S = 60.0
CONNECTIONS_PER_RUNNER = 8
RETRY_AFTER_METADATA = "retry-after-s"
CLOSE_GRACE_S = 10.0
CONNECT_WAIT_S = 3.0
DNS_MIN_RESOLUTION_INTERVAL_MS = 1000

CHANNEL_OPTIONS = [
    ("grpc.lb_policy_name", "round_robin"),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.enable_retries", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # gRPC re-resolves a dns:/// target when a connection goes away, but by default
    # at most every 30 s: a channel that resolved shortly before a runner pod was
    # replaced would keep only the gone pod's address for up to that long.
    ("grpc.dns_min_time_between_resolutions_ms", DNS_MIN_RESOLUTION_INTERVAL_MS),
    # Each channel owns its connections, rather than sharing them process-wide.
    ("grpc.use_local_subchannel_pool", 1),
]


class RunnerClient:
    """Calls one runner (all its pods) over gRPC; maps gRPC statuses to Kubento errors."""

    def __init__(
        self,
        name: str,
        target: str,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        connections: int = CONNECTIONS_PER_RUNNER,
        connect_wait_s: float = CONNECT_WAIT_S,
    ) -> None:
        self.name = name
        self.target = target
        self.timeout_s = timeout_s
        self.connections = connections
        self.connect_wait_s = connect_wait_s
        self._channels: list[grpc.aio.Channel] = []
        self._calls: list[Any] = []
        self._health: list[health_pb2_grpc.HealthStub] = []
        self._next = itertools.count()
        self._any_ready: asyncio.Future[None] | None = None
        self._down_since: float | None = None  # when a call first found no connection up

    def _ensure_channels(self) -> None:
        if self._channels:
            return
        for _ in range(self.connections):
            channel = grpc.aio.insecure_channel(self.target, options=CHANNEL_OPTIONS)
            self._channels.append(channel)
            self._calls.append(
                channel.unary_unary(
                    CALL_METHOD,
                    request_serializer=None,  # sent as serialized by `_request`
                    response_deserializer=pb.CallResponse.FromString,
                )
            )
            self._health.append(health_pb2_grpc.HealthStub(channel))

    def _ready_index(self, start: int) -> int | None:
        """The first channel from `start` in rotation that has a connection up, if any."""
        for offset in range(len(self._channels)):
            index = (start + offset) % len(self._channels)
            state = self._channels[index].get_state(try_to_connect=True)
            if state == grpc.ChannelConnectivity.READY:
                self._down_since = None
                return index
        return None

    async def _pick(self, wait_s: float) -> int:
        """The next channel in rotation that is up.

        When none is, wait for one to connect (nothing has been sent yet, so waiting
        is always safe), until `wait_s` after the first call that found none up:
        a replaced pod costs a short wait, a runner that stays down fast 503s.
        """
        start = next(self._next)
        index = self._ready_index(start)
        if index is None:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
            remaining = self._down_since + wait_s - now
            if remaining > 0:
                if self._any_ready is None or self._any_ready.done():
                    # One watcher for every waiting call, however many there are.
                    self._any_ready = asyncio.ensure_future(self._wait_any_ready())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._any_ready), remaining)
                index = self._ready_index(start)
        return start % len(self._channels) if index is None else index

    async def _wait_any_ready(self) -> None:
        waiters = [asyncio.ensure_future(channel.channel_ready()) for channel in self._channels]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)

    async def call(
        self,
        method: str,
        args: tuple[Any, ...],
        request_ids: tuple[str, ...] | None = None,
        traces: tuple[Carrier, ...] = (),
    ) -> Any:
        """One gRPC call; `request_ids` (default: the current request's) are its callers.

        Its metadata carries one id: the caller's own, or for a call shared by several
        callers a fresh call id that each caller's error log line names, so no caller's id
        can grow or break a call it shares. Its deadline is what the request has left to its
        end; the runner is given what it has left to its `deadline` to finish in.
        The callers' trace contexts (`traces`, when tracing) travel in the payload, one each.
        """
        self._ensure_channels()
        ids = request_ids if request_ids is not None else (request_id.get(),)
        rid = ids[0] if len(ids) == 1 else f"call-{uuid.uuid4().hex[:16]}"
        metadata = ((contract.REQUEST_ID_METADATA, rid),) if rid else ()
        timeout = self.timeout_s
        ends, end = deadline.get(), call_end()
        if ends is not None and end is not None:
            timeout = end - time.monotonic()
            if ends <= time.monotonic():
                raise GatewayTimeout(
                    f"runner {self.name!r} method {method!r} not called: the request's time ran out"
                )
        started = time.monotonic()
        call = self._calls[await self._pick(min(self.connect_wait_s, timeout))]
        timeout = max(0.001, timeout - (time.monotonic() - started))
        if sum(getattr(arg, "nbytes", 0) for arg in args) > OFFLOAD_BYTES:
            request = await asyncio.to_thread(_request, method, args, traces)
        else:
            request = _request(method, args, traces)
        within = finish_within()
        if within is not None:
            metadata = (*metadata, (contract.FINISH_WITHIN_METADATA, within))
        try:
            response = await call(request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            error = self._translate(method, exc, timed_out=ends is not None)
            error.runner_call = rid if len(ids) > 1 else None
            raise error from None
        return codec.decode(response.result)

    def _translate(
        self, method: str, exc: grpc.aio.AioRpcError, *, timed_out: bool
    ) -> KubentoError:
        code, details = exc.code(), exc.details() or ""
        where = f"runner {self.name!r} method {method!r}"
        retry_after = 1.0
        for key, value in exc.trailing_metadata() or ():
            if key == RETRY_AFTER_METADATA:
                retry_after = float(value)
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return RunnerOverloaded(f"{where} is overloaded: {details}", retry_after_s=retry_after)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED and timed_out:
            return GatewayTimeout(f"{where} did not answer within the request's time")
        if code in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.CANCELLED,  # the runner is stopping: retry elsewhere or later
        ):
            return RunnerUnavailable(
                f"{where} is unavailable: {details}", retry_after_s=retry_after
            )
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return BadInput(f"{where} rejected the input: {details}")
        return RunnerError(f"{where} failed: {details}")

    async def healthy(self, timeout_s: float = 1.0) -> bool:
        self._ensure_channels()
        index = self._ready_index(next(self._next))
        health = self._health[index or 0]
        try:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=timeout_s)
        except grpc.aio.AioRpcError:
            return False
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

    async def close(self, grace_s: float = CLOSE_GRACE_S) -> None:
        """Close the connections, letting calls still in flight finish for `grace_s`."""
        if self._any_ready is not None:
            self._any_ready.cancel()
            await asyncio.gather(self._any_ready, return_exceptions=True)
            self._any_ready = None
        await asyncio.gather(*(channel.close(grace=grace_s) for channel in self._channels))
        self._channels.clear()
        self._calls.clear()
        self._health.clear()


def _request(method: str, args: tuple[Any, ...], traces: tuple[Carrier, ...]) -> bytes:
    request = pb.CallRequest(method=method, args=[codec.encode(arg) for arg in args])
    if traces:
        request.callers.extend(
            pb.TraceContext(traceparent=parent, tracestate=state) for parent, state in traces
        )
    return request.SerializeToString()


class RemoteHandle:
    """A `Runner`'s handle in the API server: calls go to its `RunnerClient`; sync `.run()`
    works from API worker threads.

    Calls to batchable methods go through a `Coalescer`, so callers in the same
    event-loop turn share one gRPC call.
    """

    def __init__(
        self,
        client: RunnerClient,
        loop: asyncio.AbstractEventLoop,
        runner: Runner,
        observe: Callable[[str, int], None] | None = None,
        overrides: contract.BatchingOverrides | None = None,
    ) -> None:
        self.client = client
        self.loop = loop
        self.tracing = _tracing.active()
        self.coalescers = {
            name: Coalescer(
                functools.partial(client.call, name),
                runner.methods[name].spec.batch_dim,
                max_rows=config.max_batch_size,
                observe=functools.partial(observe, name) if observe else None,
                max_queue=config.max_queue_size,
            )
            for name, config in runner.batching_configs(overrides).items()
        }

    async def async_call(self, method: str, args: tuple[Any, ...]) -> Any:
        if self.tracing is not None:
            return await self._traced_call(self.tracing, method, args)
        coalescer = self.coalescers.get(method)
        if coalescer is None:
            return await self.client.call(method, args)
        try:
            return await coalescer.call(args, request_id.get())
        except NeverFits as exc:
            raise self._refused(method, exc) from None

    async def _traced_call(self, tracing: Tracing, method: str, args: tuple[Any, ...]) -> Any:
        with tracing.call(self.client.name, method) as trace:
            coalescer = self.coalescers.get(method)
            if coalescer is None:
                return await self.client.call(method, args, traces=(trace,))
            try:
                return await coalescer.call(args, request_id.get(), trace)
            except NeverFits as exc:
                raise self._refused(method, exc) from None

    def _refused(self, method: str, exc: NeverFits) -> BadInput:
        where = f"runner {self.client.name!r} method {method!r}"
        return BadInput(f"{where} rejected the input: {exc}")

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        context = contextvars.copy_context()
        future = asyncio.run_coroutine_threadsafe(
            _in_context(context, self.async_call(method, args)), self.loop
        )
        return future.result()


async def _in_context(context: contextvars.Context, coro: Any) -> Any:
    # Carry the request id from the API thread into the loop's task.
    for var, value in context.items():
        var.set(value)
    return await coro
