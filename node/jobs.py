"""Durable background jobs: rows in the database, claimed by workers, retried with backoff.

A job is ``pending`` until a handler finishes it (``done``) or gives up (``failed``); a
handler that wants another try returns ``Retry``. Claiming is safe with several workers:
``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a write transaction on SQLite, and a lease
(``locked_until``) so that a worker killed mid-job releases it after the lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from node.db import WRITE, Base, UTCDateTime, read_only, utcnow
from node.ops.metrics import JOBS_FINISHED
from node.process import State, StateGraph
from node.wake import notify_jobs

__all__ = [
    "Done",
    "Fail",
    "Job",
    "JobState",
    "JobStates",
    "Retry",
    "Worker",
    "enqueue",
    "enqueue_many",
    "ensure_pending",
    "next_delay",
    "recur",
]

log = logging.getLogger(__name__)


class JobStates(StateGraph):
    """A job waits (retrying, its ``attempts`` counting) until it is done or given up."""

    pending = State(initial=True)
    done = State(final=True)
    failed = State(final=True)

    pending.transitions_to(done, failed)


class JobState:
    PENDING = JobStates.pending.name
    DONE = JobStates.done.name
    FAILED = JobStates.failed.name
    ALL = (PENDING, DONE, FAILED)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_claim", "state", "next_attempt_at"),
        # At most one pending job drives a process (a periodic cycle, a settlement, a round).
        Index(
            "uq_jobs_pending_process",
            "process_key",
            unique=True,
            postgresql_where=text("state = 'pending'"),
            sqlite_where=text("state = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default=JobState.PENDING)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    host: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    give_up_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    activity_pk: Mapped[int | None] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), nullable=True, index=True
    )
    process_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    """The process this job drives (its kind for a periodic cycle, a settlement's URI…)."""


def next_delay(
    attempts: int, *, base: float = 30.0, cap: float = 6 * 3600.0, rng: random.Random | None = None
) -> timedelta:
    """Exponential backoff with full jitter: ``uniform(base/2, min(cap, base * 2**n))``."""
    ceiling = min(cap, base * (2 ** max(0, attempts - 1)))
    value = (rng or random).uniform(min(base / 2, ceiling), ceiling)
    return timedelta(seconds=value)


@dataclass(frozen=True)
class Done:
    pass


@dataclass(frozen=True)
class Retry:
    error: str
    delay: timedelta | None = None  # None: next_delay(attempts)


@dataclass(frozen=True)
class Fail:
    error: str


Outcome = Done | Retry | Fail
Handler = Callable[[Job], Awaitable[Outcome]]


async def enqueue(
    session: AsyncSession,
    kind: str,
    payload: dict[str, Any],
    *,
    host: str | None = None,
    activity_pk: int | None = None,
    give_up_after: timedelta | None = None,
    now: datetime | None = None,
) -> Job:
    """Add a job in the caller's transaction: it exists exactly when the caller commits."""
    now = now or utcnow()
    job = Job(
        kind=kind,
        payload=payload,
        host=host,
        activity_pk=activity_pk,
        next_attempt_at=now,
        give_up_at=now + give_up_after if give_up_after else None,
        created_at=now,
    )
    session.add(job)
    await session.flush()
    await notify_jobs(session)  # workers in other processes hear of it at commit
    return job


async def enqueue_many(
    session: AsyncSession,
    kind: str,
    items: list[tuple[dict[str, Any], str | None]],
    *,
    activity_pk: int | None = None,
    give_up_after: timedelta | None = None,
    now: datetime | None = None,
) -> None:
    """`enqueue` of one job per ``(payload, host)``, in one INSERT (a fan-out's deliveries)."""
    if not items:
        return
    now = now or utcnow()
    give_up_at = now + give_up_after if give_up_after else None
    await session.execute(
        insert(Job),
        [
            {
                "kind": kind,
                "state": JobState.PENDING,
                "payload": payload,
                "host": host,
                "activity_pk": activity_pk,
                "attempts": 0,
                "next_attempt_at": now,
                "give_up_at": give_up_at,
                "last_error": "",
                "created_at": now,
            }
            for payload, host in items
        ],
    )
    await notify_jobs(session)


async def ensure_pending(
    session: AsyncSession,
    kind: str,
    run_at: datetime,
    *,
    process_key: str | None = None,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Enqueue ``kind`` at ``run_at`` unless a job for the same process (``process_key``,
    default ``kind``: a periodic cycle) is pending; True if enqueued. The database's unique
    index decides between concurrent callers: this is the one implementation of "at most one
    pending job", with no lock of its own."""
    key = process_key or kind
    found = (
        await session.execute(
            select(Job.id).where(Job.process_key == key, Job.state == JobState.PENDING).limit(1)
        )
    ).first()
    if found is not None:
        return False
    try:
        async with session.begin_nested():
            job = await enqueue(session, kind, payload or {"run_at": run_at.isoformat()}, now=now)
            job.process_key = key
            job.next_attempt_at = run_at
            await session.flush()
    except IntegrityError:
        return False
    return True


async def recur(
    session: AsyncSession, job: Job, run_at: datetime, *, now: datetime | None = None
) -> bool:
    """The periodic ``job`` schedules its next run: it is finished first (the worker's own
    update then only confirms it), so that the next one may be pending."""
    now = now or utcnow()
    row = await session.get(Job, job.id)
    if row is not None and row.state == JobState.PENDING:
        JobStates.move(row, JobStates.done)
        row.finished_at = now
        await session.flush()
    return await ensure_pending(
        session, job.kind, run_at, process_key=job.process_key or job.kind, now=now
    )


class Worker:
    """Claims due jobs and runs their handler; ``run_once`` is what tests step.

    Up to ``concurrency`` jobs run at once, at most ``per_host`` of them for one host: a claim
    skips the jobs of a host that already has its share (they stay due for the next claim).
    A handler with a ``prepare(jobs)`` method is given the jobs of its kind as soon as they
    are claimed, to load what they need in one read instead of one per job. Finished jobs are
    written together: whoever finishes while another write is in flight joins the next one
    (one transaction for all of them), and ``_finish`` returns once its job is written.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        handlers: dict[str, Handler],
        *,
        concurrency: int = 8,
        per_host: int = 2,
        lease: timedelta = timedelta(minutes=2),
        retry_base: float = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.handlers = handlers
        self.concurrency = concurrency
        self.per_host = per_host
        self.lease = lease
        self.retry_base = retry_base
        self.clock = clock
        self.wakeup = asyncio.Event()
        self._host_running: Counter[str] = Counter()
        self._unwritten: list[tuple[int, dict[str, Any], asyncio.Future[None]]] = []
        self._write_lock = asyncio.Lock()
        self._claimed_at: datetime | None = None  # the time the last claim looked at

    async def claim(self, limit: int) -> list[Job]:
        """Lease up to ``limit`` due jobs, oldest first, within each host's share."""
        now = self._claimed_at = self.clock()
        async with self.sessionmaker() as session, session.begin():
            await session.connection(execution_options=WRITE)
            query = (
                select(Job)
                .where(
                    Job.state == JobState.PENDING,
                    Job.kind.in_(list(self.handlers)),
                    Job.next_attempt_at <= now,
                    or_(Job.locked_until.is_(None), Job.locked_until < now),
                )
                .order_by(Job.next_attempt_at, Job.id)
                .limit(limit * 4)
                .with_for_update(skip_locked=True)
            )
            jobs = self._within_host_shares(list((await session.execute(query)).scalars()), limit)
            if jobs:
                await session.execute(
                    update(Job)
                    .where(Job.id.in_([j.id for j in jobs]))
                    .values(locked_until=now + self.lease)
                )
            return jobs

    async def next_due(self, after: datetime | None = None) -> datetime | None:
        """When a pending job of this worker's kinds can next be claimed, of those a claim at
        ``after`` (default: now) could not take: the next attempt of one that waits for it,
        or the end of the lease of one due but leased (by a worker that may have died); None
        when no job waits."""
        now = after or self.clock()
        pending = (Job.state == JobState.PENDING, Job.kind.in_(list(self.handlers)))
        async with read_only(self.sessionmaker) as session:
            later = await session.scalar(
                select(func.min(Job.next_attempt_at)).where(*pending, Job.next_attempt_at > now)
            )
            leased = await session.scalar(
                select(func.min(Job.locked_until)).where(
                    *pending, Job.next_attempt_at <= now, Job.locked_until > now
                )
            )
        times = [time for time in (later, leased) if time is not None]
        return min(times) if times else None

    async def _idle_timeout(self, idle_sleep: float) -> float:
        """How long a worker with nothing to claim sleeps (unless woken): until the next job
        is due, at most ``idle_sleep`` (which bounds the cost of a lost wake-up). A job that
        fell due since the claim looked (a timer may fire a little early) is claimed at once."""
        try:
            due = await self.next_due(after=self._claimed_at)
        except Exception:  # the database may be briefly unreachable: poll as usual
            log.debug("looking for the next due job failed", exc_info=True)
            return idle_sleep
        if due is None:
            return idle_sleep
        return min(idle_sleep, max(0.0, (due - self.clock()).total_seconds()))

    def _within_host_shares(self, candidates: list[Job], limit: int) -> list[Job]:
        taken: Counter[str] = Counter(self._host_running)
        chosen: list[Job] = []
        for job in candidates:
            if job.host is not None:
                if taken[job.host] >= self.per_host:
                    continue  # left unleased: the lock ends with this transaction
                taken[job.host] += 1
            chosen.append(job)
            if len(chosen) == limit:
                break
        return chosen

    async def _prepare(self, jobs: list[Job]) -> None:
        by_kind: dict[str, list[Job]] = {}
        for job in jobs:
            by_kind.setdefault(job.kind, []).append(job)
        for kind, batch in by_kind.items():
            prepare = getattr(self.handlers[kind], "prepare", None)
            if prepare is None:
                continue
            try:
                await prepare(batch)
            except Exception:  # the handler loads what it needs itself then
                log.exception("preparing %d %s jobs failed", len(batch), kind)

    def _finish_values(self, job: Job, outcome: Outcome) -> dict[str, Any]:
        now = self.clock()
        values: dict[str, Any] = {"attempts": job.attempts + 1, "locked_until": None}
        if isinstance(outcome, Done):
            state = JobStates.check(JobState.PENDING, JobStates.done)
            values |= {"state": state, "finished_at": now, "last_error": ""}
            JOBS_FINISHED.inc(kind=job.kind, outcome="done")
        elif isinstance(outcome, Fail) or (job.give_up_at is not None and now >= job.give_up_at):
            values |= {
                "state": JobStates.check(JobState.PENDING, JobStates.failed),
                "finished_at": now,
                "last_error": outcome_error(outcome),
            }
            log.warning("job %s (%s) failed: %s", job.id, job.kind, values["last_error"])
            JOBS_FINISHED.inc(kind=job.kind, outcome="failed")
        else:
            assert isinstance(outcome, Retry)
            delay = (
                outcome.delay
                if outcome.delay is not None
                else next_delay(job.attempts + 1, base=self.retry_base)
            )
            values |= {"next_attempt_at": now + delay, "last_error": outcome.error[:2000]}
            JOBS_FINISHED.inc(kind=job.kind, outcome="retry")
        return values

    async def _finish(self, job: Job, outcome: Outcome) -> None:
        """Record the outcome; returns once it is committed (with the others finished
        meanwhile: a group commit)."""
        written: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._unwritten.append((job.id, self._finish_values(job, outcome), written))
        async with self._write_lock:
            if not written.done():
                batch, self._unwritten = self._unwritten, []
                try:
                    await self._write_finished(batch)
                except Exception as exc:
                    for _, _, future in batch:
                        future.set_exception(exc)
                except BaseException:  # cancelled: the next writer takes them
                    self._unwritten[:0] = batch
                    raise
                else:
                    for _, _, future in batch:
                        future.set_result(None)
        await written

    async def _write_finished(
        self, batch: list[tuple[int, dict[str, Any], asyncio.Future[None]]], tries: int = 3
    ) -> None:
        """One transaction, one ``executemany`` per shape of outcome. Retried a little: a job
        whose outcome is lost runs again after its lease (its POST sent twice)."""
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for job_id, values, _ in batch:
            params = {"job_id": job_id, **{f"v_{key}": value for key, value in values.items()}}
            shapes.setdefault(tuple(sorted(values)), []).append(params)
        table = cast(Table, Job.__table__)
        for attempt in range(tries):
            try:
                async with self.sessionmaker() as session, session.begin():
                    await session.connection(execution_options=WRITE)
                    for keys, rows in shapes.items():
                        statement = (
                            update(table)
                            .where(
                                table.c.id == bindparam("job_id"),
                                table.c.state == JobState.PENDING,
                            )
                            .values(
                                {
                                    key: bindparam(f"v_{key}", type_=table.c[key].type)
                                    for key in keys
                                }
                            )
                        )
                        await session.execute(statement, rows)
                return
            except Exception:
                if attempt == tries - 1:
                    raise
                log.warning("writing %d finished jobs failed; again", len(batch), exc_info=True)
                await asyncio.sleep(0.1 * (attempt + 1))

    async def _run(self, job: Job) -> None:
        try:
            try:
                outcome = await self.handlers[job.kind](job)
            except Exception as exc:  # a bug or an unexpected failure: retry later, keep the job
                log.exception("job %s (%s) raised", job.id, job.kind)
                outcome = Retry(f"{type(exc).__name__}: {exc}")
        finally:
            if job.host is not None:
                self._host_running[job.host] -= 1
                if self._host_running[job.host] <= 0:
                    del self._host_running[job.host]
        await self._finish(job, outcome)

    def _start(self, jobs: list[Job], running: set[asyncio.Task[None]]) -> None:
        for job in jobs:
            if job.host is not None:
                self._host_running[job.host] += 1
            running.add(asyncio.create_task(self._run(job)))

    async def run_once(self) -> int:
        """Claim and run one batch of due jobs; return how many ran."""
        jobs = await self.claim(self.concurrency)
        if jobs:
            running: set[asyncio.Task[None]] = set()
            await self._prepare(jobs)
            self._start(jobs, running)
            await asyncio.gather(*running)
        return len(jobs)

    async def run_until_idle(self, max_batches: int = 1000) -> int:
        """Run due jobs, several in flight as in `run_forever`, until none is due and none
        runs; at most ``max_batches`` × ``concurrency`` jobs. Return how many ran."""
        return await self._pump(until_idle=True, max_jobs=max_batches * self.concurrency)

    async def run_forever(self, idle_sleep: float = 1.0) -> None:
        """Keep up to ``concurrency`` jobs running: a new one is claimed as each finishes,
        so one slow host never holds the others back. With nothing due, sleep until woken
        (``wakeup``) or until the next job is due (a retry, a deadline), at most
        ``idle_sleep`` seconds."""
        await self._pump(until_idle=False, idle_sleep=idle_sleep)

    async def _pump(
        self, *, until_idle: bool, max_jobs: int | None = None, idle_sleep: float = 1.0
    ) -> int:
        running: set[asyncio.Task[None]] = set()
        total = 0
        batch = max(1, self.concurrency // 4)  # claim when this many slots are free (or all)
        try:
            while True:
                claimed: list[Job] = []
                looked = False
                free = self.concurrency - len(running)
                if max_jobs is not None:
                    free = min(free, max_jobs - total)
                if free > 0 and (free >= batch or not running):
                    looked = True
                    self.wakeup.clear()
                    try:
                        claimed = await self.claim(free)
                    except Exception:  # the database may be briefly unreachable: keep going
                        if until_idle and not running:
                            raise
                        log.exception("worker loop error")
                if claimed:
                    total += len(claimed)
                    await self._prepare(claimed)
                    self._start(claimed, running)
                    if len(running) < self.concurrency and (max_jobs is None or total < max_jobs):
                        continue  # there may be more due jobs
                elif until_idle and not running:
                    return total
                timeout = None if until_idle and running else idle_sleep
                if looked and not claimed and not until_idle:
                    timeout = await self._idle_timeout(idle_sleep)  # a retry, a deadline…
                waiters: set[asyncio.Future[Any]] = set(running)
                wakeup = asyncio.ensure_future(self.wakeup.wait())
                waiters.add(wakeup)
                await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                wakeup.cancel()
                finished = {task for task in running if task.done()}
                running -= finished
                for task in finished:
                    if not task.cancelled() and task.exception() is not None:
                        log.error("job bookkeeping failed", exc_info=task.exception())
        finally:
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)


def outcome_error(outcome: Outcome) -> str:
    return "" if isinstance(outcome, Done) else outcome.error[:2000]
