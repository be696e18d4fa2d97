"""Coalescer: same-turn calls to a batchable runner method share one runner call."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from kubento._remote.coalescing import Coalescer
from kubento._tracing import Carrier
from kubento.batching import NeverFits
from kubento.exceptions import RunnerOverloaded


class Runner:
    """Records every call it gets; answers each row with its value times ten."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.calls: list[tuple[tuple[Any, ...], tuple[str, ...]]] = []
        self.traces: list[tuple[Carrier, ...]] = []
        self.fail = fail
        self.release: asyncio.Event | None = None

    async def __call__(
        self, args: tuple[Any, ...], request_ids: tuple[str, ...], traces: tuple[Carrier, ...]
    ) -> Any:
        self.calls.append((args, request_ids))
        self.traces.append(traces)
        if self.release is not None:
            await self.release.wait()
        if self.fail is not None:
            raise self.fail
        return args[0] * 10


def rows(start: int, count: int, width: int = 1, dtype: str = "float64") -> np.ndarray:
    return np.arange(start, start + count * width, dtype=dtype).reshape(count, width)


def coalescer(runner: Runner, max_rows: int = 64, batch_dim: tuple[int, int] = (0, 0)) -> Coalescer:
    return Coalescer(runner, batch_dim, max_rows=max_rows)


async def test_calls_in_one_turn_share_a_runner_call_and_get_exactly_their_rows() -> None:
    runner = Runner()
    c = coalescer(runner)
    counts = [1, 3, 2, 5, 1]
    starts = np.cumsum([0, *counts[:-1]])
    results = await asyncio.gather(
        *(
            c.call((rows(int(s), n),), f"r{i}")
            for i, (s, n) in enumerate(zip(starts, counts, strict=True))
        )
    )
    assert len(runner.calls) == 1
    (joined,), ids = runner.calls[0]
    assert joined.shape == (12, 1)
    assert ids == ("r0", "r1", "r2", "r3", "r4")
    for result, s, n in zip(results, starts, counts, strict=True):
        assert np.array_equal(result, rows(int(s), n) * 10)


async def test_calls_in_different_turns_are_not_held_back() -> None:
    runner = Runner()
    c = coalescer(runner)
    first = await c.call((rows(0, 1),), "a")
    second = await c.call((rows(1, 1),), "b")
    assert [ids for _, ids in runner.calls] == [("a",), ("b",)]
    assert np.array_equal(first, [[0.0]]) and np.array_equal(second, [[10.0]])


async def test_incompatible_arguments_go_in_separate_calls() -> None:
    runner = Runner()
    c = coalescer(runner)
    wide, narrow, ints = await asyncio.gather(
        c.call((rows(0, 2, width=3),), "wide"),
        c.call((rows(0, 2, width=1),), "narrow"),
        c.call((rows(0, 2, width=1, dtype="int32"),), "ints"),
    )
    assert sorted(ids for _, ids in runner.calls) == [("ints",), ("narrow",), ("wide",)]
    assert wide.shape == (2, 3) and narrow.shape == (2, 1) and ints.dtype == np.int32


async def test_a_malformed_call_goes_alone_so_its_error_stays_its_own() -> None:
    runner = Runner()
    c = coalescer(runner)
    await asyncio.gather(
        c.call((rows(0, 1),), "good"),
        c.call((rows(0, 2), rows(0, 3)), "rows disagree"),
        c.call((np.float64(1.0),), "scalar"),
        c.call((rows(1, 1),), "good too"),
    )
    groups = sorted(ids for _, ids in runner.calls)
    assert groups == [("good", "good too"), ("rows disagree",), ("scalar",)]


async def test_a_group_never_exceeds_max_rows() -> None:
    runner = Runner()
    c = coalescer(runner, max_rows=4)
    results = await asyncio.gather(*(c.call((rows(i * 3, 3),), f"r{i}") for i in range(5)))
    assert [len(args[0]) for args, _ in runner.calls] == [3, 3, 3, 3, 3]
    big = await c.call((rows(0, 9),), "big")  # over max_rows on its own: sent as it is
    assert len(runner.calls[-1][0][0]) == 9 and big.shape == (9, 1)
    assert all(np.array_equal(r, rows(i * 3, 3) * 10) for i, r in enumerate(results))


async def test_groups_fill_up_to_max_rows() -> None:
    runner = Runner()
    c = coalescer(runner, max_rows=4)
    await asyncio.gather(*(c.call((rows(i, 1),), f"r{i}") for i in range(10)))
    assert [len(args[0]) for args, _ in runner.calls] == [4, 4, 2]


async def test_a_runner_error_reaches_every_caller_in_the_group() -> None:
    runner = Runner(fail=RunnerOverloaded("runner 'm' is overloaded", retry_after_s=2))
    c = coalescer(runner)
    results = await asyncio.gather(
        *(c.call((rows(i, 1),), f"r{i}") for i in range(3)), return_exceptions=True
    )
    assert len(runner.calls) == 1
    assert all(isinstance(r, RunnerOverloaded) for r in results)


async def test_a_caller_that_gives_up_does_not_disturb_the_others() -> None:
    runner = Runner()
    runner.release = asyncio.Event()
    c = coalescer(runner)
    quitter = asyncio.create_task(c.call((rows(0, 1),), "quitter"))
    stayer = asyncio.create_task(c.call((rows(1, 1),), "stayer"))
    while not runner.calls:
        await asyncio.sleep(0)
    quitter.cancel()
    runner.release.set()
    assert np.array_equal(await stayer, [[10.0]])
    with pytest.raises(asyncio.CancelledError):
        await quitter


async def test_batch_dim_tuple_joins_along_input_dim_and_splits_along_output_dim() -> None:
    class Transposing(Runner):
        async def __call__(
            self, args: tuple[Any, ...], request_ids: tuple[str, ...], traces: tuple[Carrier, ...]
        ) -> Any:
            self.calls.append((args, request_ids))
            return args[0].T * 10  # rows along dim 1 in, dim 0 out

    runner = Transposing()
    c = coalescer(runner, batch_dim=(1, 0))
    a, b = await asyncio.gather(
        c.call((rows(0, 2, width=3).T,), "a"),  # 3 x 2: two rows along dim 1
        c.call((rows(6, 1, width=3).T,), "b"),
    )
    assert runner.calls[0][0][0].shape == (3, 3)
    assert np.array_equal(a, rows(0, 2, width=3) * 10)
    assert np.array_equal(b, rows(6, 1, width=3) * 10)


async def test_lists_are_joined_and_split_as_lists() -> None:
    calls: list[tuple[Any, ...]] = []

    async def tag(
        args: tuple[Any, ...], request_ids: tuple[str, ...], traces: tuple[Carrier, ...]
    ) -> Any:
        calls.append(args)
        return [f"<{item}>" for item in args[0]]

    c = Coalescer(tag, (0, 0), max_rows=64)
    a, b = await asyncio.gather(c.call((["x", "y"],), "a"), c.call((["z"],), "b"))
    assert calls == [(["x", "y", "z"],)]
    assert a == ["<x>", "<y>"] and b == ["<z>"]


async def test_observe_counts_callers_per_runner_call() -> None:
    seen: list[int] = []
    c = Coalescer(Runner(), (0, 0), max_rows=64, observe=seen.append)
    await asyncio.gather(*(c.call((rows(i, 1),), f"r{i}") for i in range(5)))
    await c.call((rows(0, 1),), "alone")
    assert seen == [5, 1]


async def test_a_call_that_can_never_be_queued_is_refused_before_it_is_sent() -> None:
    runner = Runner()
    c = Coalescer(runner, (0, 0), max_rows=4, max_queue=8)
    with pytest.raises(NeverFits, match="9 rows, more than the queue holds"):
        await c.call((rows(0, 9),), "big")
    assert runner.calls == []
    # A call that fits still goes, and a group never outgrows max_rows.
    results = await asyncio.gather(*(c.call((rows(i, 1),), f"r{i}") for i in range(6)))
    assert [len(args[0]) for args, _ in runner.calls] == [4, 2]
    assert [int(r[0, 0]) for r in results] == [i * 10 for i in range(6)]


async def test_each_callers_trace_context_reaches_the_shared_call_in_caller_order() -> None:
    runner = Runner()
    c = coalescer(runner)
    traces = [(f"00-{i:032x}-{i:016x}-01", f"k=v{i}") for i in range(1, 4)]
    await asyncio.gather(*(c.call((rows(i, 1),), f"r{i}", trace) for i, trace in enumerate(traces)))
    await c.call((rows(0, 100),), "alone", traces[0])  # over max_rows: sent on its own
    assert runner.traces == [tuple(traces), (traces[0],)]


async def test_callers_that_do_not_trace_send_no_trace_context() -> None:
    runner = Runner()
    c = coalescer(runner)
    await asyncio.gather(*(c.call((rows(i, 1),), f"r{i}") for i in range(3)))
    await c.call((rows(0, 100),), "alone")
    assert runner.traces == [(), ()]
