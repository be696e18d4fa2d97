"""Trimmer: freed memory of large requests goes back to the system, one trim at a time."""

from __future__ import annotations

import asyncio
import time

from kubento._memory import LARGE_BYTES, SETTLE_S, Trimmer, _malloc_trim, pin_mmap_threshold


async def trims_reach(trimmer: Trimmer, count: int, within_s: float = 5.0) -> int:
    ends = time.monotonic() + within_s
    while trimmer.trims < count and time.monotonic() < ends:
        await asyncio.sleep(0.01)
    return trimmer.trims


def recorder() -> tuple[list[int], Trimmer]:
    calls: list[int] = []
    return calls, Trimmer(trim=lambda pad: calls.append(pad) or 1, delay_s=0.01)


async def test_small_requests_never_trim() -> None:
    calls, trimmer = recorder()
    trimmer.after(LARGE_BYTES - 1)
    await asyncio.sleep(0.1)
    assert calls == []


async def test_a_large_request_trims_soon_and_once_more_when_they_stop() -> None:
    calls, trimmer = recorder()
    trimmer.after(LARGE_BYTES)
    assert await trims_reach(trimmer, 1) == 1
    assert calls == [0]
    assert await trims_reach(trimmer, 2, within_s=SETTLE_S + 5) == 2


async def test_a_burst_trims_one_at_a_time_and_again_for_what_was_freed_meanwhile() -> None:
    calls, trimmer = recorder()
    for _ in range(20):
        trimmer.after(LARGE_BYTES)
    assert await trims_reach(trimmer, 2) == 2  # the first, then one for the other 19
    await asyncio.sleep(0.1)
    assert calls == [0, 0]  # not twenty
    assert trimmer._settle is not None
    trimmer._settle.cancel()


def test_glibc_malloc_trim_is_found_here() -> None:
    trim = _malloc_trim()
    assert trim is not None  # Debian (the runtime image) and this machine use glibc
    assert trim(0) in (0, 1)


def test_glibc_mallopt_pins_the_mmap_threshold_here() -> None:
    assert pin_mmap_threshold() is True  # glibc accepts it (mallopt returns 1)
