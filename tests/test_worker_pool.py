"""The long-running worker keeps its slots busy: a slow job does not hold the others back."""

import asyncio

from node.db import make_engine, make_sessionmaker, session_scope
from node.jobs import Done, Job, Worker, enqueue


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
