"""`Dispatcher`: the asyncio engine a runner worker puts in front of each batchable method.

It is woken only by arrivals, completions and one timer; what to run is decided by
its `BatchPolicy`. Time comes from an injected `Timer` so tests run on a fake clock.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kubento import contract
from kubento.batching.config import BatchingConfig, DeadlineUnmeetable, Overloaded
from kubento.batching.lanes import LaneChange
from kubento.batching.policy import Batch, BatchPolicy, Part, Request
from kubento.batching.rows import count_rows, join_rows, split_rows, take_rows

if TYPE_CHECKING:
    from kubento._tracing.spans import DispatchTracing

log = logging.getLogger("kubento.batching")

_LABELS = ("runner", "method")
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class DispatcherMetrics:
    """The batching metrics of one serving process, created by it (never at import).

    `registry=None` leaves them unregistered: still recorded (and, under
    `PROMETHEUS_MULTIPROC_DIR`, written for the multiprocess collector), never exposed twice.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.batch_size = Histogram(
            "kubento_runner_batch_size",
            "Rows per model call made by the batching dispatcher.",
            _LABELS,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
            registry=registry,
        )
        self.batch_duration = Histogram(
            "kubento_runner_batch_duration_seconds",
            "Duration of one batched model call.",
            _LABELS,
            buckets=_SECONDS,
            registry=registry,
        )
        self.queue_wait = Histogram(
            "kubento_runner_queue_wait_seconds",
            "Time from a request's admission until its first rows start running.",
            _LABELS,
            buckets=_SECONDS,
            registry=registry,
        )
        self.queue_depth = Gauge(
            contract.QUEUE_DEPTH_METRIC,
            "Rows waiting in the batching queue.",
            _LABELS,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.inflight = Gauge(
            contract.INFLIGHT_METRIC,
            "Rows in batches running on the model now.",
            _LABELS,
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.lanes = Gauge(
            "kubento_runner_lanes",
            "Batches of one method that may run at once: max_concurrency, or what auto chose.",
            _LABELS,
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.rejections = Counter(
            "kubento_runner_rejections",
            "Requests turned away by admission control; reason is queue_full or deadline.",
            (*_LABELS, "reason"),
            registry=registry,
        )


class Timer(Protocol):
    """Where the dispatcher gets the time and its one wake-up from."""

    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.Handle: ...


class LoopTimer:
    """`time.monotonic` and the running event loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.Handle:
        delay = max(0.0, when - time.monotonic())
        return asyncio.get_running_loop().call_later(delay, callback)


class Dispatcher:
    """Batches concurrent `submit` calls into calls of `fn`.

    `fn` is an async callable taking the batched positional arguments (arrays
    concatenated along `batch_dim[0]`, or lists) and returning the batched
    output (an array or list split along `batch_dim[1]`, or a tuple of them).
    Each caller gets exactly its own rows back, or the exception of the batch
    its rows ran in. With `tracing` (None when the process does not trace), each call's
    queue wait, each batch and each model call become spans.
    `lane_bound`: the model threads `fn` may use at once, the most lanes
    `max_concurrency="auto"` may choose.
    """

    def __init__(
        self,
        fn: Callable[..., Awaitable[Any]],
        config: BatchingConfig | BatchPolicy,
        *,
        batch_dim: tuple[int, int] = (0, 0),
        name: str = "",
        method: str = "",
        metrics: DispatcherMetrics | None = None,
        timer: Timer | None = None,
        tracing: DispatchTracing | None = None,
        lane_bound: int = 1,
    ) -> None:
        self._fn = fn if tracing is None else tracing.model(fn)
        self._tracing = tracing
        self._in_dim, self._out_dim = batch_dim
        self._timer_source = timer or LoopTimer()
        self._clock = self._timer_source.now
        if isinstance(config, BatchPolicy):
            self.policy = config
        else:
            self.policy = BatchPolicy(config, clock=self._clock, lane_bound=lane_bound)
        self._name, self._method = name, method
        tuner = self.policy.tuner
        if tuner is not None:
            log.info(
                "runner=%s method=%s event=lanes lanes=1 max_concurrency=auto bound=%d",
                name,
                method,
                tuner.bound,
            )
        self._drive_pending = False
        self._timer: asyncio.Handle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._drained = asyncio.Event()
        metrics = metrics or DispatcherMetrics()
        self._batch_size = metrics.batch_size.labels(name, method)
        self._batch_duration = metrics.batch_duration.labels(name, method)
        self._queue_wait = metrics.queue_wait.labels(name, method)
        self._queue_depth = metrics.queue_depth.labels(name, method)
        self._inflight = metrics.inflight.labels(name, method)
        self._queue_full = metrics.rejections.labels(name, method, "queue_full")
        self._deadline = metrics.rejections.labels(name, method, "deadline")
        self._lanes = metrics.lanes.labels(name, method)
        self._lanes.set(self.policy.lanes)

    @property
    def config(self) -> BatchingConfig:
        return self.policy.config

    async def submit(self, *args: Any, deadline: float | None = None) -> Any:
        """Run this caller's rows in some batch; return exactly their output rows.

        `deadline` is an absolute `time.monotonic()` time. Raises Overloaded or
        DeadlineUnmeetable at once when admission control rejects the call.
        """
        rows, signature = count_rows(args, self._in_dim)
        try:
            request = self.policy.admit(rows, args, signature, deadline)
        except Overloaded:
            self._queue_full.inc()
            raise
        except DeadlineUnmeetable:
            self._deadline.inc()
            raise
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        request.future = future
        if self._tracing is not None:
            self._tracing.admitted(request)
        self._kick()
        try:
            return await future
        except asyncio.CancelledError:
            if self.policy.drop(request):
                self._kick()
            raise

    async def close(self) -> None:
        """Reject new calls, run everything queued, wait for running batches, stop."""
        self.policy.close()
        self._kick()
        await self._drained.wait()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # engine

    def _kick(self) -> None:
        """Decide once the current burst of events is processed (one loop iteration)."""
        if not self._drive_pending:
            self._drive_pending = True
            asyncio.get_running_loop().call_soon(self._drive)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._drive()

    def _drive(self) -> None:
        self._drive_pending = False
        policy = self.policy
        while True:
            decision = policy.decide()
            for request in decision.expired:
                self._fail(
                    request,
                    DeadlineUnmeetable("the request's deadline passed while it was queued"),
                )
            if decision.batch is None:
                break
            self._start(decision.batch)
        self._arm(decision.wake_at)
        self._queue_depth.set(policy.queued_rows)
        self._inflight.set(sum(batch.size for batch in policy.in_flight))
        if policy.closing and policy.idle:
            self._drained.set()

    def _arm(self, wake_at: float | None) -> None:
        if wake_at == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = wake_at
        if wake_at is not None:
            self._timer = self._timer_source.call_at(wake_at, self._on_timer)

    def _start(self, batch: Batch) -> None:
        self._batch_size.observe(batch.size)
        for part in batch.parts:
            if part.start == 0:
                self._queue_wait.observe(batch.started - part.request.enqueued)
        run = self._run(batch)
        if self._tracing is not None:
            run = self._tracing.batch(batch, self._clock(), run)
        task = asyncio.get_running_loop().create_task(run)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: Batch) -> None:
        parts = batch.parts
        try:
            if len(parts) == 1 and parts[0].rows == parts[0].request.rows:
                args = parts[0].request.args
            else:
                args = tuple(
                    join_rows(
                        [
                            take_rows(p.request.args[i], p.start, p.stop, self._in_dim)
                            for p in parts
                        ],
                        self._in_dim,
                    )
                    for i in range(len(parts[0].request.args))
                )
            started = self._clock()
            output = await self._fn(*args)
            duration = self._clock() - started
            pieces = split_rows(output, [part.rows for part in parts], self._out_dim)
        except Exception as exc:
            self.policy.finish(batch, None)
            for part in parts:
                self._fail(part.request, exc)
        except BaseException:
            self.policy.finish(batch, None)
            for part in parts:
                self._fail(part.request, None)
            raise
        else:
            change = self.policy.finish(batch, duration)
            if change is not None:
                self._lanes.set(change.lanes)
                self._log_lanes(change)
            self._batch_duration.observe(duration)
            for part, piece in zip(parts, pieces, strict=True):
                self._deliver(part, piece)
        finally:
            self._kick()

    def _log_lanes(self, change: LaneChange) -> None:
        """The lane count the runner settles on is logged once per change; probes (and the
        probes undone) only at debug level."""
        level = logging.INFO if change.settled else logging.DEBUG
        if not log.isEnabledFor(level):
            return
        compared = "" if change.compared_to is None else f" vs_rows_per_s={change.compared_to:.0f}"
        log.log(
            level,
            "runner=%s method=%s event=lanes lanes=%d was=%d decision=%s rows_per_s=%.0f%s",
            self._name,
            self._method,
            change.lanes,
            change.was,
            change.kind,
            change.rows_per_s,
            compared,
        )

    def _deliver(self, part: Part, piece: Any) -> None:
        request = part.request
        future = request.future
        if future is None or future.done():
            return
        if part.rows == request.rows:
            future.set_result(piece)
            return
        request.pieces.append((part.start, piece))
        request.done_rows += part.rows
        if request.done_rows < request.rows:
            return
        pieces = [piece for _, piece in sorted(request.pieces, key=lambda item: item[0])]
        request.pieces = []
        if isinstance(pieces[0], tuple):
            future.set_result(
                tuple(
                    join_rows([p[i] for p in pieces], self._out_dim) for i in range(len(pieces[0]))
                )
            )
        else:
            future.set_result(join_rows(pieces, self._out_dim))

    def _fail(self, request: Request, exc: BaseException | None) -> None:
        """Fail the caller (cancel it when exc is None) and unqueue its remaining rows."""
        self.policy.drop(request)
        request.pieces = []
        future = request.future
        if future is None or future.done():
            return
        if exc is None:
            future.cancel()
        else:
            future.set_exception(exc)
