"""Dispatcher: the asyncio engine batching real concurrent callers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from kubento.batching import (
    BadBatch,
    BatchingConfig,
    BatchOutputError,
    DeadlineUnmeetable,
    Dispatcher,
    DispatcherMetrics,
    Overloaded,
)


class Model:
    """Records every batch it sees; answers each row with its value times ten."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.batches: list[np.ndarray] = []
        self.release: asyncio.Event | None = None

    async def __call__(self, x: np.ndarray) -> np.ndarray:
        self.batches.append(x.copy())
        if self.release is not None:
            await self.release.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return x * 10


def rows(start: int, count: int) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.float64).reshape(count, 1)


async def test_concurrent_callers_with_mixed_row_counts_get_exactly_their_rows() -> None:
    model = Model(delay=0.002)
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=8))
    counts = [1, 3, 2, 5, 1, 4, 7, 2, 1, 6] * 3
    starts = np.cumsum([0, *counts[:-1]]) * 1.0
    results = await asyncio.gather(
        *(dispatcher.submit(rows(int(s), n)) for s, n in zip(starts, counts, strict=True))
    )
    for result, start, count in zip(results, starts, counts, strict=True):
        assert np.array_equal(result, rows(int(start), count) * 10)
    assert max(len(batch) for batch in model.batches) > 1
    assert all(len(batch) <= 8 for batch in model.batches)
    await dispatcher.close()


async def test_rows_run_in_fifo_order() -> None:
    model = Model()
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=4))
    await asyncio.gather(*(dispatcher.submit(rows(i, 1)) for i in range(10)))
    seen = np.concatenate(model.batches).ravel().tolist()
    assert seen == list(range(10))
    await dispatcher.close()


async def test_a_request_larger_than_max_batch_size_is_split_and_rejoined() -> None:
    model = Model()
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=4))
    result = await dispatcher.submit(rows(0, 10))
    assert np.array_equal(result, rows(0, 10) * 10)
    assert [len(batch) for batch in model.batches] == [4, 4, 2]
    await dispatcher.close()


async def test_batch_dim_in_and_out_are_honoured() -> None:
    seen: list[tuple[int, ...]] = []

    async def transpose(x: np.ndarray) -> np.ndarray:
        seen.append(x.shape)
        return x.T  # rows along dim 1 in, dim 0 out

    dispatcher = Dispatcher(transpose, BatchingConfig(max_batch_size=8), batch_dim=(1, 0))
    a = np.arange(6.0).reshape(2, 3)
    b = np.arange(100.0, 104.0).reshape(2, 2)
    out_a, out_b = await asyncio.gather(dispatcher.submit(a), dispatcher.submit(b))
    assert np.array_equal(out_a, a.T)
    assert np.array_equal(out_b, b.T)
    assert seen == [(2, 5)]
    await dispatcher.close()


async def test_tuple_outputs_and_several_arguments_are_split_per_caller() -> None:
    async def fn(x: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
        return x + 1, [name.upper() for name in names]

    dispatcher = Dispatcher(fn, BatchingConfig(max_batch_size=8))
    first, second = await asyncio.gather(
        dispatcher.submit(rows(0, 2), ["a", "b"]), dispatcher.submit(rows(5, 1), ["c"])
    )
    assert np.array_equal(first[0], rows(0, 2) + 1) and first[1] == ["A", "B"]
    assert np.array_equal(second[0], rows(5, 1) + 1) and second[1] == ["C"]
    await dispatcher.close()


async def test_an_exception_reaches_exactly_the_callers_of_its_batch() -> None:
    async def fn(x: np.ndarray) -> np.ndarray:
        if (x < 0).any():
            raise RuntimeError("negative input")
        return x

    dispatcher = Dispatcher(fn, BatchingConfig(max_batch_size=2))
    results = await asyncio.gather(
        dispatcher.submit(rows(0, 1)),
        dispatcher.submit(rows(-5, 1)),
        dispatcher.submit(rows(3, 1)),
        dispatcher.submit(rows(4, 1)),
        return_exceptions=True,
    )
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], RuntimeError)
    assert np.array_equal(np.asarray(results[2]), rows(3, 1))
    assert np.array_equal(np.asarray(results[3]), rows(4, 1))
    await dispatcher.close()


async def test_an_output_with_the_wrong_row_count_fails_its_callers_clearly() -> None:
    async def fn(x: np.ndarray) -> np.ndarray:
        return x[:1]

    dispatcher = Dispatcher(fn, BatchingConfig(max_batch_size=8))
    with pytest.raises(BatchOutputError, match="one output row per input row"):
        await dispatcher.submit(rows(0, 3))
    await dispatcher.close()


async def test_a_cancelled_callers_queued_rows_are_not_run() -> None:
    model = Model()
    model.release = asyncio.Event()
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=1))
    running = asyncio.create_task(dispatcher.submit(rows(0, 1)))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(dispatcher.submit(rows(1, 1)))
    kept = asyncio.create_task(dispatcher.submit(rows(2, 1)))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    model.release.set()
    assert np.array_equal(await running, rows(0, 1) * 10)
    assert np.array_equal(await kept, rows(2, 1) * 10)
    assert [batch.ravel().tolist() for batch in model.batches] == [[0.0], [2.0]]
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await dispatcher.close()


async def test_a_cancelled_callers_running_rows_are_never_delivered_to_another() -> None:
    model = Model()
    model.release = asyncio.Event()
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=8))
    cancelled = asyncio.create_task(dispatcher.submit(rows(0, 2)))
    kept = asyncio.create_task(dispatcher.submit(rows(2, 1)))
    await asyncio.sleep(0.01)
    assert len(model.batches) == 1
    cancelled.cancel()
    model.release.set()
    assert np.array_equal(await kept, rows(2, 1) * 10)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    await dispatcher.close()


async def test_max_concurrency_batches_run_at_once_and_no_more() -> None:
    running = 0
    most = 0
    release = asyncio.Event()

    async def model(x: np.ndarray) -> np.ndarray:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return x * 10

    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=1, max_concurrency=2))
    calls = [asyncio.create_task(dispatcher.submit(rows(i, 1))) for i in range(5)]
    while running < 2:
        await asyncio.sleep(0)
    for _ in range(10):
        await asyncio.sleep(0)
    assert running == 2
    release.set()
    results = await asyncio.gather(*calls)
    assert [float(r[0, 0]) for r in results] == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert most == 2
    await dispatcher.close()


async def test_a_full_queue_rejects_new_callers_at_once() -> None:
    model = Model()
    model.release = asyncio.Event()
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=2, max_queue_size=3))
    running = asyncio.create_task(dispatcher.submit(rows(0, 2)))
    await asyncio.sleep(0.01)
    queued = asyncio.create_task(dispatcher.submit(rows(2, 3)))
    await asyncio.sleep(0)
    started = time.monotonic()
    with pytest.raises(Overloaded):
        await dispatcher.submit(rows(5, 1))
    assert time.monotonic() - started < 0.01
    model.release.set()
    await asyncio.gather(running, queued)
    await dispatcher.close()


async def test_close_runs_queued_work_then_rejects_new_callers() -> None:
    model = Model(delay=0.005)
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=2))
    calls = [asyncio.create_task(dispatcher.submit(rows(i, 1))) for i in range(5)]
    await asyncio.sleep(0)
    await dispatcher.close()
    assert all(call.done() for call in calls)
    assert [np.asarray(call.result()).item() for call in calls] == [0, 10, 20, 30, 40]
    with pytest.raises(DeadlineUnmeetable, match="shutting down"):
        await dispatcher.submit(rows(9, 1))


async def test_an_idle_dispatcher_arms_no_timer_and_runs_no_task() -> None:
    dispatcher = Dispatcher(Model(), BatchingConfig(max_batch_size=4))
    await asyncio.gather(*(dispatcher.submit(rows(i, 1)) for i in range(6)))
    await asyncio.sleep(0.01)
    assert dispatcher._timer is None
    assert not dispatcher._tasks
    await dispatcher.close()


async def test_metrics_record_batches_waits_depth_and_rejections() -> None:
    labels = {"runner": "metrics-test", "method": "predict"}
    registry = CollectorRegistry()
    model = Model()
    model.release = asyncio.Event()
    dispatcher = Dispatcher(
        model,
        BatchingConfig(max_batch_size=4, max_queue_size=4),
        name="metrics-test",
        method="predict",
        metrics=DispatcherMetrics(registry),
    )
    first = asyncio.create_task(dispatcher.submit(rows(0, 1)))
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(dispatcher.submit(rows(i, 1))) for i in range(1, 5)]
    await asyncio.sleep(0.01)
    assert registry.get_sample_value("kubento_runner_queue_depth", labels) == 4
    with pytest.raises(Overloaded):
        await dispatcher.submit(rows(9, 1))
    model.release.set()
    await asyncio.gather(first, *queued)
    assert registry.get_sample_value("kubento_runner_batch_size_count", labels) == 2
    assert registry.get_sample_value("kubento_runner_batch_size_sum", labels) == 5
    assert registry.get_sample_value("kubento_runner_queue_wait_seconds_count", labels) == 5
    assert registry.get_sample_value("kubento_runner_queue_depth", labels) == 0
    assert (
        registry.get_sample_value(
            "kubento_runner_rejections_total", {**labels, "reason": "queue_full"}
        )
        == 1
    )
    await dispatcher.close()


async def test_inflight_rows_count_the_running_batches_not_the_queue() -> None:
    labels = {"runner": "inflight-test", "method": "predict"}
    registry = CollectorRegistry()
    release = asyncio.Event()

    async def model(x: np.ndarray) -> np.ndarray:
        await release.wait()
        return x * 10

    dispatcher = Dispatcher(
        model,
        BatchingConfig(max_batch_size=3, max_concurrency=2),
        name="inflight-test",
        method="predict",
        metrics=DispatcherMetrics(registry),
    )
    calls = [asyncio.create_task(dispatcher.submit(rows(i, 3))) for i in range(3)]
    await asyncio.sleep(0.01)
    # Two batches of 3 rows run (max_concurrency=2); the third call's 3 rows wait.
    assert registry.get_sample_value("kubento_runner_inflight_rows", labels) == 6
    assert registry.get_sample_value("kubento_runner_queue_depth", labels) == 3
    release.set()
    await asyncio.gather(*calls)
    assert registry.get_sample_value("kubento_runner_inflight_rows", labels) == 0
    assert registry.get_sample_value("kubento_runner_queue_depth", labels) == 0
    await dispatcher.close()


async def test_bad_arguments_are_rejected_before_queueing() -> None:
    dispatcher = Dispatcher(Model(), BatchingConfig())
    with pytest.raises(BadBatch, match="argument 1 has 1 rows"):
        await dispatcher.submit(rows(0, 2), rows(0, 1))
    assert dispatcher.policy.queued_rows == 0
    await dispatcher.close()


class FakeTimer:
    """A clock that moves only when told to, and fires the dispatcher's timer when due."""

    def __init__(self) -> None:
        self.time = 1000.0
        self.pending: list[tuple[float, asyncio.TimerHandle]] = []

    def now(self) -> float:
        return self.time

    def call_at(self, when: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        # A handle that never fires by itself; advance() runs it when its time comes.
        handle = asyncio.get_running_loop().call_later(3600, callback)
        self.pending.append((when, handle))
        return handle

    async def advance(self, seconds: float) -> None:
        self.time += seconds
        due = [(when, h) for when, h in self.pending if when <= self.time and not h.cancelled()]
        self.pending = [(when, h) for when, h in self.pending if when > self.time]
        for _, handle in due:
            handle.cancel()
            handle._run()
        for _ in range(3):  # let the started batches and their callers run
            await asyncio.sleep(0)


async def test_a_request_whose_deadline_passes_in_the_queue_fails_with_deadline_unmeetable() -> (
    None
):
    timer = FakeTimer()
    model = Model()
    model.release = asyncio.Event()
    dispatcher = Dispatcher(model, BatchingConfig(max_batch_size=1), timer=timer)
    running = asyncio.create_task(dispatcher.submit(rows(0, 1)))
    await asyncio.sleep(0)
    late = asyncio.create_task(dispatcher.submit(rows(1, 1), deadline=timer.now() + 0.01))
    await asyncio.sleep(0)
    await timer.advance(0.02)
    model.release.set()
    await running
    with pytest.raises(DeadlineUnmeetable, match="passed while it was queued"):
        await asyncio.wait_for(late, 5)
    assert len(model.batches) == 1
    await dispatcher.close()


async def test_on_a_fake_clock_a_waiting_batch_starts_when_the_policy_wakes_it() -> None:
    timer = FakeTimer()
    model = Model()
    config = BatchingConfig(max_batch_size=8, max_latency_ms=50)
    dispatcher = Dispatcher(model, config, timer=timer)
    # A steady trickle teaches the policy that more rows are coming, so it waits for them.
    for i in range(20):
        await dispatcher.submit(rows(i, 1))
        await timer.advance(0.001)
    call = asyncio.create_task(dispatcher.submit(rows(100, 1)))
    await asyncio.sleep(0)
    started_batches = len(model.batches)
    waited = 0.0
    while not call.done() and waited < 0.05:
        await timer.advance(0.001)
        waited += 0.001
    assert call.done(), "the batching budget bounds the wait, on any clock"
    assert waited > 0, "the lone row waited for company, and only the timer started it"
    assert np.asarray(call.result()).item() == 1000
    assert len(model.batches) == started_batches + 1
    await dispatcher.close()
