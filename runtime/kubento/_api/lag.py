"""How late the API server's event loop runs what is ready: its lag.

A request's answer leaves only when the loop gets to it, and under load that is a measurable
while after the runner answered. `LoopLag` ticks every `TICK_S` and records how late each
tick ran; `margin_s` is the largest lateness of the last `WINDOW_S`, which the API keeps back
from each request's time (the deadline it sends to runners is that much earlier), so what a
runner admits can still be written back within the request's end-to-end time.
"""

from __future__ import annotations

import asyncio
from collections import deque

from prometheus_client import Gauge

TICK_S = 0.02
WINDOW_S = 1.0
MAX_SHARE = 0.5
"""The margin never takes more than this share of a request's time."""


class LoopLag:
    def __init__(self, gauge: Gauge) -> None:
        self.margin_s = 0.0
        self.gauge = gauge
        self._recent: deque[float] = deque(maxlen=round(WINDOW_S / TICK_S))
        self._handle: asyncio.TimerHandle | None = None
        self._due = 0.0

    def start(self) -> None:
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def keep_back(self, time_s: float) -> float:
        """What of a request's `time_s` is kept back for the way out."""
        return min(self.margin_s, MAX_SHARE * time_s)

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = loop.time() + TICK_S
        self._handle = loop.call_at(self._due, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        late = max(0.0, loop.time() - self._due)
        self._recent.append(late)
        self.margin_s = max(self._recent)
        self.gauge.set(late)
        self._schedule(loop)
