"""The API server's corked transport: a response's writes in one event-loop step leave in
one send, and nothing written is lost to a close."""

from __future__ import annotations

import asyncio
from typing import Any

from kubento._api.protocol import CORK_BYTES, CorkedTransport


class Recorder:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else None


def corked() -> tuple[CorkedTransport, Recorder]:
    inner = Recorder()
    return CorkedTransport(inner, asyncio.get_running_loop()), inner  # type: ignore[arg-type]


async def test_a_head_and_a_body_written_in_one_step_leave_in_one_send() -> None:
    transport, inner = corked()
    transport.write(b"HTTP/1.1 200 OK\r\n\r\n")
    transport.write(b"{}")
    assert inner.sent == []
    await asyncio.sleep(0)
    assert inner.sent == [b"HTTP/1.1 200 OK\r\n\r\n{}"]


async def test_a_close_sends_what_is_pending_first() -> None:
    transport, inner = corked()
    transport.write(b"bye")
    transport.close()
    assert (inner.sent, inner.closed) == ([b"bye"], True)


async def test_a_large_write_goes_out_at_once() -> None:
    transport, inner = corked()
    transport.write(b"x" * CORK_BYTES)
    assert inner.sent == [b"x" * CORK_BYTES]


async def test_everything_else_is_the_transports_own() -> None:
    transport, _ = corked()
    assert transport.get_extra_info("peername") == ("127.0.0.1", 1)
