"""The handle seam: how a call from service code reaches a runner (or, later, a dependency
service), in this process or in another one.

User objects are never rebound by the server. A serving process builds one `Handle` per
remote component and makes them current for each request with `bound(handles)`; a
`Runner` looks its handle up there first, then falls back to the one `init_local()` made.
The request id travels the same way, so calls made from API worker threads and from
`asyncio.gather` branches carry it.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from kubento import contract

if TYPE_CHECKING:
    from kubento._sdk.runnable import Runnable


class Handle(Protocol):
    """Where a component's calls go: an in-process object or a remote worker."""

    async def async_call(self, method: str, args: tuple[Any, ...]) -> Any: ...

    def call(self, method: str, args: tuple[Any, ...]) -> Any: ...


Handles = Mapping[object, Handle]
"""The serving process's handles, keyed by the SDK object they stand for (a `Runner`)."""

current_handles: contextvars.ContextVar[Handles | None] = contextvars.ContextVar(
    "kubento_handles", default=None
)
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deadline", default=None)
"""When the current request's work must be done by `time.monotonic()`: every remote call gets
what remains to finish in."""
request_end: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "request_end", default=None
)
"""When the API server stops waiting for the current request (its end-to-end time); later
than `deadline` by what the server keeps back for the answer's way out. None: `deadline`."""


def call_end() -> float | None:
    """Until when a call made now is waited for: the request's end (its deadline when it has
    no end of its own); None when the request has no deadline."""
    return request_end.get() or deadline.get()


def finish_within() -> str | None:
    """What a call made now carries in `contract.FINISH_WITHIN_METADATA`: the time left to the
    request's deadline, when it is waited for longer than that; None otherwise."""
    ends, end = deadline.get(), request_end.get()
    if ends is None or end is None or end <= ends:
        return None
    return contract.finish_within_value(max(0.001, ends - time.monotonic()))


def bound(handles: Handles) -> contextvars.Token[Handles | None]:
    """Make `handles` current for the rest of this request (its task and threads)."""
    return current_handles.set(handles)


def lookup(component: object) -> Handle | None:
    handles = current_handles.get()
    return None if handles is None else handles.get(component)


class LocalHandle:
    """Calls the runnable in this process, unbatched (for tests and notebooks)."""

    def __init__(self, runnable: Runnable) -> None:
        self.runnable = runnable

    async def async_call(self, method: str, args: tuple[Any, ...]) -> Any:
        fn = getattr(self.runnable, method)
        if type(self.runnable).methods[method].is_async:
            return await fn(*args)
        return await asyncio.to_thread(fn, *args)

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        fn = getattr(self.runnable, method)
        if type(self.runnable).methods[method].is_async:
            return asyncio.run(fn(*args))
        return fn(*args)


class Unbound:
    """The handle of a component nothing serves yet: every call says how to fix that."""

    def __init__(self, what: str) -> None:
        self.what = what

    def _fail(self) -> Any:
        raise RuntimeError(
            f"{self.what} is not initialised: call init_local() to run it in this process, "
            f"or start the service with `kubento serve`"
        )

    async def async_call(self, method: str, args: tuple[Any, ...]) -> Any:
        return self._fail()

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        return self._fail()
