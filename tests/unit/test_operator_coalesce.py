"""The status-refresh coalescer: one run per key at a time, a burst becomes one rerun."""

from __future__ import annotations

import threading

import pytest

from kubento_operator.coalesce import Coalescer


def test_calls_during_a_run_become_one_rerun_in_the_running_thread() -> None:
    coalescer = Coalescer()
    entered, release = threading.Event(), threading.Event()
    runs: list[str] = []

    def slow() -> bool:
        runs.append(threading.current_thread().name)
        if len(runs) == 1:
            entered.set()
            assert release.wait(10)
        return True

    results: list[bool] = []
    first = threading.Thread(target=lambda: results.append(coalescer.run("a", slow)), name="first")
    first.start()
    assert entered.wait(10)
    # Five events of the same parent arrive while it runs: none runs, none waits.
    assert [coalescer.run("a", slow) for _ in range(5)] == [False] * 5
    release.set()
    first.join(10)
    assert runs == ["first", "first"], "one rerun, in the thread that was running"
    assert results == [True]
    assert coalescer.run("a", lambda: False) is False, "a later call runs again"


def test_another_key_runs_at_once_inside_a_run() -> None:
    coalescer = Coalescer()
    inner: list[bool] = []

    def outer() -> bool:
        inner.append(coalescer.run("b", lambda: True))
        return False

    assert coalescer.run("a", outer) is False
    assert inner == [True]


def test_the_result_says_whether_any_run_of_this_thread_wrote() -> None:
    coalescer = Coalescer()
    wrote = iter([True, False])  # the first run patches the status, the rerun finds it current
    asked: list[bool] = []

    def refresh() -> bool:
        if not asked:  # an event of the same parent arrives during the first run
            asked.append(coalescer.run("a", refresh))
        return next(wrote)

    assert coalescer.run("a", refresh) is True
    assert asked == [False]


def test_an_exception_ends_the_run_and_the_next_call_runs_afresh() -> None:
    coalescer = Coalescer()

    def broken() -> bool:
        raise RuntimeError("API server unreachable")

    with pytest.raises(RuntimeError, match="unreachable"):
        coalescer.run("a", broken)
    assert coalescer.run("a", lambda: True) is True
