"""BatchPolicy: admission, FIFO batch formation and waiting, on a fake clock."""

from __future__ import annotations

import pytest

from kubento.batching import (
    Batch,
    BatchingConfig,
    BatchPolicy,
    DeadlineUnmeetable,
    NeverFits,
    Overloaded,
    Request,
)
from kubento.batching.latency import LatencyModel


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_policy(
    clock: FakeClock,
    *,
    max_batch_size: int = 4,
    max_latency_ms: float = 100,
    max_queue_size: int = 1024,
    timeout_ms: float | None = None,
    max_concurrency: int = 1,
    max_queue_wait_ms: float | None = None,
    latency: dict[int, float] | None = None,
) -> BatchPolicy:
    config = BatchingConfig(
        max_batch_size=max_batch_size,
        max_latency_ms=max_latency_ms,
        max_queue_size=max_queue_size,
        timeout_ms=timeout_ms,
        max_concurrency=max_concurrency,
        max_queue_wait_ms=max_queue_wait_ms,
    )
    model = LatencyModel(max_batch_size, prior=latency)
    return BatchPolicy(config, clock=clock, latency=model)


def rows_of(policy_batch_parts: list, requests: list[Request]) -> list[tuple[int, int, int]]:
    """(request index, start, stop) of each part, for readable assertions."""
    return [(requests.index(p.request), p.start, p.stop) for p in policy_batch_parts]


def drain(policy: BatchPolicy, requests: list[Request]) -> list[list[tuple[int, int, int]]]:
    """Run batches until the queue is empty; `rows_of` each batch, in order."""
    batches = []
    while policy.queued_rows:
        batch = policy.decide().batch
        assert batch is not None
        batches.append(rows_of(batch.parts, requests))
        policy.finish(batch, 0.001)
    return batches


FIXED_10MS = {1: 0.010, 4: 0.0103}
"""Fixed cost 10 ms per call, 0.1 ms per row: waiting for company pays."""


def two_rows_in_a_burst(policy: BatchPolicy, clock: FakeClock) -> Request:
    """Admit one row, then another 0.1 ms later; return the first."""
    first = policy.admit(1, signature="s")
    clock.advance(0.0001)
    policy.admit(1, signature="s")
    return first


def test_a_full_batch_dispatches_at_once() -> None:
    clock = FakeClock()
    # A trained model whose fixed cost makes waiting attractive: only a full batch runs now.
    policy = make_policy(clock, latency={1: 0.010, 4: 0.011})
    requests = []
    for _ in range(4):
        requests.append(policy.admit(1, signature="s"))
        clock.advance(0.0001)
    decision = policy.decide()
    assert decision.batch is not None
    assert decision.batch.size == 4
    assert rows_of(decision.batch.parts, requests) == [(0, 0, 1), (1, 0, 1), (2, 0, 1), (3, 0, 1)]


def test_an_untrained_policy_runs_what_is_queued_without_waiting() -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    policy.admit(1, signature="s")
    decision = policy.decide()
    assert decision.batch is not None and decision.batch.size == 1


def test_rows_arriving_in_a_burst_wait_for_the_batch_to_fill() -> None:
    clock = FakeClock()
    policy = make_policy(clock, latency=FIXED_10MS)
    two_rows_in_a_burst(policy, clock)
    decision = policy.decide()
    assert decision.batch is None
    assert decision.wake_at is not None and decision.wake_at > clock.now


def test_waiting_stops_when_arrivals_pause() -> None:
    clock = FakeClock()
    policy = make_policy(clock, latency=FIXED_10MS)
    two_rows_in_a_burst(policy, clock)
    wake_at = policy.decide().wake_at
    assert wake_at is not None
    clock.now = wake_at
    decision = policy.decide()
    assert decision.batch is not None and decision.batch.size == 2


def test_slow_arrivals_are_not_waited_for() -> None:
    clock = FakeClock()
    # Arrivals 20 ms apart against a 10 ms model: the next row costs more to wait for.
    policy = make_policy(clock, latency=FIXED_10MS)
    for _ in range(3):
        policy.admit(1, signature="s")
        decision = policy.decide()
        assert decision.batch is not None and decision.batch.size == 1
        clock.advance(0.010)
        policy.finish(decision.batch, 0.010)
        clock.advance(0.010)


def test_waiting_never_passes_the_head_requests_batching_budget() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_latency_ms=0.3, latency=FIXED_10MS)
    first = two_rows_in_a_burst(policy, clock)
    wake_at = policy.decide().wake_at
    assert wake_at is not None
    assert wake_at <= first.budget


def test_waiting_never_makes_a_queued_request_miss_its_deadline() -> None:
    clock = FakeClock()
    policy = make_policy(clock, latency=FIXED_10MS)
    policy.admit(1, signature="s")
    clock.advance(0.0001)
    # This row needs the model (10.1 ms for two rows) to start within 0.2 ms.
    policy.admit(1, signature="s", deadline=clock.now + 0.0103)
    decision = policy.decide()
    assert decision.wake_at is None or decision.wake_at + 0.0101 <= clock.now + 0.0103
    if decision.batch is None:
        clock.now = decision.wake_at  # type: ignore[assignment]
        decision = policy.decide()
    assert decision.batch is not None


def test_batches_take_rows_in_fifo_order() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=3)
    requests = [policy.admit(1, signature="s") for _ in range(5)]
    first = policy.decide().batch
    assert first is not None
    clock.advance(0.001)
    policy.finish(first, 0.001)
    second = policy.decide().batch
    assert second is not None
    assert rows_of(first.parts, requests) == [(0, 0, 1), (1, 0, 1), (2, 0, 1)]
    assert rows_of(second.parts, requests) == [(3, 0, 1), (4, 0, 1)]


def test_callers_with_different_row_counts_share_a_batch() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=8)
    requests = [policy.admit(n, signature="s") for n in (3, 1, 4)]
    batch = policy.decide().batch
    assert batch is not None
    assert rows_of(batch.parts, requests) == [(0, 0, 3), (1, 0, 1), (2, 0, 4)]


def test_a_request_larger_than_max_batch_size_is_split_across_batches() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=4)
    requests = [policy.admit(10, signature="s")]
    assert drain(policy, requests) == [[(0, 0, 4)], [(0, 4, 8)], [(0, 8, 10)]]


def test_a_request_that_does_not_fit_is_split_to_fill_the_batch() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=4)
    requests = [policy.admit(3, signature="s"), policy.admit(3, signature="s")]
    first = policy.decide().batch
    assert first is not None
    clock.advance(0.001)
    policy.finish(first, 0.001)
    second = policy.decide().batch
    assert second is not None
    assert rows_of(first.parts, requests) == [(0, 0, 3), (1, 0, 1)]
    assert rows_of(second.parts, requests) == [(1, 1, 3)]


def test_requests_of_different_layout_never_share_a_batch() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=8)
    requests = [
        policy.admit(1, signature="float32[4]"),
        policy.admit(1, signature="float64[4]"),
        policy.admit(1, signature="float32[4]"),
    ]
    assert drain(policy, requests) == [[(0, 0, 1)], [(1, 0, 1)], [(2, 0, 1)]]


def test_only_one_batch_runs_at_once() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=2)
    for _ in range(6):
        policy.admit(1, signature="s")
    first = policy.decide().batch
    assert first is not None
    assert policy.decide().batch is None
    policy.finish(first, 0.001)
    assert policy.decide().batch is not None


def test_max_concurrency_batches_run_at_once() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=2, max_concurrency=2)
    for _ in range(6):
        policy.admit(1, signature="s")
    first, second = policy.decide().batch, policy.decide().batch
    assert first is not None and second is not None
    assert policy.decide().batch is None
    policy.finish(first, 0.001)
    assert policy.decide().batch is not None


FIXED_COST = {1: 0.010, 4: 0.012}
"""10 ms per call whatever its size: one row alone costs 10 ms/row, a full batch 3."""


def one_batch_running(clock: FakeClock, latency: dict[int, float]) -> tuple[BatchPolicy, Batch]:
    """A two-lane policy with a full batch of 4 running on one lane."""
    policy = make_policy(clock, max_concurrency=2, latency=latency)
    policy.admit(4, signature="s")
    running = policy.decide().batch
    assert running is not None
    return policy, running


def test_a_small_run_waits_for_a_lane_rather_than_run_beside_a_batch_when_calls_cost_a_lot() -> (
    None
):
    clock = FakeClock()
    policy, running = one_batch_running(clock, FIXED_COST)
    policy.admit(1, signature="s")
    held = policy.decide()
    assert held.batch is None
    assert held.wake_at == pytest.approx(clock.now + 0.100)  # at most the batching budget
    policy.finish(running, 0.012)
    clock.advance(0.001)  # arrivals paused: nothing more to wait for
    assert policy.decide().batch is not None


def test_a_run_worth_a_call_of_its_own_starts_beside_a_running_batch() -> None:
    clock = FakeClock()
    policy, _ = one_batch_running(clock, FIXED_COST)
    policy.admit(3, signature="s")  # ~3.8 ms/row: within twice a full batch's 3 ms/row
    clock.advance(0.001)
    beside = policy.decide().batch
    assert beside is not None and beside.size == 3


def test_a_model_without_fixed_cost_runs_single_rows_beside_a_batch() -> None:
    clock = FakeClock()
    policy, _ = one_batch_running(clock, {1: 0.001, 4: 0.004})
    policy.admit(1, signature="s")
    clock.advance(0.001)
    assert policy.decide().batch is not None


def test_a_held_run_starts_once_the_heads_budget_is_spent() -> None:
    clock = FakeClock()
    policy, _ = one_batch_running(clock, FIXED_COST)
    policy.admit(1, signature="s")
    assert policy.decide().batch is None
    clock.advance(0.099)  # arrivals long paused: only the hold keeps it back
    assert policy.decide().batch is None
    clock.advance(0.001)
    assert policy.decide().batch is not None


def test_queued_batches_drain_over_every_model_thread_in_the_forecast() -> None:
    # 10 ms per full batch, 35 ms allowed wait, 4 full batches queued ahead: on one
    # thread the next row would wait 40 ms (rejected), on two about 20 ms.
    for concurrency, admitted in ((1, False), (2, True)):
        clock = FakeClock()
        policy = make_policy(
            clock,
            max_latency_ms=35,
            max_queue_wait_ms=35,
            latency={4: 0.010},
            max_concurrency=concurrency,
        )
        for _ in range(4):
            policy.admit(4, signature="s")
        try:
            policy.admit(1, signature="s")
        except DeadlineUnmeetable:
            assert not admitted, f"rejected with max_concurrency={concurrency}"
        else:
            assert admitted, f"admitted with max_concurrency={concurrency}"


def test_max_concurrency_must_be_a_positive_int() -> None:
    with pytest.raises(ValueError, match="max_concurrency must be an integer from 1 to 64"):
        BatchingConfig(max_concurrency=0)
    with pytest.raises(TypeError, match="max_concurrency must be an integer"):
        BatchingConfig(max_concurrency=True)


def test_a_full_queue_rejects_at_once() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_queue_size=4)
    policy.admit(3, signature="s")
    with pytest.raises(Overloaded, match="queue is full"):
        policy.admit(2, signature="s")
    policy.admit(1, signature="s")
    assert policy.queued_rows == 4


def test_a_request_larger_than_the_queue_is_the_callers_mistake_not_overload() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_queue_size=4)
    with pytest.raises(NeverFits, match="smaller requests"):
        policy.admit(5, signature="s")


def test_a_zero_queue_size_means_unbounded() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_queue_size=0)
    policy.admit(100_000, signature="s")
    assert policy.queued_rows == 100_000


def test_the_batching_budget_alone_never_rejects_a_request_that_fits() -> None:
    clock = FakeClock()
    # 10 ms per full batch, 50 ms budget: 6 full batches ahead means ~60 ms of waiting.
    policy = make_policy(clock, max_latency_ms=50, latency={4: 0.010})
    for _ in range(6):
        policy.admit(4, signature="s")
    policy.admit(1, signature="s")
    assert policy.queued_rows == 25


def test_opted_in_a_request_that_would_wait_past_max_queue_wait_is_rejected_at_once() -> None:
    clock = FakeClock()
    # 10 ms per full batch, 50 ms allowed: 6 full batches ahead means ~60 ms of waiting.
    policy = make_policy(clock, max_latency_ms=50, max_queue_wait_ms=50, latency={4: 0.010})
    for _ in range(6):
        policy.admit(4, signature="s")
    with pytest.raises(DeadlineUnmeetable, match="max_queue_wait_ms=50") as info:
        policy.admit(1, signature="s")
    assert info.value.retry_after_s == pytest.approx(0.010)
    assert policy.queued_rows == 24


def test_a_cold_runner_does_not_shed_on_a_full_batch_time_guessed_from_tiny_ones() -> None:
    clock = FakeClock()
    # Only a batch of 1 seen (10 ms): per row, a full batch of 64 would be 640 ms.
    policy = make_policy(
        clock, max_batch_size=64, max_latency_ms=50, max_queue_wait_ms=50, latency={1: 0.010}
    )
    for _ in range(3):
        policy.admit(64, signature="s")
    policy.admit(1, signature="s")
    assert policy.queued_rows == 193


def test_admission_forecasts_once_a_batch_of_a_quarter_of_the_maximum_was_seen() -> None:
    clock = FakeClock()
    policy = make_policy(
        clock, max_batch_size=64, max_latency_ms=50, max_queue_wait_ms=50, latency={1: 0.010}
    )
    policy.latency.observe(16, 0.015)  # a full batch: about 60 ms
    policy.admit(64, signature="s")
    with pytest.raises(DeadlineUnmeetable, match="max_queue_wait_ms"):
        policy.admit(1, signature="s")


def test_a_request_finding_no_queue_is_admitted_however_slow_the_running_batch() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_latency_ms=50, max_queue_wait_ms=50, latency={4: 0.200})
    policy.admit(4, signature="s")
    assert policy.decide().batch is not None
    policy.admit(1, signature="s")
    assert policy.queued_rows == 1


def test_the_running_batch_counts_once_a_full_batch_is_queued_ahead() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_latency_ms=50, max_queue_wait_ms=50, latency={4: 0.030})
    policy.admit(4, signature="s")
    assert policy.decide().batch is not None
    policy.admit(4, signature="s")
    with pytest.raises(DeadlineUnmeetable, match="max_queue_wait_ms"):
        policy.admit(1, signature="s")


def test_a_request_whose_deadline_cannot_be_met_is_rejected_at_once() -> None:
    clock = FakeClock()
    policy = make_policy(clock, latency={4: 0.010})
    for _ in range(2):
        policy.admit(4, signature="s")
    with pytest.raises(DeadlineUnmeetable, match="deadline"):
        policy.admit(1, signature="s", deadline=clock.now + 0.025)
    policy.admit(1, signature="s", deadline=clock.now + 0.035)


def test_timeout_ms_bounds_the_deadline_of_requests_without_one() -> None:
    clock = FakeClock()
    policy = make_policy(clock, timeout_ms=20)
    request = policy.admit(1, signature="s")
    early = policy.admit(1, signature="s", deadline=clock.now + 0.005)
    assert request.deadline == pytest.approx(clock.now + 0.020)
    assert early.deadline == pytest.approx(clock.now + 0.005)


def test_a_past_deadline_is_rejected() -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    with pytest.raises(DeadlineUnmeetable, match="already passed"):
        policy.admit(1, signature="s", deadline=clock.now - 1)


def test_a_request_whose_deadline_passes_in_the_queue_expires_instead_of_running() -> None:
    clock = FakeClock()
    policy = make_policy(clock)
    running = policy.admit(1, signature="s")
    batch = policy.decide().batch
    assert batch is not None
    late = policy.admit(1, signature="s", deadline=clock.now + 0.005)
    kept = policy.admit(1, signature="s")
    clock.advance(0.010)
    policy.finish(batch, 0.010)
    decision = policy.decide()
    assert decision.expired == [late]
    assert decision.batch is not None
    assert [p.request for p in decision.batch.parts] == [kept]
    assert running.taken == 1


def test_dropped_rows_are_not_run() -> None:
    clock = FakeClock()
    policy = make_policy(clock, max_batch_size=8)
    requests = [policy.admit(2, signature="s") for _ in range(3)]
    assert policy.drop(requests[1])
    assert policy.queued_rows == 4
    batch = policy.decide().batch
    assert batch is not None
    assert rows_of(batch.parts, requests) == [(0, 0, 2), (2, 0, 2)]


def test_a_closing_policy_rejects_new_requests_and_drains_without_waiting() -> None:
    clock = FakeClock()
    policy = make_policy(clock, latency=FIXED_10MS)
    two_rows_in_a_burst(policy, clock)
    policy.close()
    with pytest.raises(DeadlineUnmeetable, match="shutting down"):
        policy.admit(1, signature="s")
    batch = policy.decide().batch
    assert batch is not None and batch.size == 2
