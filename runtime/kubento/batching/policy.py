"""`BatchPolicy`: where a batch is decided. Admission, FIFO batch formation and the
wait-for-more-rows decision, free of asyncio and driven by an injected clock.

Timing words used below: the *batching budget* (`max_latency_ms`) bounds how
long a request may wait in the queue before its rows start running; the
*deadline* (from the gRPC deadline and/or `timeout_ms`) bounds when its answer
must be ready. They are separate knobs.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kubento.batching.config import BatchingConfig, DeadlineUnmeetable, Overloaded, check_fits
from kubento.batching.lanes import LaneChange, LaneTuner
from kubento.batching.latency import ArrivalRate, LatencyModel
from kubento.contract import AUTO

if TYPE_CHECKING:
    import asyncio

Clock = Callable[[], float]
"""Seconds on a monotonic scale: `time.monotonic` in production, a fake in tests."""


PAUSE_GAPS = 1.5
"""Arrivals count as paused after this many typical inter-arrival gaps without one."""
MIN_PAUSE_S = 0.0001
GAP_WINDOW = 16
"""Recent per-row inter-arrival gaps kept; their median is the typical gap."""
FORECAST_MIN_SIZES = 4
"""Admission forecasts once a batch of max_batch_size / this many rows has run."""
ALONGSIDE_COST_RATIO = 2.0
"""A batch starts next to running ones only if its model time per row is at most
this many times a full batch's; smaller ones wait for a lane, gathering rows."""


class Request:
    """One caller's rows in the queue, and (for the Dispatcher) where their results go."""

    __slots__ = (
        "args",
        "budget",
        "deadline",
        "done_rows",
        "dropped",
        "enqueued",
        "future",
        "pieces",
        "rows",
        "signature",
        "span",
        "taken",
    )

    def __init__(
        self,
        rows: int,
        args: tuple[Any, ...],
        signature: Hashable,
        enqueued: float,
        budget: float,
        deadline: float | None,
    ) -> None:
        self.rows = rows
        self.args = args
        self.signature = signature
        self.enqueued = enqueued
        self.budget = budget
        self.deadline = deadline
        self.taken = 0
        self.dropped = False
        self.future: asyncio.Future[Any] | None = None
        self.pieces: list[tuple[int, Any]] = []
        self.done_rows = 0
        self.span: Any = None
        """The span context the call was submitted in, when the dispatcher traces."""

    def __repr__(self) -> str:
        return f"<Request rows={self.rows} taken={self.taken} dropped={self.dropped}>"


@dataclass(frozen=True, slots=True)
class Part:
    """Rows start:stop of one request, placed in a batch."""

    request: Request
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass(eq=False)
class Batch:
    parts: list[Part]
    size: int
    started: float


@dataclass
class Decision:
    """What to do now: run `batch` (then decide again), or sleep until `wake_at`.

    `expired` requests passed their deadline while queued; fail them.
    """

    batch: Batch | None = None
    wake_at: float | None = None
    expired: list[Request] = field(default_factory=list)


class BatchPolicy:
    """The batching decisions, free of asyncio: feed it events, ask what to do.

    FIFO: rows leave the queue in arrival order; a batch takes the longest run
    of compatible rows from the head (splitting a request across batches when
    it does not fit), and never skips ahead. Up to `lanes` batches run at once:
    `max_concurrency`, or under "auto" what its `LaneTuner` measured best, between
    1 and `lane_bound` (the model threads the worker has).
    """

    def __init__(
        self,
        config: BatchingConfig,
        *,
        clock: Clock = time.monotonic,
        latency: LatencyModel | None = None,
        lane_bound: int = 1,
    ) -> None:
        self.config = config
        self.clock = clock
        self.latency = latency or LatencyModel(config.max_batch_size)
        self.arrivals = ArrivalRate()
        self.tuner: LaneTuner | None = None
        if config.max_concurrency == AUTO:
            self.lanes = 1
            if lane_bound > 1:
                self.tuner = LaneTuner(lane_bound, clock())
        else:
            self.lanes = int(config.max_concurrency)
        self.queued_rows = 0
        self.in_flight: list[Batch] = []
        self.closing = False
        self._queue: deque[Request] = deque()
        self._budget_s = config.max_latency_ms / 1000
        self._timeout_s = None if config.timeout_ms is None else config.timeout_ms / 1000
        wait_ms = config.max_queue_wait_ms
        self._shed_wait_s = None if wait_ms is None else wait_ms / 1000
        self._gaps: deque[float] = deque(maxlen=GAP_WINDOW)
        self._typical_gap: float | None = None
        self._last_arrival: float | None = None
        # The head run: untaken rows of the compatible requests at the head of
        # the queue, maintained on arrival, recomputed when a batch leaves.
        self._head_rows = 0
        self._head_closed = False
        self._head_deadline: float | None = None

    # events

    def admit(
        self,
        rows: int,
        args: tuple[Any, ...] = (),
        signature: Hashable = None,
        deadline: float | None = None,
    ) -> Request:
        """Queue a request of `rows` rows, or reject it now."""
        now = self.clock()
        if self.closing:
            raise DeadlineUnmeetable("the runner is shutting down", retry_after_s=1.0)
        limit = self.config.max_queue_size
        if limit and self.queued_rows + rows > limit:
            check_fits(rows, limit)
            raise Overloaded(
                f"the batching queue is full ({self.queued_rows} of {limit} rows queued)",
                retry_after_s=self._drain_time(self.queued_rows + rows - limit) or 1.0,
            )
        if self._timeout_s is not None:
            timeout = now + self._timeout_s
            deadline = timeout if deadline is None else min(deadline, timeout)
        if deadline is not None and deadline <= now:
            raise DeadlineUnmeetable("the request's deadline has already passed", retry_after_s=0)
        forecast = self._forecast(rows, now)
        if forecast is not None:
            wait, start, finish = forecast
            # The batching budget only bounds batch formation; waiting longer is a reason
            # to reject only when the deployment opted in (max_queue_wait_ms).
            if self._shed_wait_s is not None and wait > self._shed_wait_s:
                raise DeadlineUnmeetable(
                    f"the queue would hold this request for about {(start - now) * 1000:.0f} ms, "
                    f"over max_queue_wait_ms={self.config.max_queue_wait_ms:g}",
                    retry_after_s=wait - self._shed_wait_s,
                )
            if deadline is not None and finish > deadline:
                raise DeadlineUnmeetable(
                    f"the answer would take about {(finish - now) * 1000:.0f} ms, "
                    f"past the request's deadline in {(deadline - now) * 1000:.0f} ms",
                    retry_after_s=finish - deadline,
                )
        self._record_arrival(now, rows)
        request = Request(rows, args, signature, now, now + self._budget_s, deadline)
        self._queue.append(request)
        self.queued_rows += rows
        self._extend_head(request)
        return request

    def drop(self, request: Request) -> bool:
        """Forget the untaken rows of a cancelled or failed request; True if any were queued."""
        if not self._unqueue(request):
            return False
        self._recompute_head()
        return True

    def _unqueue(self, request: Request) -> bool:
        if request.dropped:
            return False
        request.dropped = True
        remaining = request.rows - request.taken
        self.queued_rows -= remaining
        return remaining > 0

    def finish(self, batch: Batch, duration: float | None) -> LaneChange | None:
        """A batch returned; `duration` is its model time, None if it failed. Under
        "auto", the lane count it changed to, if it did."""
        self.in_flight.remove(batch)
        if duration is None:
            return None
        self.latency.observe(batch.size, duration)
        if self.tuner is None:
            return None
        change = self.tuner.finished(self.clock(), batch.size, self.queued_rows > 0)
        self.lanes = self.tuner.lanes
        return change

    def close(self) -> None:
        """Admit nothing more and stop waiting for rows: drain the queue."""
        self.closing = True

    @property
    def idle(self) -> bool:
        return self.queued_rows == 0 and not self.in_flight

    # decisions

    def decide(self) -> Decision:
        now = self.clock()
        decision = Decision()
        if len(self.in_flight) >= self.lanes or self.queued_rows == 0:
            return decision
        self._expire_head(now, decision.expired)
        if self.queued_rows == 0:
            return decision
        wake_at = None
        if self._head_rows < self.config.max_batch_size and not self.closing:
            wake_at = self._hold_until(now) if self.in_flight else None
            if wake_at is None:
                wake_at = self._wait_until(now)
        if wake_at is not None and wake_at > now:
            decision.wake_at = wake_at
        else:
            decision.batch = self._form_batch(now, decision.expired)
        return decision

    def _hold_until(self, now: float) -> float | None:
        """Until when to keep a small head run from starting next to running batches.

        With max_concurrency > 1 a free model thread could start the few rows
        queued right away, but on a model with a large fixed cost per call (a
        weight read, a kernel launch) a small batch spends the cores that the
        running batches and the serving path need. So it waits, for a running
        batch to end or for rows to make it worth a call of its own, never
        past the head's batching budget or the earliest deadline in the run.
        None: start now.
        """
        model = self.latency
        q = self._head_rows
        size = self.config.max_batch_size
        part, full = model.predict(q), model.predict(size)
        if part is None or full is None or part / q <= ALONGSIDE_COST_RATIO * full / size:
            return None
        latest = self._latest_start(part)
        return latest if latest > now else None

    def _wait_until(self, now: float) -> float | None:
        """When to decide again if waiting for more rows pays off; None to run now.

        Run now unless the next row is expected soon enough that adding it is
        cheaper than making it wait for the next batch. With q rows queued, a
        typical gap g between arrivals and T(n) the model time for n rows,
        running now costs the next row a full extra batch T(m) (m: the rows
        arriving meanwhile), while waiting costs each of the q+1 rows about
        g + T(q+1) - T(q). Never wait past the head's batching budget or the
        earliest deadline in the head run, and stop waiting once arrivals pause.
        """
        model = self.latency
        gap = self._typical_gap
        if gap is None or self._last_arrival is None or not model.trained:
            return None
        pause_at = self._last_arrival + max(PAUSE_GAPS * gap, MIN_PAUSE_S)
        if now >= pause_at:
            return None
        q = self._head_rows
        t_q = model.predict(q) or 0.0
        t_more = model.predict(q + 1) or 0.0
        next_rows = self.arrivals.rate(now) * t_q
        t_next = model.predict(min(max(round(next_rows), 1), self.config.max_batch_size)) or 0.0
        if (q + 1) * (gap + t_more - t_q) >= t_next:
            return None
        latest = self._latest_start(t_more)
        if now + gap > latest:
            return None
        return min(pause_at, latest)

    def _latest_start(self, run_time: float) -> float:
        """The latest the head run may start: its batching budget, or in time to
        finish a `run_time` call by its earliest deadline."""
        latest = self._queue[0].budget
        if self._head_deadline is not None:
            latest = min(latest, self._head_deadline - run_time)
        return latest

    def _forecast(self, rows: int, now: float) -> tuple[float, float, float] | None:
        """Predicted queueing of `rows` new rows; None while the latency model is untrained.

        Returns (queue wait, start, finish): how long the new rows wait behind
        full batches queued ahead of them, when the first new row starts, when
        the last ends. Batches ahead are assumed full; each starts on the first
        model thread to come free. With no full batch ahead the queue wait is
        0: the new rows join the next batch, so a request finding a short queue
        is admitted however slow the running batches are; the deadline check
        (on `finish`) still counts everything.

        Also None until a batch of at least a quarter of max_batch_size has
        been seen: the latency model extrapolates a full batch's time per row
        from the largest it saw, which from a batch of 1 can be 64 times too
        long and would shed a cold runner's first burst; from a quarter it is
        at most 4 times. The queue bound still holds meanwhile.
        """
        model = self.latency
        full = model.predict(self.config.max_batch_size)
        if full is None or FORECAST_MIN_SIZES * model.largest_size < self.config.max_batch_size:
            return None
        # Batch k ahead runs on lane k mod c, lanes sorted by when they come
        # free: exact, since every running batch ends within one full batch.
        lanes = sorted(
            max(now, batch.started + (model.predict(batch.size) or 0.0)) for batch in self.in_flight
        )
        lanes = [now] * max(0, self.lanes - len(lanes)) + lanes
        size = self.config.max_batch_size
        first = self.queued_rows // size
        last = (self.queued_rows + rows - 1) // size
        last_rows = self.queued_rows + rows - last * size
        start = lanes[first % len(lanes)] + (first // len(lanes)) * full
        wait = start - now if first else 0.0
        finish = (
            lanes[last % len(lanes)]
            + (last // len(lanes)) * full
            + (model.predict(last_rows) or full)
        )
        return wait, start, finish

    def _drain_time(self, rows: int) -> float | None:
        full = self.latency.predict(self.config.max_batch_size)
        if full is None:
            return None
        batches = -(-rows // self.config.max_batch_size)
        return -(-batches // self.lanes) * full

    # queue bookkeeping

    def _record_arrival(self, now: float, rows: int) -> None:
        if self._last_arrival is not None:
            self._gaps.append((now - self._last_arrival) / rows)
            self._typical_gap = statistics.median(self._gaps)
        self._last_arrival = now
        self.arrivals.record(now, rows)

    def _extend_head(self, request: Request) -> None:
        if self._head_closed:
            return
        head = self._queue[0]
        if head is not request and request.signature != head.signature:
            self._head_closed = True
            return
        self._head_rows += request.rows
        if request.deadline is not None and (
            self._head_deadline is None or request.deadline < self._head_deadline
        ):
            self._head_deadline = request.deadline
        if self._head_rows >= self.config.max_batch_size:
            self._head_closed = True

    def _recompute_head(self) -> None:
        queue = self._queue
        while queue and (queue[0].dropped or queue[0].taken == queue[0].rows):
            queue.popleft()
        self._head_rows = 0
        self._head_closed = False
        self._head_deadline = None
        if not queue:
            return
        signature = queue[0].signature
        limit = self.config.max_batch_size
        for request in queue:
            if request.dropped:
                continue
            if request.signature != signature:
                self._head_closed = True
                return
            self._head_rows += request.rows - request.taken
            if request.deadline is not None and (
                self._head_deadline is None or request.deadline < self._head_deadline
            ):
                self._head_deadline = request.deadline
            if self._head_rows >= limit:
                self._head_closed = True
                return

    def _expire_head(self, now: float, expired: list[Request]) -> None:
        """Drop requests at the head whose deadline passed while they queued."""
        queue = self._queue
        changed = False
        while queue:
            request = queue[0]
            if request.dropped or request.taken == request.rows:
                queue.popleft()
            elif request.deadline is not None and request.deadline <= now:
                self._unqueue(request)
                queue.popleft()
                expired.append(request)
                changed = True
            else:
                break
        if changed:
            self._recompute_head()

    def _form_batch(self, now: float, expired: list[Request]) -> Batch:
        queue = self._queue
        limit = self.config.max_batch_size
        parts: list[Part] = []
        size = 0
        signature = queue[0].signature
        index = 0
        while size < limit and index < len(queue):
            request = queue[index]
            index += 1
            if request.dropped:
                continue
            if request.deadline is not None and request.deadline <= now:
                self._unqueue(request)
                expired.append(request)
                continue
            if request.signature != signature:
                break
            count = min(request.rows - request.taken, limit - size)
            parts.append(Part(request, request.taken, request.taken + count))
            request.taken += count
            size += count
        self.queued_rows -= size
        batch = Batch(parts, size, now)
        self.in_flight.append(batch)
        self._recompute_head()
        return batch
