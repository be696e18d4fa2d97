"""Online estimates the batching policy plans with: batch latency by size, and arrival rate.

Both are cheap to query (the policy asks them on every decision) and robust:
the latency of a batch size is the median of its recent samples, so one slow
call (a page fault, a GC pause, a noisy neighbour) does not move it, and sizes
never observed are bounded from the sizes that were.
"""

from __future__ import annotations

import itertools
import statistics
from collections import deque
from collections.abc import Mapping

LATENCY_WINDOW = 15
"""Samples kept per batch size; the estimate is their median."""

ARRIVAL_WINDOW_S = 0.1
"""Arrival rate = rows seen in this trailing window / its length."""


class LatencyModel:
    """Predicts how long one call of the model takes for a batch of n rows.

    Learned online from observed batches. Before any observation it knows
    nothing (`predict` returns None) unless given a `prior` {batch size:
    seconds}, e.g. from a warm-up call; the first real sample then replaces the
    prior at that size. Between observed sizes the estimate is interpolated;
    below the smallest it is the smallest's (a fixed cost bound), above the
    largest it grows linearly through the origin (a per-row cost bound). The
    curve is kept non-decreasing in n, which both physics and a noisy sample
    sometimes disagree with; the conservative side wins.
    """

    def __init__(
        self,
        max_batch_size: int,
        *,
        prior: Mapping[int, float] | None = None,
        window: int = LATENCY_WINDOW,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        self.max_batch_size = max_batch_size
        self._window = window
        self._samples: dict[int, deque[float]] = {}
        self._medians: dict[int, float] = {}
        self._curve: list[float] | None = None
        for size, seconds in (prior or {}).items():
            self._check(size, seconds)
            self._medians[size] = seconds
        if self._medians:
            self._rebuild()

    def _check(self, size: int, seconds: float) -> None:
        if not 1 <= size <= self.max_batch_size:
            raise ValueError(f"batch size {size} outside 1..{self.max_batch_size}")
        if seconds < 0:
            raise ValueError(f"latency must be >= 0 seconds, got {seconds}")

    def observe(self, size: int, seconds: float) -> None:
        """Record that a batch of `size` rows took `seconds`."""
        self._check(size, seconds)
        samples = self._samples.get(size)
        if samples is None:
            samples = self._samples[size] = deque(maxlen=self._window)
        samples.append(seconds)
        median = statistics.median(samples)
        if self._medians.get(size) != median:
            self._medians[size] = median
            self._rebuild()

    def predict(self, size: int) -> float | None:
        """Seconds one call with `size` rows should take; None while untrained."""
        if self._curve is None:
            return None
        if size <= self.max_batch_size:
            return self._curve[max(size, 1)]
        return self._curve[self.max_batch_size] * size / self.max_batch_size

    @property
    def trained(self) -> bool:
        return self._curve is not None

    @property
    def largest_size(self) -> int:
        """The largest batch size observed (or given in the prior); 0 while untrained."""
        return max(self._medians, default=0)

    def _rebuild(self) -> None:
        sizes = sorted(self._medians)
        curve = [0.0] * (self.max_batch_size + 1)
        smallest, largest = sizes[0], sizes[-1]
        for n in range(1, smallest + 1):
            curve[n] = self._medians[smallest]
        for lo, hi in itertools.pairwise(sizes):
            t_lo, t_hi = self._medians[lo], self._medians[hi]
            for n in range(lo, hi + 1):
                curve[n] = t_lo + (t_hi - t_lo) * (n - lo) / (hi - lo)
        for n in range(largest + 1, self.max_batch_size + 1):
            curve[n] = self._medians[largest] * n / largest
        for n in range(2, self.max_batch_size + 1):
            curve[n] = max(curve[n], curve[n - 1])
        self._curve = curve


class ArrivalRate:
    """Rows per second over a trailing time window.

    A window rather than an exponential average of gaps: arrivals at a batching
    runner come in bursts (a batch's callers all answer at once, then send
    again), and a window sees a burst and its gap as what they are on average.
    It also decays by itself when arrivals stop.
    """

    def __init__(self, window_s: float = ARRIVAL_WINDOW_S) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self._window = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._rows = 0

    def record(self, now: float, rows: int) -> None:
        self._events.append((now, rows))
        self._rows += rows
        self._expire(now)

    def rate(self, now: float) -> float:
        self._expire(now)
        return self._rows / self._window

    def _expire(self, now: float) -> None:
        horizon = now - self._window
        events = self._events
        while events and events[0][0] < horizon:
            self._rows -= events.popleft()[1]
