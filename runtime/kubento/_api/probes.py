"""What the API server's probes answer: liveness, and readiness kept current in the
background, so a probe never waits for a runner's health check.

Readiness asks every runner's gRPC health service every `REFRESH_S` (each check bounded by
`CHECK_TIMEOUT_S`); `/readyz` answers from the last round at once. A runner that stops
answering shows within about `REFRESH_S + CHECK_TIMEOUT_S`; a busy one that still answers
in time stays ready.

`Probes.answers` maps a probe's path to what it answers now (status and JSON body); the
protocol (`kubento._api.protocol`) answers those in the loop step that parsed them, and
the app's routes answer the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import pydantic_core

from kubento import contract

log = logging.getLogger("kubento.api")

REFRESH_S = 1.0
CHECK_TIMEOUT_S = 1.0
ALIVE = {"status": "alive"}


class HealthChecked(Protocol):
    async def healthy(self, timeout_s: float = ...) -> bool: ...


Answer = tuple[int, bytes]


def _json(content: Any) -> bytes:
    return pydantic_core.to_json(content)


class Probes:
    def __init__(self, clients: Mapping[str, HealthChecked]) -> None:
        self.clients = clients
        self.not_ready: list[str] = list(clients)  # until the first round has answered
        self._alive: Answer = (200, _json(ALIVE))
        self._ready: Answer = self._readiness()
        self._task: asyncio.Task[None] | None = None
        self.answers: dict[bytes, Callable[[], Answer]] = {
            contract.LIVENESS_PATH.encode(): lambda: self._alive,
            contract.READINESS_PATH.encode(): lambda: self._ready,
        }

    @property
    def ready(self) -> bool:
        return not self.not_ready

    async def check(self) -> None:
        """One round of health checks; its result is what readiness answers until the next."""
        names = list(self.clients)
        results = await asyncio.gather(
            *(self.clients[name].healthy(timeout_s=CHECK_TIMEOUT_S) for name in names),
            return_exceptions=True,
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                log.warning("runner=%s event=health_check_failed error=%r", name, result)
        self.not_ready = [name for name, ok in zip(names, results, strict=True) if ok is not True]
        self._ready = self._readiness()

    def _readiness(self) -> Answer:
        if self.not_ready:
            return 503, _json(
                contract.error_content("runners not ready", {"runners": self.not_ready})
            )
        return 200, _json({"status": "ready", "runners": list(self.clients)})

    def start(self) -> None:
        self._task = asyncio.create_task(self._refresh())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(REFRESH_S)
