"""Probes: readiness follows the runners' health checks in the background and answers at
once, whatever a check costs; a check that raises counts as not ready and never stops them."""

from __future__ import annotations

import asyncio
import json

from kubento import contract
from kubento._api import probes as probes_module
from kubento._api.probes import Probes

READYZ = contract.READINESS_PATH.encode()


class Runner:
    def __init__(self) -> None:
        self.healthy_now: bool | Exception = True
        self.delay_s = 0.0
        self.checks = 0

    async def healthy(self, timeout_s: float = 1.0) -> bool:
        self.checks += 1
        now = self.healthy_now  # as of the check's start
        await asyncio.sleep(self.delay_s)
        if isinstance(now, Exception):
            raise now
        return now


def answer(probes: Probes, path: bytes = READYZ) -> tuple[int, object]:
    status, body = probes.answers[path]()
    return status, json.loads(body)


async def test_readiness_follows_the_checks_and_answers_without_waiting_for_one(
    monkeypatch,
) -> None:
    monkeypatch.setattr(probes_module, "REFRESH_S", 0.05)
    a, b = Runner(), Runner()
    probes = Probes({"a": a, "b": b})
    assert answer(probes) == (
        503,
        {"error": "runners not ready", "detail": {"runners": ["a", "b"]}},
    )
    probes.start()
    try:
        await asyncio.sleep(0.02)
        assert answer(probes) == (200, {"status": "ready", "runners": ["a", "b"]})
        assert answer(probes, contract.LIVENESS_PATH.encode()) == (200, {"status": "alive"})
        b.healthy_now = False
        await asyncio.sleep(0.15)
        assert answer(probes) == (503, {"error": "runners not ready", "detail": {"runners": ["b"]}})
        assert not probes.ready
        b.healthy_now, b.delay_s = True, 0.5  # a slow check: the answer does not wait for it
        await asyncio.sleep(0.1)  # a round started before the change may still report it
        await asyncio.sleep(0.1)
        assert answer(probes)[0] == 503  # the last finished round still stands
        await asyncio.sleep(0.5)
        assert answer(probes)[0] == 200
        b.delay_s, a.healthy_now = 0.0, RuntimeError("broken client")
        await asyncio.sleep(0.7)  # past the slow round still running
        assert answer(probes) == (503, {"error": "runners not ready", "detail": {"runners": ["a"]}})
        checks = a.checks
        await asyncio.sleep(0.15)
        assert a.checks > checks  # still checking after the error
    finally:
        await probes.stop()


def test_with_no_runners_the_server_is_ready_at_once() -> None:
    assert answer(Probes({})) == (200, {"status": "ready", "runners": []})
