"""The API server's probes on a port of their own, answered by a thread.

On the HTTP port a probe is answered when the event loop parses it, and under load the
loop runs a long line of ready callbacks first: at 1024 connections on two cores `/livez`
waited 78-158 ms at p99 there. Kubernetes probes the pods on this port instead
(`contract.API_PROBE_PORT`), where a thread answers at once from what the loop last
published: `Probes.answers`, and the loop's heartbeat (`LoopLag`). A loop that has not
ticked for `STALLED_S` is stuck (blocking code in an async API, a runaway computation):
then both probes answer 503 naming how long, which is what liveness exists to catch.

A thread per connection, one answer per connection (the kubelet opens one per probe, and a
client that kept one open would otherwise hold the others back), each bounded by
`TIMEOUT_S`; only `GET` of the probe paths. The port is in no Service and no NetworkPolicy
rule: the kubelet reaches it from the node, nothing else need.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pydantic_core

from kubento import contract
from kubento._api.probes import Answer

log = logging.getLogger("kubento.api")

STALLED_S = 2.0
"""No tick of the event loop for this long and the probes answer 503."""
TIMEOUT_S = 1.0
"""A probe connection that sends nothing for this long is closed."""


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        answers: dict[bytes, Callable[[], Answer]],
        heartbeat: Callable[[], float],
    ) -> None:
        self.answers = answers
        self.heartbeat = heartbeat
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # `--workers` processes each serve the probes on the one port, as they share the
        # HTTP port: the kernel hands each connection to one of them.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()

    def answer(self, path: bytes) -> Answer | None:
        found = self.answers.get(path)
        if found is None:
            return None
        stalled = time.monotonic() - self.heartbeat()
        if stalled > STALLED_S:
            message = f"the event loop has not run for {stalled:.1f} s"
            return 503, pydantic_core.to_json(contract.error_content(message))
        return found()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = TIMEOUT_S
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        answer = self.server.answer(self.path.encode())
        if answer is None:
            answer = 404, pydantic_core.to_json(contract.error_content("not a probe path"))
        self._answer(*answer)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a method other than GET, a malformed request line) in
        the JSON shape of every error, not its HTML page."""
        body = pydantic_core.to_json(contract.error_content(message or HTTPStatus(code).phrase))
        self._answer(code, body if self.command != "HEAD" else b"")

    def _answer(self, status: int, body: bytes) -> None:
        """One JSON answer, then the connection closes."""
        self.close_connection = True
        self.send_response_only(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # a probe every few seconds is not news; failures show in the loop's own logs


class ProbeServer:
    """Serve `answers` on `host:port` from a daemon thread until `stop()`."""

    def __init__(
        self,
        host: str,
        port: int,
        answers: dict[bytes, Callable[[], Answer]],
        heartbeat: Callable[[], float],
    ) -> None:
        self._server = _Server((host, port), answers, heartbeat)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubento-probes", daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        host, port = self._server.server_address[:2]
        log.info("event=probes_listening host=%s port=%s", host, port)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
