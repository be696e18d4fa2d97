"""uvicorn's httptools protocol with the limits its parser lacks: the size and count of a
request's headers, and how long a client may take to send them (slowloris); a response's
head and body sent in one write; and probes answered as soon as their request is parsed."""

from __future__ import annotations

import asyncio
import json
import time
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kubento import contract

MAX_HEAD_BYTES = 64 * 1024
"""Request line plus headers; more is refused with 431 (nginx allows 4 x 8 KiB by default)."""
MAX_HEADERS = 100
HEAD_TIMEOUT_S = 10.0
"""From a request's first byte (or the connection's start) to the end of its headers."""
KEEP_ALIVE_S = 75
"""An idle keep-alive connection is closed after this (uvicorn's `timeout_keep_alive`). A
request sent as the server closes its connection fails on the client (a POST is not resent),
so this outlasts the idle time of the clients and proxies in front: httpx's pool 5 s, AWS's
load balancers and ingress-nginx's upstream keep-alive 60 s; 75 s is nginx's default. At
uvicorn's 5 s, httpx clients lost requests to that race whenever the two timers met."""
CORK_BYTES = 64 * 1024
"""Writes wait for the end of the event-loop step only while they add up to less."""
ARRIVED = "kubento.arrived"
"""Scope key: `time.monotonic()` when the request's first byte was parsed. A busy event loop
runs the request's task later than that; its deadline and latency count from here."""


class CorkedTransport:
    """A transport whose writes in one event-loop step leave in one `send`: uvicorn writes
    a response's head and its body separately, two system calls where one does. What is
    pending goes out before a close; everything else is the transport's own."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)
        self._size += len(data)
        if (
            self._size >= CORK_BYTES
        ):  # a large body goes out now, under the transport's flow control
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._size = 0
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


PROBE_ANSWERS = "probe_answers"
"""The app attribute mapping a probe's path (bytes) to what it answers now: a function
giving (status, JSON body). See `kubento._api.probes`."""


class HeadRefused(Exception):
    """Raised from a parser callback to stop parsing a request already answered 431."""


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    _head_timer: asyncio.TimerHandle | None = None
    _answered = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        corked = CorkedTransport(transport, self.loop)
        super().connection_made(corked)  # type: ignore[arg-type]
        self._probes = getattr(self.app, PROBE_ANSWERS, {})
        self._start_head()

    def _start_head(self) -> None:
        self._in_head = True
        self._refused = False
        self._head_bytes = 0
        self._head_size = 0
        self._head_count = 0
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def _stop_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def data_received(self, data: bytes) -> None:
        if not self._in_head:
            super().data_received(data)
            return
        self._head_bytes += len(data)
        super().data_received(data)
        if self._in_head and not self._refused and self._head_bytes > MAX_HEAD_BYTES:
            self._refuse_head()

    def _refuse_head(self) -> None:
        self._refuse(
            431, f"request headers are over {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} fields"
        )

    def on_url(self, url: bytes) -> None:
        self._head_size += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_count += 1
        self._head_size += len(name) + len(value) + 4
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if self._head_size > MAX_HEAD_BYTES or self._head_count > MAX_HEADERS:
            self._refuse_head()
            # Stops the parser before the request reaches the app; uvicorn treats it as a
            # parser error, whose 400 is not sent (`send_400_response` below).
            raise HeadRefused
        self._in_head = False
        self._stop_timer()
        if self._probe_now():
            return
        super().on_headers_complete()

    def _probe_now(self) -> bool:
        """Answer a probe (`GET /livez`, `GET /readyz`) here, in the loop step that parsed
        it, when nothing else is in progress on the connection: as an ASGI task it would wait
        two or three more steps of a loop that may be busy for tens of milliseconds each.
        Anything else (a query, a body, a request queued behind another) takes the app's
        route, which answers the same."""
        answer = self._probes.get(self.url)
        if answer is None or self.parser.get_method() != b"GET":
            return False
        if (self.cycle is not None and not self.cycle.response_complete) or self.pipeline:
            return False
        if any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers):
            return False
        keep_alive = self.parser.should_keep_alive()
        self._write_json(*answer(), keep_alive=keep_alive)
        self._answered = True
        if keep_alive:
            self.on_response_complete()  # arms the keep-alive timeout, as after any answer
        else:
            self.transport.close()
        return True

    def send_400_response(self, msg: str) -> None:
        if not self._refused:
            super().send_400_response(msg)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope[ARRIVED] = time.monotonic()  # type: ignore[literal-required]
        if self._head_timer is None and self._in_head:
            self._head_timer = self.loop.call_later(HEAD_TIMEOUT_S, self._head_timed_out)

    def on_message_complete(self) -> None:
        if self._answered:  # by _probe_now: there is no cycle to complete
            self._answered = False
        else:
            super().on_message_complete()
        self._in_head = True
        self._head_bytes = 0
        self._head_size = 0
        self._head_count = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_timer()
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._in_head and not self.transport.is_closing():
            self._refuse(408, f"request headers did not arrive within {HEAD_TIMEOUT_S:g} s")

    def _write_json(self, status: int, body: bytes, *, keep_alive: bool) -> None:
        """A whole JSON response, written now: for answers given without the app."""
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s"
            % (
                status,
                HTTPStatus(status).phrase.encode(),
                len(body),
                b"" if keep_alive else b"connection: close\r\n",
                body,
            )
        )
        self.transport.flush()  # type: ignore[attr-defined]

    def _refuse(self, status: int, message: str) -> None:
        self._write_json(
            status, json.dumps(contract.error_content(message)).encode(), keep_alive=False
        )
        self.transport.close()
        self._refused = True
        self._in_head = False
        self._stop_timer()


def server_options() -> dict[str, Any]:
    """uvicorn's settings for every API server `kubento` starts (`kubento api`, `serve`)."""
    return {
        "log_level": "warning",
        "access_log": False,
        # Behind a Service or an ingress; client addresses are not used.
        "proxy_headers": False,
        "timeout_graceful_shutdown": 30,
        "http": BoundedHttpToolsProtocol,
        "timeout_keep_alive": KEEP_ALIVE_S,
    }
