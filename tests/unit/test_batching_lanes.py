"""max_concurrency="auto": the lane tuner's decision rule on a fake clock with a fake
machine, and the dispatcher that follows it (logging each decision once)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import numpy as np
import pytest

from kubento.batching import BatchingConfig, BatchPolicy, Dispatcher
from kubento.batching.lanes import FIRST_BACKOFF_S, RECHECK_S, LaneChange, LaneTuner

BATCH = 32


class Machine:
    """A fake machine: with k lanes busy the model finishes `capacity(k)` rows per second,
    in batches of BATCH rows; `backlog` says whether rows wait when a batch ends."""

    def __init__(self, capacity: Callable[[int], float], backlog: bool = True) -> None:
        self.capacity = capacity
        self.backlog = backlog
        self.now = 0.0

    def run(self, tuner: LaneTuner, seconds: float) -> list[LaneChange]:
        changes = []
        stop = self.now + seconds
        while self.now < stop:
            self.now += BATCH / self.capacity(tuner.lanes)
            change = tuner.finished(self.now, BATCH, self.backlog)
            if change is not None:
                changes.append(change)
        return changes


def rates(table: dict[int, float]) -> Callable[[int], float]:
    return lambda lanes: table[lanes]


def test_a_second_lane_that_raises_rows_per_second_is_kept_and_logged_once() -> None:
    machine = Machine(rates({1: 1000, 2: 1800}))
    tuner = LaneTuner(2, machine.now)
    changes = machine.run(tuner, 20)
    assert tuner.lanes == 2
    assert [c.kind for c in changes] == ["probe", "kept"]
    assert [c for c in changes if c.settled] == [
        LaneChange(2, 1, "kept", pytest.approx(1800), pytest.approx(1000))  # type: ignore[arg-type]
    ]


def test_a_lane_that_adds_less_than_the_gain_is_taken_away_and_retried_ever_later() -> None:
    machine = Machine(rates({1: 1000, 2: 1050}))  # the model holds the GIL, say
    tuner = LaneTuner(2, machine.now)
    changes = machine.run(tuner, 120)
    assert tuner.lanes == 1
    assert not any(c.settled for c in changes)
    probes = [c for c in changes if c.kind == "probe"]
    # Backoff doubles from FIRST_BACKOFF_S: 5, 10, 20, 40 s... a handful of probes, not 100.
    assert 3 <= len(probes) <= 6
    reverted = [c for c in changes if c.kind == "reverted"]
    assert [c.lanes for c in reverted] == [1] * len(probes)


def test_lanes_climb_while_each_pays_and_stop_at_the_first_that_does_not() -> None:
    machine = Machine(rates({1: 1000, 2: 1900, 3: 2700, 4: 2800}))
    tuner = LaneTuner(4, machine.now)
    changes = machine.run(tuner, 25)
    assert tuner.lanes == 3
    assert [c.lanes for c in changes if c.settled] == [2, 3]


def test_lanes_never_pass_the_bound() -> None:
    machine = Machine(rates({1: 1000, 2: 2000}))
    tuner = LaneTuner(2, machine.now)
    machine.run(tuner, 60)
    assert tuner.lanes == 2


def test_no_probe_while_the_callers_not_the_model_set_the_pace() -> None:
    machine = Machine(rates({1: 1000, 2: 2000}), backlog=False)
    tuner = LaneTuner(2, machine.now)
    assert machine.run(tuner, 60) == []
    assert tuner.lanes == 1


def test_an_extra_lane_is_taken_away_when_the_cores_get_busy() -> None:
    table = {1: 1000.0, 2: 1800.0}
    machine = Machine(rates(table))
    tuner = LaneTuner(2, machine.now)
    machine.run(tuner, 5)
    assert tuner.lanes == 2
    table[2] = 900.0  # the API server now wants the second core: two lanes fight over one
    changes = machine.run(tuner, RECHECK_S + 5)
    assert tuner.lanes == 1
    assert [(c.lanes, c.was) for c in changes if c.settled] == [(1, 2)]


def test_a_pause_between_batches_is_not_counted_as_slow_lanes() -> None:
    machine = Machine(rates({1: 1000, 2: 1800}))
    tuner = LaneTuner(2, machine.now)
    machine.run(tuner, 0.6)
    machine.now += 30  # traffic stops, then comes back
    machine.run(tuner, 10)
    assert tuner.lanes == 2


def test_a_probe_that_failed_waits_its_backoff_before_the_next() -> None:
    machine = Machine(rates({1: 1000, 2: 1000}))
    tuner = LaneTuner(2, machine.now)
    first = machine.run(tuner, 3)
    assert [c.kind for c in first] == ["probe", "reverted"]
    assert machine.run(tuner, FIRST_BACKOFF_S - 1.5) == []


def test_an_explicit_max_concurrency_wins_over_auto() -> None:
    policy = BatchPolicy(BatchingConfig(max_concurrency=3), lane_bound=8)
    assert (policy.tuner, policy.lanes) == (None, 3)


def test_auto_starts_with_one_lane_and_a_tuner_bounded_by_the_worker() -> None:
    policy = BatchPolicy(BatchingConfig(), lane_bound=2)
    assert policy.lanes == 1
    assert policy.tuner is not None and policy.tuner.bound == 2
    assert BatchPolicy(BatchingConfig(), lane_bound=1).tuner is None


async def test_the_dispatcher_adds_a_lane_that_pays_and_logs_the_decision_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A model that waits (like a GIL-free numpy call on a free core): two batches at once
    finish twice the rows per second, so "auto" keeps the second lane."""
    running = 0
    most = 0

    async def model(x: np.ndarray) -> np.ndarray:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.01)
        running -= 1
        return x

    dispatcher = Dispatcher(
        model, BatchingConfig(max_batch_size=4, max_latency_ms=1), lane_bound=2, name="r"
    )
    row = np.zeros((1, 1))
    tuner = dispatcher.policy.tuner
    assert tuner is not None

    async def caller() -> None:
        loop = asyncio.get_running_loop()
        stop = loop.time() + 5.0
        while loop.time() < stop and tuner.settled < 2:
            await dispatcher.submit(row)

    with caplog.at_level(logging.INFO, logger="kubento.batching"):
        await asyncio.gather(*(caller() for _ in range(16)))
    await dispatcher.close()
    assert dispatcher.policy.lanes == 2
    assert most == 2
    decisions = [r.getMessage() for r in caplog.records if "decision=" in r.getMessage()]
    assert len(decisions) == 1
    assert "runner=r method= event=lanes lanes=2 was=1 decision=kept" in decisions[0]
