"""The worker keeps its slots busy: a slow job does not hold the others back; a claim leaves
each host its share; an idle worker sleeps until its next job is due, not a whole poll."""

import asyncio
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from node.db import make_engine, make_sessionmaker, read_only, session_scope, utcnow
from node.jobs import Done, Job, JobState, Retry, Worker, enqueue


async def test_fast_jobs_finish_while_a_slow_one_runs(database_url: str) -> None:
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    release = asyncio.Event()
    finished: list[str] = []

    async def handler(job: Job) -> Done:
        if job.payload["name"] == "slow":
            await release.wait()
        finished.append(job.payload["name"])
        return Done()

    try:
        async with session_scope(sessionmaker) as session:
            await enqueue(session, "test", {"name": "slow"}, host="slow.example")
            for i in range(10):
                await enqueue(session, "test", {"name": f"fast{i}"}, host=f"h{i}.example")
        worker = Worker(sessionmaker, {"test": handler}, concurrency=2)
        task = asyncio.create_task(worker.run_forever(idle_sleep=0.05))
        for _ in range(200):
            if len(finished) == 10:
                break
            await asyncio.sleep(0.05)
        assert sorted(finished) == sorted(f"fast{i}" for i in range(10))  # with one slot busy
        release.set()
        for _ in range(100):
            if "slow" in finished:
                break
            await asyncio.sleep(0.05)
        assert "slow" in finished
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    finally:
        await engine.dispose()


async def test_run_until_idle_keeps_slots_busy_too(database_url: str) -> None:
    """``run_until_idle`` (the CLI's and the benchmarks' mode) does not wait for a batch's
    slowest job: the slow one is released only once every fast one has finished."""
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    release = asyncio.Event()
    finished: list[str] = []

    async def handler(job: Job) -> Done:
        if job.payload["name"] == "slow":
            await release.wait()
        finished.append(job.payload["name"])
        if len(finished) == 10:
            release.set()
        return Done()

    try:
        async with session_scope(sessionmaker) as session:
            await enqueue(session, "test", {"name": "slow"}, host="slow.example")
            for i in range(10):
                await enqueue(session, "test", {"name": f"fast{i}"}, host=f"h{i}.example")
        worker = Worker(sessionmaker, {"test": handler}, concurrency=2)
        # a batch worker would wait for "slow" forever; the guard turns that into a failure
        assert await asyncio.wait_for(worker.run_until_idle(), timeout=120) == 11
        assert finished[-1] == "slow"
    finally:
        await engine.dispose()


async def test_a_claim_takes_at_most_per_host_jobs_of_one_host(database_url: str) -> None:
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)

    async def handler(job: Job) -> Done:
        return Done()

    try:
        async with session_scope(sessionmaker) as session:
            busy = [await enqueue(session, "test", {}, host="busy.example") for _ in range(5)]
            others = [await enqueue(session, "test", {}, host=f"h{i}.example") for i in range(3)]
        worker = Worker(sessionmaker, {"test": handler}, concurrency=8, per_host=2)
        claimed = await worker.claim(8)
        assert [job.id for job in claimed] == [busy[0].id, busy[1].id] + [j.id for j in others]
        async with read_only(sessionmaker) as session:
            leased = (
                await session.execute(select(Job.id).where(Job.locked_until.is_not(None)))
            ).scalars()
            assert sorted(leased) == sorted(job.id for job in claimed)  # the rest stay free
    finally:
        await engine.dispose()


async def test_an_idle_worker_wakes_when_its_next_job_is_due(database_url: str) -> None:
    """A retry due in 0.3 s and a job enqueued to run in 0.6 s run then, although the worker
    polls only every minute and nobody wakes it."""
    engine = make_engine(database_url)
    sessionmaker = make_sessionmaker(engine)
    ran: list[tuple[str, float]] = []

    async def handler(job: Job) -> Done | Retry:
        ran.append((job.payload["name"], time.monotonic()))
        if job.payload["name"] == "retried" and job.attempts == 0:
            return Retry("once more", delay=timedelta(seconds=0.3))
        return Done()

    try:
        worker = Worker(sessionmaker, {"test": handler})
        assert await worker.next_due() is None
        async with session_scope(sessionmaker) as session:
            retried = await enqueue(session, "test", {"name": "retried"})
            later = await enqueue(
                session, "test", {"name": "later"}, now=utcnow() + timedelta(seconds=0.6)
            )
        assert await worker.next_due() == later.next_attempt_at
        # a job that fell due after a claim looked (at ``after``) is due for the next one
        looked = retried.next_attempt_at - timedelta(seconds=1)
        assert await worker.next_due(after=looked) == retried.next_attempt_at
        started = time.monotonic()
        task = asyncio.create_task(worker.run_forever(idle_sleep=60))
        for _ in range(600):
            # the handler has run three times and the worker has written the jobs' end (it
            # writes it after the handler returns: cancelling before would leave one leased)
            if len(ran) == 3 and not await _pending(sessionmaker):
                break
            await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert sorted(name for name, _ in ran) == ["later", "retried", "retried"], (
            "the worker waited for its poll"
        )
        first, again = [at for name, at in ran if name == "retried"]
        assert again - first >= 0.25  # not before the retry was due
        assert all(at - started < 30 for _, at in ran)
        assert await worker.next_due() is None
    finally:
        await engine.dispose()


async def _pending(sessionmaker: Any) -> int:
    """How many jobs are not finished yet."""
    async with read_only(sessionmaker) as session:
        rows = await session.scalars(select(Job.id).where(Job.state == JobState.PENDING))
        return len(rows.all())
