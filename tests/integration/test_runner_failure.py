"""A runner dying under load: fast 503s, /readyz fails, and recovery when it returns."""

import asyncio
import signal
import time
from collections.abc import Iterator

import httpx
import pytest

from kubento import contract
from tests.integration.processes import RunnerProcess, api_statuses, running_service, wait_http


@pytest.fixture
def tagger() -> Iterator[tuple[str, dict[str, RunnerProcess]]]:
    with running_service("tagger:svc", ["tagger"]) as running:
        yield running


def test_runner_killed_mid_load_gives_fast_503_and_recovers(
    tagger: tuple[str, dict[str, RunnerProcess]],
) -> None:
    url, workers = tagger
    runner = workers["tagger"]

    async def load(seconds: float) -> list[int]:
        statuses: list[int] = []
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                reply = await client.post("/tag", json=[[1.0, 2.0, 3.0]])
                statuses.append(reply.status_code)
        return statuses

    async def kill_during_load() -> list[int]:
        task = asyncio.create_task(load(2.0))
        await asyncio.sleep(0.5)
        runner.stop(signal.SIGKILL)
        return await task

    statuses = asyncio.run(kill_during_load())
    assert 200 in statuses and 503 in statuses
    assert set(statuses) <= {200, 503}

    started = time.monotonic()
    reply = httpx.post(url + "/tag", json=[[1.0, 2.0, 3.0]], timeout=10)
    assert reply.status_code == 503
    assert time.monotonic() - started < 3
    assert "unavailable" in reply.json()["error"]
    assert int(reply.headers["retry-after"]) >= 1
    assert httpx.get(url + contract.READINESS_PATH).status_code == 503
    sheds = api_statuses(url, "kubento_api_shed_duration_seconds_count")
    assert sheds == api_statuses(url, "kubento_api_requests_total", status="503")
    assert sheds[("tag", "503")] == statuses.count(503) + 1

    runner.start()  # same port: the API reconnects on its own
    wait_http(url + contract.READINESS_PATH, timeout=30)
    reply = httpx.post(url + "/tag", json=[[1.0, 2.0, 3.0]], timeout=10)
    assert reply.status_code == 200
    assert reply.json() == [[3.0, 5.0, 7.0]]
