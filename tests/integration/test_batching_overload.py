"""Batching under overload, through real API server and runner processes.

Every request gets exactly one answer: its own rows (2*row + 1) or a fast
429/503; the runner ran each admitted row exactly once; metrics account for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from kubento import contract
from tests.integration.processes import RunnerProcess, running_service

SERVICE = "slow_tagger:svc"
REQUESTS = 300


def runner_samples(runner: RunnerProcess) -> dict[str, float]:
    """Runner batching samples summed over labels except `reason`."""
    text = httpx.get(f"http://127.0.0.1:{runner.metrics_port}{contract.METRICS_PATH}").text
    samples: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.startswith("kubento_runner_") or "le" in sample.labels:
                continue
            key = sample.name
            if "reason" in sample.labels:
                key += ":" + sample.labels["reason"]
            samples[key] = samples.get(key, 0.0) + sample.value
    return samples


def grown(before: dict[str, float], after: dict[str, float], key: str) -> float:
    """How much a counter grew between two `runner_samples` scrapes."""
    return after.get(key, 0.0) - before.get(key, 0.0)


async def flood(url: str) -> tuple[list[np.ndarray], list[httpx.Response]]:
    rng = np.random.default_rng(11)
    inputs = [rng.normal(size=(1 + i % 3, 3)).round(6) for i in range(REQUESTS)]
    limits = httpx.Limits(max_connections=128, max_keepalive_connections=128)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def post(x: np.ndarray) -> httpx.Response:
            return await client.post("/tag", json=x.tolist())

        replies = await asyncio.gather(*(post(x) for x in inputs))
    return inputs, replies


def check_every_answer(inputs: list[np.ndarray], replies: list[httpx.Response]) -> None:
    for x, reply in zip(inputs, replies, strict=True):
        assert reply.status_code in (200, 429, 503), reply.text
        if reply.status_code == 200:
            np.testing.assert_allclose(np.asarray(reply.json()), x * 2 + 1)
        else:
            assert "error" in reply.json()


@pytest.fixture(scope="module")
def queue_bound() -> Iterator[tuple[str, RunnerProcess]]:
    env = {
        contract.KNOBS["max_queue_size"].env: "24",
        contract.KNOBS["max_latency_ms"].env: "10000",
    }
    with running_service(SERVICE, ["slow"], env=env) as (url, runners):
        yield url, runners["slow"]


BUDGET_80_MS = {
    contract.KNOBS["max_queue_size"].env: "0",
    contract.KNOBS["max_latency_ms"].env: "80",
}


@pytest.fixture(scope="module")
def budget_bound() -> Iterator[tuple[str, RunnerProcess]]:
    """Opted in to shedding on forecast queue wait (BentoML's behaviour)."""
    env = {**BUDGET_80_MS, contract.KNOBS["max_queue_wait_ms"].env: "80"}
    with running_service(SERVICE, ["slow"], env=env) as (url, runners):
        yield url, runners["slow"]


async def test_a_full_queue_answers_429_and_every_admitted_row_runs_exactly_once(
    queue_bound: tuple[str, RunnerProcess],
) -> None:
    url, runner = queue_bound
    before = runner_samples(runner)
    inputs, replies = await flood(url)
    after = runner_samples(runner)
    check_every_answer(inputs, replies)
    statuses = [reply.status_code for reply in replies]
    assert statuses.count(429) > 0, "a queue of 24 rows never filled under 128 callers"
    admitted = [x for x, reply in zip(inputs, replies, strict=True) if reply.status_code == 200]
    ran_rows = grown(before, after, "kubento_runner_batch_size_sum")
    assert ran_rows == sum(len(x) for x in admitted)
    # The API server coalesces same-turn callers into one runner call, so one
    # rejected runner call may answer several callers.
    rejected = grown(before, after, "kubento_runner_rejections_total:queue_full")
    assert 0 < rejected <= statuses.count(429)


async def test_a_tight_batching_budget_alone_sheds_nothing() -> None:
    with running_service(SERVICE, ["slow"], env=BUDGET_80_MS) as (url, _):
        inputs, replies = await flood(url)
    check_every_answer(inputs, replies)
    assert [reply.status_code for reply in replies] == [200] * len(replies)


async def test_opted_in_requests_that_would_wait_past_max_queue_wait_get_503_with_retry_after(
    budget_bound: tuple[str, RunnerProcess],
) -> None:
    url, runner = budget_bound
    await flood(url)  # teaches the runner its latency per batch size
    before = runner_samples(runner)
    inputs, replies = await flood(url)
    after = runner_samples(runner)
    check_every_answer(inputs, replies)
    unavailable = [reply for reply in replies if reply.status_code == 503]
    assert unavailable, "nothing was shed although the queue held far more than the budget"
    assert all(int(reply.headers["retry-after"]) >= 1 for reply in unavailable)
    rejected = grown(before, after, "kubento_runner_rejections_total:deadline")
    assert 0 < rejected <= len(unavailable)


async def test_runner_metrics_count_batches_waits_and_queue_depth(
    queue_bound: tuple[str, RunnerProcess],
) -> None:
    url, runner = queue_bound
    before = runner_samples(runner)
    _, replies = await flood(url)
    after = runner_samples(runner)
    admitted = sum(reply.status_code == 200 for reply in replies)
    batches = grown(before, after, "kubento_runner_batch_size_count")
    assert 0 < batches < admitted, "admitted requests were not batched together"
    admitted_calls = grown(before, after, "kubento_runner_queue_wait_seconds_count")
    assert 0 < admitted_calls <= admitted
    assert after["kubento_runner_queue_depth"] == 0


async def test_the_autoscaling_gauges_rise_under_load_and_fall_back_to_zero(
    queue_bound: tuple[str, RunnerProcess],
) -> None:
    """What `autoscaling.metric: queue | inflight` follows, scraped from the real endpoint
    while a flood runs: rows queued and rows in running batches, then none."""
    url, runner = queue_bound
    seen: dict[str, float] = {contract.QUEUE_DEPTH_METRIC: 0.0, contract.INFLIGHT_METRIC: 0.0}
    flooding = asyncio.create_task(flood(url))
    while not flooding.done():
        samples = await asyncio.to_thread(runner_samples, runner)
        for name in seen:
            seen[name] = max(seen[name], samples.get(name, 0.0))
        await asyncio.sleep(0.01)
    await flooding
    assert 0 < seen[contract.QUEUE_DEPTH_METRIC] <= 24  # the queue bound, in rows
    assert seen[contract.INFLIGHT_METRIC] > 0
    after = runner_samples(runner)
    assert after[contract.QUEUE_DEPTH_METRIC] == 0
    assert after[contract.INFLIGHT_METRIC] == 0
