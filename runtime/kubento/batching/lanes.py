"""`LaneTuner`: how many batches of one method run at once under `max_concurrency="auto"`.

A *lane* is one model call in flight. Whether a second lane helps depends on the
model and the machine, not on the code: numpy and torch release the GIL and a
second batch gets its own core, a pure-Python model holds the GIL and two batches
only take turns, and on a pod whose cores are busy with the serving path a second
batch steals from it. So the tuner measures instead of guessing, on the batches the
runner serves anyway:

- It counts rows finished per second over *windows* (at least `WINDOW_BATCHES`
  batches and `WINDOW_S` seconds), and notes whether the lanes were *saturated*:
  rows still queued when most batches of the window ended (the model, not the
  callers, set the pace).
- Saturated at c lanes (c below the bound): *probe* c + 1 lanes for one window
  after a settling one. Keep it only if rows per second rose by `GAIN` (10%);
  otherwise go back and wait twice as long before the next probe up.
- At c > 1 lanes, now and then probe c - 1: when fewer lanes deliver within `GAIN`
  of what c did (the load fell, or the cores got busier), fewer lanes win. A
  tie always goes to fewer lanes: they cost less latency per batch and leave the
  cores to the rest of the process.

Pure and clock-driven like `BatchPolicy`: feed it each finished batch, with the
time; it answers the new lane count when it changes.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 0.5
WINDOW_BATCHES = 8
GAIN = 0.10
"""A change of lanes is kept only for this much more rows per second (fewer lanes on ties)."""
SATURATED = 0.5
"""A window is saturated when at least this fraction of its batches left rows queued."""
FIRST_BACKOFF_S = 5.0
MAX_BACKOFF_S = 300.0
"""After a probe that did not pay, the next probe the same way waits this long, doubling."""
RECHECK_S = 30.0
"""A kept extra lane is checked again (a probe down) after this long, doubling to the max."""
IDLE_S = 1.0
"""A pause between batches longer than this starts the window again: idle time says
nothing about lanes."""


@dataclass(frozen=True)
class LaneChange:
    """The tuner changed the lane count (`kind`: probe, kept, reverted)."""

    lanes: int
    was: int
    kind: str
    rows_per_s: float
    """Rows per second measured by the window that led to the change."""
    compared_to: float | None = None
    """For a kept or reverted probe: the rows per second of the lanes it was tried against."""

    @property
    def settled(self) -> bool:
        """A decision (not a probe, and not a probe undone): the lane count the runner keeps."""
        return self.kind == "kept"


class _Window:
    __slots__ = ("backlogged", "batches", "last", "rows", "start")

    def __init__(self, now: float) -> None:
        self.start = now
        self.last = now
        self.rows = 0
        self.batches = 0
        self.backlogged = 0


class LaneTuner:
    """Finds the number of lanes (1..`bound`) that serves the most rows per second."""

    def __init__(
        self,
        bound: int,
        now: float,
        *,
        window_s: float = WINDOW_S,
        window_batches: int = WINDOW_BATCHES,
    ) -> None:
        if bound < 1:
            raise ValueError(f"bound must be >= 1, got {bound}")
        self.bound = bound
        self.lanes = 1
        self.settled = 1
        self._window_s = window_s
        self._window_batches = window_batches
        self._window = _Window(now)
        self._probe: int | None = None
        """The lane count under trial, or None when running the settled count."""
        self._settling = True
        """The next window is not measured: its batches started at another lane count (or,
        the first, while the model warmed up)."""
        self._baseline = 0.0
        self._up_at = now
        self._up_backoff = FIRST_BACKOFF_S
        self._down_at = now + RECHECK_S
        self._down_backoff = RECHECK_S

    def finished(self, now: float, rows: int, backlog: bool) -> LaneChange | None:
        """A batch of `rows` ended at `now`; `backlog`: rows were still queued then."""
        window = self._window
        if now - window.last > IDLE_S:
            self._window = _Window(now)
            return None
        window.last = now
        window.rows += rows
        window.batches += 1
        window.backlogged += backlog
        if window.batches < self._window_batches or now - window.start < self._window_s:
            return None
        rate = window.rows / (now - window.start)
        saturated = window.backlogged >= SATURATED * window.batches
        self._window = _Window(now)
        if self._settling:
            self._settling = False
            return None
        if self._probe is None:
            return self._maybe_probe(now, rate, saturated)
        return self._judge(now, rate)

    def _maybe_probe(self, now: float, rate: float, saturated: bool) -> LaneChange | None:
        self._baseline = rate
        if saturated and self.settled < self.bound and now >= self._up_at:
            return self._start_probe(self.settled + 1, rate)
        if self.settled > 1 and now >= self._down_at:
            return self._start_probe(self.settled - 1, rate)
        return None

    def _start_probe(self, lanes: int, rate: float) -> LaneChange:
        was, self._probe, self.lanes, self._settling = self.lanes, lanes, lanes, True
        return LaneChange(lanes, was, "probe", rate)

    def _judge(self, now: float, rate: float) -> LaneChange:
        probe, baseline = self._probe, self._baseline
        assert probe is not None
        self._probe = None
        more = probe > self.settled
        keep = rate >= (1 + GAIN) * baseline if more else (1 + GAIN) * rate >= baseline
        if keep:
            self.settled = self.lanes = probe
            self._up_backoff = FIRST_BACKOFF_S
            self._up_at = now + (0.0 if more else FIRST_BACKOFF_S)
            self._down_backoff = RECHECK_S
            self._down_at = now + RECHECK_S
            return LaneChange(probe, probe - 1 if more else probe + 1, "kept", rate, baseline)
        was, self.lanes = probe, self.settled
        self._settling = True
        if more:
            self._up_at = now + self._up_backoff
            self._up_backoff = min(2 * self._up_backoff, MAX_BACKOFF_S)
        else:
            self._down_at = now + self._down_backoff
            self._down_backoff = min(2 * self._down_backoff, MAX_BACKOFF_S)
        return LaneChange(self.settled, was, "reverted", rate, baseline)
