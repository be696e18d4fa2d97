"""The API server's probe process: answers `GET /livez` and `/readyz` on the probe port
from what the API server's event loop last published on this process's stdin.

Run by path (`python -I probe_process.py HOST PORT`, by `kubento._api.probe_server`), so it
imports only the standard library: no GIL of the API server's to wait for, and a process
that sleeps between probes is one the kernel's scheduler runs at once when a probe comes.

Stdin carries JSON lines. The first is the configuration: `error`, the body of every
refusal with `{}` standing for the message (`contract.error_content`'s shape, rendered by
the parent so the shape lives once). Each later line is what the probes answer now,
`{path: [status, body]}`, and arrives every `PUBLISH_S` while the loop runs: no line for
`STALLED_S` and both probes answer 503 naming how long. At the end of stdin (the API
server stopped, or died) this process exits. SIGINT and SIGTERM are left to the API server,
whose draining readiness this process goes on answering until then.
"""

from __future__ import annotations

import json
import signal
import socket
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

STALLED_S = 2.0
"""No publication from the event loop for this long and the probes answer 503."""
TIMEOUT_S = 1.0
"""A probe connection that sends nothing for this long is closed."""

Answer = tuple[int, bytes]


class State:
    """What the probes answer: the last publication, and when it came."""

    def __init__(self, error_template: str) -> None:
        self.error_template = error_template
        self.answers: dict[str, Answer] = {}
        self.heard = time.monotonic()

    def error(self, message: str) -> bytes:
        return self.error_template.replace('"{}"', json.dumps(message), 1).encode()

    def publish(self, line: bytes) -> None:
        try:
            published = json.loads(line).items()
            answers = {path: (int(status), body.encode()) for path, (status, body) in published}
        except (ValueError, TypeError, AttributeError):
            return  # not a whole publication: the next one comes within PUBLISH_S
        self.answers, self.heard = answers, time.monotonic()

    def answer(self, path: str) -> Answer | None:
        found = self.answers.get(path)
        if found is None:
            return None
        stalled = time.monotonic() - self.heard
        if stalled > STALLED_S:
            return 503, self.error(f"the event loop has not run for {stalled:.1f} s")
        return found


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, address: tuple[str, int], state: State) -> None:
        self.state = state
        super().__init__(address, Handler)

    def server_bind(self) -> None:
        # `--workers` API processes each have a probe process on the one port, as they
        # share the HTTP port: the kernel hands each connection to one of them.
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


class Handler(BaseHTTPRequestHandler):
    """A thread per connection and one answer each: the kubelet opens one per probe, and a
    client that kept one open would otherwise hold the others back."""

    server: Server
    timeout = TIMEOUT_S
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        answer = self.server.state.answer(self.path)
        if answer is None:
            answer = 404, self.server.state.error("not a probe path")
        self._answer(*answer)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own refusals (a method other than GET, a malformed request line) in
        the JSON shape of every error, not its HTML page."""
        body = self.server.state.error(message or HTTPStatus(code).phrase)
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
        pass  # a probe every few seconds is not news; failures show in the API server's log


def main(argv: list[str]) -> int:
    host, port = argv[1], int(argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    config = json.loads(sys.stdin.buffer.readline() or b"{}")
    state = State(config["error"])
    state.publish(sys.stdin.buffer.readline())  # the first answers, before a probe can come
    try:
        server = Server((host, port), state)
    except OSError as exc:
        print(f"probe port {host}:{port}: {exc.strerror or exc}", file=sys.stderr, flush=True)
        return 1
    threading.Thread(target=server.serve_forever, name="probes", daemon=True).start()
    print("listening", flush=True)
    for line in sys.stdin.buffer:
        state.publish(line)
    return 0  # stdin ended: the API server is gone, and its probes with it


if __name__ == "__main__":
    sys.exit(main(sys.argv))
