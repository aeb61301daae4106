"""The durable job queue: backoff, due jobs, giving up, retries, leases, concurrent workers."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.db import make_engine, make_sessionmaker, read_only, session_scope, utcnow
from node.jobs import Done, Job, JobState, Outcome, Retry, Worker, enqueue, next_delay
from tests.harness.clock import Clock

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
KIND = "test"


@pytest.fixture
async def sessionmaker(database_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        await engine.dispose()


async def add_jobs(
    sessionmaker: async_sessionmaker[AsyncSession],
    n: int = 1,
    *,
    now: datetime = T0,
    give_up_after: timedelta | None = None,
) -> list[int]:
    async with session_scope(sessionmaker) as session:
        jobs = [
            await enqueue(session, KIND, {"n": i}, now=now, give_up_after=give_up_after)
            for i in range(n)
        ]
        return [job.id for job in jobs]


async def get_job(sessionmaker: async_sessionmaker[AsyncSession], job_id: int) -> Job:
    async with read_only(sessionmaker) as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


# --- next_delay ---------------------------------------------------------------------------


class _Top(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def test_next_delay_doubles_up_to_the_cap() -> None:
    ceilings = [next_delay(n, base=30, cap=1000, rng=_Top()).total_seconds() for n in range(1, 9)]
    assert ceilings == [30, 60, 120, 240, 480, 960, 1000, 1000]
    assert next_delay(0, base=30, rng=_Top()) == timedelta(seconds=30)


def test_next_delay_jitter_is_bounded_and_seeded() -> None:
    rng = random.Random(1234)
    values = [next_delay(n, base=30, cap=3600, rng=rng).total_seconds() for n in range(1, 40)]
    for n, value in enumerate(values, start=1):
        ceiling = min(3600, 30 * 2 ** (n - 1))
        assert 15 <= value <= ceiling
    assert max(values) <= 3600
    assert len(set(values)) > 30  # jitter: not a fixed schedule
    again = random.Random(1234)
    assert values == [
        next_delay(n, base=30, cap=3600, rng=again).total_seconds() for n in range(1, 40)
    ]
    late = [next_delay(30, base=30, cap=3600, rng=rng).total_seconds() for _ in range(200)]
    assert sum(late) / len(late) > sum(values[:3]) / 3  # grows on average


def test_next_delay_with_a_cap_below_half_the_base() -> None:
    assert next_delay(5, base=30, cap=10, rng=random.Random(0)) == timedelta(seconds=10)


# --- Worker ------------------------------------------------------------------------------------


async def test_run_once_runs_due_jobs_only(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    (due,) = await add_jobs(sessionmaker, now=T0)
    (future,) = await add_jobs(sessionmaker, now=T0 + timedelta(hours=1))
    ran: list[int] = []

    async def handler(job: Job) -> Outcome:
        ran.append(job.id)
        return Done()

    worker = Worker(sessionmaker, {KIND: handler}, clock=Clock(T0))
    assert await worker.run_once() == 1
    assert ran == [due]
    assert (await get_job(sessionmaker, due)).state == JobState.DONE
    assert (await get_job(sessionmaker, future)).state == JobState.PENDING
    assert await worker.run_once() == 0
    # jobs of kinds the worker has no handler for are left alone
    assert (
        await Worker(
            sessionmaker, {"other": handler}, clock=Clock(T0 + timedelta(hours=2))
        ).run_once()
        == 0
    )


async def test_job_past_give_up_ends_failed(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    (job_id,) = await add_jobs(sessionmaker, give_up_after=timedelta(hours=1))

    async def handler(job: Job) -> Outcome:
        return Retry("remote down")

    worker = Worker(sessionmaker, {KIND: handler}, clock=Clock(T0 + timedelta(hours=2)))
    assert await worker.run_once() == 1
    job = await get_job(sessionmaker, job_id)
    assert job.state == JobState.FAILED
    assert job.last_error == "remote down"
    assert job.finished_at == T0 + timedelta(hours=2)
    assert job.attempts == 1


async def test_retry_before_give_up_stays_pending(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    (job_id,) = await add_jobs(sessionmaker, give_up_after=timedelta(hours=1))

    async def handler(job: Job) -> Outcome:
        return Retry("remote down", delay=timedelta(minutes=5))

    worker = Worker(sessionmaker, {KIND: handler}, clock=Clock(T0))
    assert await worker.run_once() == 1
    job = await get_job(sessionmaker, job_id)
    assert (job.state, job.attempts, job.last_error) == (JobState.PENDING, 1, "remote down")
    assert job.next_attempt_at == T0 + timedelta(minutes=5)


async def test_raising_handler_is_retried_not_lost(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    (job_id,) = await add_jobs(sessionmaker)
    calls = 0

    async def handler(job: Job) -> Outcome:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("kaboom")
        return Done()

    clock = Clock(T0)
    worker = Worker(sessionmaker, {KIND: handler}, clock=clock, retry_base=10)
    assert await worker.run_once() == 1
    job = await get_job(sessionmaker, job_id)
    assert job.state == JobState.PENDING
    assert job.attempts == 1
    assert job.last_error == "RuntimeError: kaboom"
    assert job.locked_until is None
    assert T0 < job.next_attempt_at <= T0 + timedelta(seconds=10)
    assert await worker.run_once() == 0
    clock.now = T0 + timedelta(seconds=11)
    assert await worker.run_once() == 1
    job = await get_job(sessionmaker, job_id)
    assert (job.state, job.attempts, job.last_error) == (JobState.DONE, 2, "")


async def test_lease_keeps_a_claimed_job_until_it_expires(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    (job_id,) = await add_jobs(sessionmaker)

    async def handler(job: Job) -> Outcome:
        return Done()

    lease = timedelta(minutes=2)
    first = Worker(sessionmaker, {KIND: handler}, clock=Clock(T0), lease=lease)
    claimed = await first.claim(10)  # then "killed": never finishes the job
    assert [j.id for j in claimed] == [job_id]
    assert (await get_job(sessionmaker, job_id)).locked_until == T0 + lease

    second_clock = Clock(T0 + timedelta(minutes=1))
    second = Worker(sessionmaker, {KIND: handler}, clock=second_clock, lease=lease)
    assert await second.claim(10) == []
    assert await second.run_once() == 0

    second_clock.now = T0 + lease + timedelta(seconds=1)
    assert await second.run_once() == 1
    job = await get_job(sessionmaker, job_id)
    assert (job.state, job.attempts, job.locked_until) == (JobState.DONE, 1, None)


@pytest.mark.parametrize("workers", [2, 4])
async def test_concurrent_workers_run_each_job_exactly_once(
    database_url: str, sessionmaker: async_sessionmaker[AsyncSession], workers: int
) -> None:
    ids = await add_jobs(sessionmaker, 50, now=utcnow())
    ran: Counter[int] = Counter()

    async def handler(job: Job) -> Outcome:
        ran[job.id] += 1
        await asyncio.sleep(0.001)
        return Done()

    engines = [make_engine(database_url) for _ in range(workers)]
    try:
        pool = [
            Worker(make_sessionmaker(engine), {KIND: handler}, concurrency=4, per_host=4)
            for engine in engines
        ]
        totals = await asyncio.gather(*(worker.run_until_idle() for worker in pool))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(totals) == 50
    assert sorted(ran) == sorted(ids)
    assert set(ran.values()) == {1}
    async with read_only(sessionmaker) as session:
        states = list((await session.execute(select(Job.state))).scalars())
    assert states == [JobState.DONE] * 50
