"""RunnerClient when runner pods come and go: a call waits (bounded) for a connection
instead of failing while none is up, and is never sent twice."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from kubento import contract
from kubento._local.supervisor import free_port
from kubento._proto import runner_pb2 as pb
from kubento._remote.client import CALL_METHOD, RETRY_AFTER_METADATA, RunnerClient
from kubento._runner.worker import _finish_within
from kubento._sdk.handles import deadline, request_end
from kubento.exceptions import GatewayTimeout, RunnerUnavailable


class FakeRunner:
    """A gRPC server with the runner's Call method: echoes its argument, or refuses."""

    def __init__(self, port: int, refuse: bool = False, answer_after_s: float = 0) -> None:
        self.port = port
        self.refuse = refuse
        self.answer_after_s = answer_after_s
        self.calls = 0
        self.server: grpc.aio.Server | None = None
        self.seen: list[tuple[float | None, float | None]] = []
        """Per call: the deadline's time remaining, and the finish-within it was given."""

    async def call(self, request: pb.CallRequest, context: grpc.aio.ServicerContext) -> Any:
        self.calls += 1
        metadata = dict(context.invocation_metadata() or ())
        within = metadata.get(contract.FINISH_WITHIN_METADATA)
        self.seen.append((context.time_remaining(), None if within is None else float(within)))
        await asyncio.sleep(self.answer_after_s)
        if self.refuse:
            context.set_trailing_metadata(((RETRY_AFTER_METADATA, "0.5"),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "shed")
        return pb.CallResponse(result=request.args[0])

    async def start(self) -> FakeRunner:
        self.server = grpc.aio.server()
        handler = grpc.method_handlers_generic_handler(
            CALL_METHOD.split("/")[1],
            {
                CALL_METHOD.rsplit("/", 1)[1]: grpc.unary_unary_rpc_method_handler(
                    self.call,
                    request_deserializer=pb.CallRequest.FromString,
                    response_serializer=pb.CallResponse.SerializeToString,
                )
            },
        )
        self.server.add_generic_rpc_handlers((handler,))
        assert self.server.add_insecure_port(f"127.0.0.1:{self.port}") == self.port
        await self.server.start()
        return self

    async def stop(self) -> None:
        assert self.server is not None
        await self.server.stop(1.0)


@pytest.fixture
def port() -> int:
    return free_port()


async def test_a_call_waits_for_a_runner_that_is_still_connecting(port: int) -> None:
    client = RunnerClient("r", f"127.0.0.1:{port}", connections=2, connect_wait_s=5.0)
    runner = FakeRunner(port)
    try:
        call = asyncio.ensure_future(client.call("m", ("hello",)))
        await asyncio.sleep(0.5)  # the call is waiting: no runner listens yet
        assert not call.done()
        await runner.start()
        assert await asyncio.wait_for(call, 10) == "hello"
        assert runner.calls == 1
    finally:
        await client.close(0)
        await runner.stop()


async def test_a_replaced_runner_costs_no_failed_call(port: int) -> None:
    """A rollout: the runner stops (GOAWAY) and another takes its place a little later."""
    client = RunnerClient("r", f"127.0.0.1:{port}", connections=2, connect_wait_s=5.0)
    old = await FakeRunner(port).start()
    new = FakeRunner(port)
    try:
        assert await client.call("m", (1,)) == 1
        await old.stop()
        call = asyncio.ensure_future(client.call("m", (2,)))
        await asyncio.sleep(0.5)
        await new.start()
        assert await asyncio.wait_for(call, 10) == 2
        assert (old.calls, new.calls) == (1, 1)
    finally:
        await client.close(0)
        await new.stop()


async def test_a_runner_that_stays_down_gets_fast_failures_after_the_connect_wait(
    port: int,
) -> None:
    client = RunnerClient("r", f"127.0.0.1:{port}", connections=2, connect_wait_s=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(RunnerUnavailable):
            await client.call("m", ("x",))
        assert 0.5 <= time.monotonic() - started < 5
        started = time.monotonic()  # still down: no second wait
        with pytest.raises(RunnerUnavailable):
            await client.call("m", ("x",))
        assert time.monotonic() - started < 0.4
    finally:
        await client.close(0)


async def test_a_runner_that_refused_a_call_is_not_asked_again(port: int) -> None:
    client = RunnerClient("r", f"127.0.0.1:{port}", connections=2)
    runner = await FakeRunner(port, refuse=True).start()
    try:
        with pytest.raises(RunnerUnavailable) as caught:
            await client.call("m", ("x",))
        assert caught.value.retry_after_s == 0.5
        assert runner.calls == 1
    finally:
        await client.close(0)
        await runner.stop()


async def test_the_runner_finishes_by_the_deadline_and_its_answer_is_awaited_to_the_end(
    port: int,
) -> None:
    """The API server keeps back time for an answer's way out: the runner is told to finish
    by `deadline`, and the call waits until the request's end, so an answer that comes back
    a little after `deadline` is not cut off into a 504 (as every such answer was while the
    gRPC deadline was `deadline` itself)."""
    client = RunnerClient("r", f"127.0.0.1:{port}", connections=1)
    runner = await FakeRunner(port, answer_after_s=0.4).start()
    try:
        now = time.monotonic()
        deadline.set(now + 0.2)
        request_end.set(now + 2.0)
        assert await client.call("m", ("hello",)) == "hello"
        ((remaining, within),) = runner.seen
        assert remaining is not None and 1.5 < remaining <= 2.0
        assert within is not None and 0 < within <= 0.2
        request_end.set(time.monotonic() + 0.3)  # past the request's end: a 504, in time
        started = time.monotonic()
        with pytest.raises(GatewayTimeout):
            await client.call("m", ("late",))
        assert time.monotonic() - started < 0.4
    finally:
        deadline.set(None)
        request_end.set(None)
        await client.close(0)
        await runner.stop()


class Context:
    def __init__(self, remaining: float | None, metadata: tuple[tuple[str, str], ...]) -> None:
        self.remaining = remaining
        self.metadata = metadata

    def time_remaining(self) -> float | None:
        return self.remaining

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata


@pytest.mark.parametrize(
    ("remaining", "within", "expected"),
    [
        (2.0, None, 2.0),  # no finish-within: the deadline's
        (2.0, "0.5", 0.5),  # less: it counts
        (0.3, "0.5", 0.3),  # more than the deadline leaves: the deadline's
        (None, "0.5", 0.5),  # no deadline at all
        (2.0, "soon", 2.0),  # not a number: ignored
        (2.0, "nan", 2.0),
        (2.0, "-1", 2.0),
    ],
)
def test_a_runner_takes_the_smaller_of_its_deadline_and_finish_within(
    remaining: float | None, within: str | None, expected: float
) -> None:
    metadata = () if within is None else ((contract.FINISH_WITHIN_METADATA, within),)
    assert _finish_within(Context(remaining, metadata)) == expected  # type: ignore[arg-type]
