"""Give freed memory back to the system after large requests.

glibc serves an allocation of more than `M_MMAP_THRESHOLD` bytes from its own mapping and
unmaps it when freed, but by default it raises that threshold to the size of each such block
freed (up to 32 MiB), so after one large request the next ones come from the heap arenas of
whichever threads touched them, and their pages stay resident when freed, fragmented among
live ones. `pin_mmap_threshold()` (called by every API and runner process) fixes it at
`LARGE_BYTES`, which turns that raising off: a large body, array or gRPC message gets its
own mapping and goes back to the system the moment it is freed. In
`tests/integration/test_memory.py`, the API process settled 33-125 MiB above its start
without it (one run in ten over 128) and 2.3-2.6 MiB above with it.

What is left, smaller blocks freed in bulk, `malloc_trim(0)` returns: it walks the heaps
(milliseconds on a large one), so it runs on a worker thread, `TRIM_DELAY_S` after a request
of `LARGE_BYTES` or more (one at a time) and once more when such requests have stopped for
`SETTLE_S`; nothing happens for small requests, or where the C library is not glibc.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import gc
import logging
from collections.abc import Callable

log = logging.getLogger("kubento.memory")

OFFLOAD_BYTES = 1024 * 1024
"""Request bodies, and the arrays of a runner call, larger than this are decoded or encoded
on a worker thread, not on the event loop (which must keep answering probes)."""
LARGE_BYTES = 4 * 1024 * 1024
TRIM_DELAY_S = 0.5
SETTLE_S = 2.0


M_MMAP_THRESHOLD = -3
"""mallopt's parameter number for the mmap threshold (glibc's malloc.h)."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def pin_mmap_threshold(nbytes: int = LARGE_BYTES) -> bool:
    """Serve every allocation of `nbytes` or more from a mapping of its own, unmapped when
    freed, from now on in this process; False where the C library is not glibc."""
    mallopt = getattr(_libc(), "mallopt", None)
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, nbytes))


def _malloc_trim() -> Callable[[int], int] | None:
    trim = getattr(_libc(), "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim  # type: ignore[no-any-return]


class Trimmer:
    """`after(nbytes)` following each request; trims soon after the large ones."""

    def __init__(self, trim: Callable[[int], int] | None = None, delay_s: float = TRIM_DELAY_S):
        self.trim = trim if trim is not None else _malloc_trim()
        self.delay_s = delay_s
        self.trims = 0
        self._pending = self._again = False
        self._task: asyncio.Future[None] | None = None
        self._settle: asyncio.TimerHandle | None = None

    def after(self, nbytes: int) -> None:
        if nbytes < LARGE_BYTES or self.trim is None:
            return
        loop = asyncio.get_running_loop()
        # A last trim once large requests have stopped, for what their answers and
        # connections held until after the first one.
        if self._settle is not None:
            self._settle.cancel()
        self._settle = loop.call_later(SETTLE_S, self._request)
        self._request()

    def _request(self) -> None:
        if self._pending:  # one trim at a time; another after it for what is freed meanwhile
            self._again = True
            return
        self._pending, self._again = True, False
        asyncio.get_running_loop().call_later(self.delay_s, self._start)

    def _start(self) -> None:
        self._task = asyncio.ensure_future(asyncio.to_thread(self._run))
        self._task.add_done_callback(self._done)

    def _run(self) -> None:
        assert self.trim is not None
        gc.collect()  # buffers held only by reference cycles (tracebacks, frames) go first
        self.trim(0)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._pending = False
        if task.cancelled():  # the loop is closing
            return
        self.trims += 1
        if task.exception() is not None:
            log.warning("malloc_trim failed: %s", task.exception())
        if self._again:
            self._request()
