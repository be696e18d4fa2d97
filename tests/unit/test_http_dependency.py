"""`depends(url=...)` calls have the request's two ends: the HTTP timeout is the request's
end, and the other service is told to finish by its deadline (`kubento-finish-within-s`).
Against a real HTTP server on loopback that answers after a set time."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest

from kubento import contract
from kubento._remote.http import HTTPService
from kubento._sdk.handles import deadline, request_end
from kubento.exceptions import GatewayTimeout


class SlowService:
    """Answers every POST with its JSON body after `answer_after_s`, recording the
    finish-within header each request carried."""

    def __init__(self, answer_after_s: float) -> None:
        self.answer_after_s = answer_after_s
        self.seen: list[str | None] = []
        self.server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in head[1:] if ": " in line)
        self.seen.append(headers.get(contract.FINISH_WITHIN_METADATA))
        body = await reader.readexactly(int(headers["content-length"]))
        await asyncio.sleep(self.answer_after_s)
        answer = json.dumps(json.loads(body)["x"]).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(answer), answer)
        )
        await writer.drain()
        writer.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"


@pytest.fixture
async def slow() -> AsyncIterator[SlowService]:
    service = SlowService(answer_after_s=0.4)
    service.server = await asyncio.start_server(service.handle, "127.0.0.1", 0)
    try:
        yield service
    finally:
        deadline.set(None)
        request_end.set(None)
        service.server.close()
        await service.server.wait_closed()


async def test_an_answer_after_the_deadline_but_before_the_end_gets_through(
    slow: SlowService,
) -> None:
    now = time.monotonic()
    deadline.set(now + 0.2)
    request_end.set(now + 2.0)
    assert await HTTPService(slow.url).async_call("echo", {"x": [1, 2]}) == [1, 2]
    (within,) = slow.seen
    assert within is not None and 0 < float(within) <= 0.2


async def test_a_call_past_the_requests_end_is_a_504_in_time(slow: SlowService) -> None:
    now = time.monotonic()
    deadline.set(now + 0.1)
    request_end.set(now + 0.2)
    with pytest.raises(GatewayTimeout, match="did not answer within the request's time"):
        await HTTPService(slow.url).async_call("echo", {"x": 1})
    assert time.monotonic() - now < 0.35


async def test_without_time_kept_back_no_finish_within_is_sent(slow: SlowService) -> None:
    deadline.set(time.monotonic() + 2.0)  # a runner-hosted service: one end only
    assert await HTTPService(slow.url).async_call("echo", {"x": 3}) == 3
    assert slow.seen == [None]


async def test_a_passed_deadline_is_a_504_without_a_call(slow: SlowService) -> None:
    now = time.monotonic()
    deadline.set(now - 0.01)
    request_end.set(now + 1.0)
    with pytest.raises(GatewayTimeout, match="was not called"):
        await HTTPService(slow.url).async_call("echo", {"x": 1})
    assert slow.seen == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0.5", 0.5), ("0", 0.0), ("soon", None), ("nan", None), ("inf", None), ("-1", None)],
)
def test_finish_within_reads_only_finite_seconds(value: str, expected: float | None) -> None:
    assert contract.finish_within(value) == expected
