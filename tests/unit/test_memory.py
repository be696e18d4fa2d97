"""Trimmer: freed memory of large requests goes back to the system, one trim at a time."""

from __future__ import annotations

import asyncio

from kubento._memory import LARGE_BYTES, Trimmer, _malloc_trim


async def test_large_requests_are_trimmed_after_and_small_ones_never() -> None:
    calls: list[int] = []
    trimmer = Trimmer(trim=lambda pad: calls.append(pad) or 1, delay_s=0.01)
    trimmer.after(LARGE_BYTES - 1)
    await asyncio.sleep(0.05)
    assert calls == []
    trimmer.after(LARGE_BYTES)
    await asyncio.sleep(0.05)
    assert calls == [0]


async def test_memory_freed_during_a_trim_gets_another() -> None:
    calls: list[int] = []
    trimmer = Trimmer(trim=lambda pad: calls.append(pad) or 1, delay_s=0.02)
    trimmer.after(LARGE_BYTES)
    await asyncio.sleep(0.005)
    trimmer.after(LARGE_BYTES)  # pending: marks another
    await asyncio.sleep(0.1)
    assert calls == [0, 0]
    assert trimmer.trims == 2


def test_glibc_malloc_trim_is_found_here() -> None:
    trim = _malloc_trim()
    assert trim is not None  # Debian (the runtime image) and this machine use glibc
    assert trim(0) in (0, 1)
