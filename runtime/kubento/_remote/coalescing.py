"""Coalescing: an API server's concurrent calls to one batchable runner method share a gRPC call.

Under load an API server process starts many requests in each event-loop turn,
and every runner call costs a gRPC round trip on both sides, which on a busy
machine costs more CPU than the HTTP request around it. Calls to the same
batchable method made in the same turn, whose arguments the runner's
dispatcher would batch together anyway (same kinds, dtypes and non-batch
shapes), are joined along the batch dimension and sent once; the answer is cut
back into each caller's rows. Nothing waits for company: a group leaves at the
end of the turn it formed in, or at once when it reaches `max_rows`.

`max_rows` and `max_queue` are the runner's own `max_batch_size` and `max_queue_size`
(with its deployment's overrides): a group never outgrows what the runner queues, and a
call that can never fit is refused here (`NeverFits`), before its bytes travel.

A runner error or rejection for a group reaches every caller in it, as it
would if the runner had put their rows in one batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from kubento._tracing import Carrier
from kubento.batching import check_fits, count_rows, join_rows, split_rows

Send = Callable[[tuple[Any, ...], tuple[str, ...], tuple[Carrier, ...]], Awaitable[Any]]
"""Makes one runner call: (arguments, request ids of the callers in it, their trace
contexts: one each when tracing, none when not) -> result."""

Observe = Callable[[int], None]
"""Told how many callers each runner call carried."""


@dataclass
class _Group:
    rows: int = 0
    args: list[tuple[Any, ...]] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    traces: list[Carrier] = field(default_factory=list)
    futures: list[asyncio.Future[Any]] = field(default_factory=list)


class Coalescer:
    """Joins same-turn calls to one batchable runner method; `call` is what callers await."""

    def __init__(
        self,
        send: Send,
        batch_dim: tuple[int, int],
        max_rows: int,
        observe: Observe | None = None,
        max_queue: int = 0,
    ) -> None:
        self.send = send
        self.dim_in, self.dim_out = batch_dim
        self.max_rows = max_rows
        self.max_queue = max_queue
        self.observe = observe or (lambda callers: None)
        self._groups: dict[Hashable, _Group] = {}
        self._flush_scheduled = False
        self._sending: set[asyncio.Task[None]] = set()

    async def call(
        self, args: tuple[Any, ...], request_id: str, trace: Carrier | None = None
    ) -> Any:
        try:
            rows, signature = count_rows(args, self.dim_in)
        except (TypeError, ValueError):
            rows, signature = 0, None  # malformed: the runner says what is wrong, to this caller
        check_fits(rows, self.max_queue)
        if signature is None or rows >= self.max_rows:
            self.observe(1)
            return await self.send(args, (request_id,), () if trace is None else (trace,))
        group = self._groups.get(signature)
        if group is not None and group.rows + rows > self.max_rows:
            self._launch(self._groups.pop(signature))
            group = None
        if group is None:
            group = self._groups[signature] = _Group()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        group.rows += rows
        group.args.append(args)
        group.sizes.append(rows)
        group.request_ids.append(request_id)
        if trace is not None:
            group.traces.append(trace)
        group.futures.append(future)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        self._flush_scheduled = False
        groups, self._groups = self._groups, {}
        for group in groups.values():
            self._launch(group)

    def _launch(self, group: _Group) -> None:
        task = asyncio.get_running_loop().create_task(self._send_group(group))
        self._sending.add(task)  # the loop keeps only weak references to tasks
        task.add_done_callback(self._sending.discard)

    async def _send_group(self, group: _Group) -> None:
        self.observe(len(group.futures))
        try:
            if len(group.args) == 1:
                pieces = [
                    await self.send(group.args[0], tuple(group.request_ids), tuple(group.traces))
                ]
            else:
                joined = tuple(
                    join_rows([args[i] for args in group.args], self.dim_in)
                    for i in range(len(group.args[0]))
                )
                result = await self.send(joined, tuple(group.request_ids), tuple(group.traces))
                pieces = split_rows(result, group.sizes, self.dim_out)
        except asyncio.CancelledError:
            for future in group.futures:
                future.cancel()
            raise
        except Exception as exc:
            for future in group.futures:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, piece in zip(group.futures, pieces, strict=True):
            if not future.done():  # its caller may have given up (client disconnect)
                future.set_result(piece)
