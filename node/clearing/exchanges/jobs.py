"""The clearing house's periodic work as durable jobs: expiry of declarations and *fonte*.

Each run schedules the next one (`node.jobs.recur`): at most one pending job of each kind
exists (`node.jobs.ensure_pending`, the one implementation, decided by a unique index).
The service starts a cycle on the first declaration (expiry) or posting (fonte);
``schedule_clearing_jobs`` starts both by hand (idempotent).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from node.clearing.exchanges.house import DEMURRAGE_JOB, EXPIRE_JOB, ClearingHouse
from node.db import session_scope
from node.jobs import Done, Handler, Job, Outcome, ensure_pending, recur

__all__ = [
    "DEMURRAGE",
    "EXPIRE",
    "EXPIRY_INTERVAL",
    "clearing_job_handlers",
    "schedule",
    "schedule_clearing_jobs",
]

EXPIRE = EXPIRE_JOB
DEMURRAGE = DEMURRAGE_JOB
EXPIRY_INTERVAL = timedelta(hours=1)


async def schedule(house: ClearingHouse, kind: str, run_at: datetime) -> bool:
    """Enqueue ``kind`` at ``run_at`` unless one is already pending; True if enqueued."""
    async with session_scope(house.sessionmaker) as session:
        return await ensure_pending(session, kind, run_at, now=house.clock())


async def schedule_clearing_jobs(house: ClearingHouse) -> None:
    """Start the periodic cycles (expiry always; fonte when a rate is set)."""
    now = house.clock()
    await schedule(house, EXPIRE, now + EXPIRY_INTERVAL)
    if house.terms.demurrage_basis_points:
        await schedule(house, DEMURRAGE, now + house.terms.demurrage_period)


def clearing_job_handlers(house: ClearingHouse) -> dict[str, Handler]:
    """Expiry and *fonte*, run by the node's one clearing house."""

    async def expire(job: Job) -> Outcome:
        await house.expire_due()
        await _next(house, job, EXPIRE, EXPIRY_INTERVAL)
        return Done()

    async def demurrage(job: Job) -> Outcome:
        period = str(job.payload.get("run_at", house.clock().isoformat()))[:10]
        await house.run_demurrage(period)
        if house.terms.demurrage_basis_points:
            await _next(house, job, DEMURRAGE, house.terms.demurrage_period)
        return Done()

    return {EXPIRE: expire, DEMURRAGE: demurrage}


async def _next(house: ClearingHouse, job: Job, kind: str, interval: timedelta) -> None:
    async with session_scope(house.sessionmaker) as session:
        await recur(session, job, house.clock() + interval, now=house.clock())
