"""The API server's probes on a port of their own, answered by a process of their own.

On the HTTP port a probe is answered when the event loop parses it, and under load the
loop runs a long line of ready callbacks first: at 1024 connections on two cores `/livez`
waited 78-158 ms at p99 there. A thread in the API process (this module's first version)
still waited for the GIL the loop holds and for a core: p99 87-188 ms. Kubernetes probes
the pods on this port instead (`contract.API_PROBE_PORT`), where `probe_process.py`, a
stdlib-only process started with the API server, answers from what the loop publishes on
its stdin every `PUBLISH_S`: `Probes.answers`. The publication is the loop's heartbeat: a
loop that publishes nothing for `STALLED_S` is stuck (blocking code in an async API, a
runaway computation), and then both probes answer 503 naming how long, which is what
liveness exists to catch. When the API server stops or dies, its stdin closes and the
probe process exits.

Only `GET` of the probe paths; one answer per connection. The port is in no Service and no
NetworkPolicy rule: the kubelet reaches it from the node, nothing else need.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydantic_core

from kubento import contract
from kubento._api.probes import Answer

log = logging.getLogger("kubento.api")

CHILD = Path(__file__).with_name("probe_process.py")
PUBLISH_S = 0.25
"""How often the loop publishes what the probes answer; STALLED_S is several of these."""
START_S = 10.0
"""The probe process must listen within this long."""


class ProbeServer:
    """Serve `answers` on `host:port` from a process of its own until `stop()`; `start()`
    and `stop()` run on the event loop whose heartbeat the publications are."""

    def __init__(self, host: str, port: int, answers: dict[bytes, Callable[[], Answer]]) -> None:
        self.host, self.port = host, port
        self.answers = answers
        self._process: subprocess.Popen[bytes] | None = None
        self._handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        process = subprocess.Popen(
            [sys.executable, "-I", str(CHILD), self.host, str(self.port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._process = process
        assert process.stdin is not None and process.stdout is not None
        error = pydantic_core.to_json(contract.error_content("{}")).decode()
        process.stdin.write(json.dumps({"error": error}).encode() + b"\n" + self._publication())
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], START_S)
        if not ready or process.stdout.readline() != b"listening\n":
            self.stop()
            raise RuntimeError(
                f"the probe server on {self.host}:{self.port} did not start "
                f"(exit status {process.poll()}; its error, if any, is above)"
            )
        os.set_blocking(process.stdin.fileno(), False)
        log.info("event=probes_listening host=%s port=%s pid=%s", self.host, self.port, process.pid)
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None and process.stdout is not None
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):  # the child is gone already: nothing matters
                pipe.close()
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _publication(self) -> bytes:
        published = {}
        for path, answer in self.answers.items():
            status, body = answer()
            published[path.decode()] = [status, body.decode()]
        return json.dumps(published).encode() + b"\n"

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = loop.call_later(PUBLISH_S, self._publish, loop)

    def _publish(self, loop: asyncio.AbstractEventLoop) -> None:
        assert self._process is not None and self._process.stdin is not None
        line = self._publication()
        try:
            # A line under PIPE_BUF is written whole or not at all; a full pipe (a probe
            # process not reading) skips this one, and the probes go stale, then 503.
            os.write(self._process.stdin.fileno(), line)
        except BlockingIOError:
            pass
        except OSError as exc:  # the probe process died: the kubelet's probes will say so
            log.error("event=probe_process_gone exit=%s error=%r", self._process.poll(), exc)
            return  # nothing reads any more publications
        self._schedule(loop)
