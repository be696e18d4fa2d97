"""RunnerClient when runner pods come and go: a call waits (bounded) for a connection
instead of failing while none is up, and is never sent twice."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc
import pytest

from kubento._local.supervisor import free_port
from kubento._proto import runner_pb2 as pb
from kubento._remote.client import CALL_METHOD, RETRY_AFTER_METADATA, RunnerClient
from kubento.exceptions import RunnerUnavailable


class FakeRunner:
    """A gRPC server with the runner's Call method: echoes its argument, or refuses."""

    def __init__(self, port: int, refuse: bool = False) -> None:
        self.port = port
        self.refuse = refuse
        self.calls = 0
        self.server: grpc.aio.Server | None = None

    async def call(self, request: pb.CallRequest, context: grpc.aio.ServicerContext) -> Any:
        self.calls += 1
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
