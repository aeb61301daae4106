"""Waking workers when a job is enqueued.

A worker sleeps until its ``wakeup`` event is set, its next job is due, or its idle poll
comes round (a second). In one process, a transaction that enqueued a job (``notify_jobs``)
sets the events of the workers ``listening`` on the same engine when it commits; when servers
and workers are separate processes (``archipel serve --workers N --no-worker`` beside
``archipel worker``), the news crosses the database:

- **PostgreSQL**: ``enqueue`` calls ``notify_jobs`` in the enqueuing transaction (so must
  code that inserts jobs without ``enqueue``), which sends ``pg_notify('archipel_jobs', '')``
  once per transaction; PostgreSQL delivers it when (and only if) the transaction commits.
  Each process that runs a worker holds one extra connection that ``LISTEN``s on the channel
  (``listening``) and sets the worker's event. The connection is checked every ``keepalive``
  seconds and opened again when lost (the worker is then woken once: a job may have been
  enqueued meanwhile). It must be a direct connection to PostgreSQL: a pooler in
  transaction mode (PgBouncer) does not carry ``LISTEN``.
- **SQLite**: no notifications; ``listening`` reads the highest job id every
  ``poll_interval`` seconds (a read that waits for no writer) and wakes the worker when it
  grew (and once when it starts).

Either way a lost wake-up costs at most the worker's idle poll: jobs are rows, the event only
saves the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from node.db import READ_ONLY

__all__ = ["CHANNEL", "listening", "notify_jobs"]

log = logging.getLogger(__name__)

#: The PostgreSQL notification channel that says "a job was enqueued".
CHANNEL = "archipel_jobs"
_NOTIFIED = "archipel_wake_notified"
_ENQUEUED = "archipel_wake_enqueued"

#: The wake-up events of the workers listening in this process, by engine, with their loops
#: (each value is replaced, never changed: a commit in another thread may be reading it).
_LOCAL: weakref.WeakKeyDictionary[Engine, dict[asyncio.Event, asyncio.AbstractEventLoop]] = (
    weakref.WeakKeyDictionary()
)


async def notify_jobs(session: AsyncSession) -> None:
    """Tell the workers of every process that this transaction enqueued a job: those of this
    process at commit (`_wake_local_workers`), the others by ``pg_notify`` on PostgreSQL
    (delivered at commit; sent once per transaction), by their poll on SQLite."""
    bind = session.get_bind()
    session.info[_ENQUEUED] = bind
    if bind.dialect.name != "postgresql":
        return
    transaction = session.get_transaction()
    notified = session.info.get(_NOTIFIED)
    if transaction is not None and notified is not None and notified() is transaction:
        return
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})
    if transaction is not None and not session.in_nested_transaction():
        # (a savepoint rolled back discards its notification: one there is not remembered)
        session.info[_NOTIFIED] = weakref.ref(transaction)


@event.listens_for(Session, "after_commit")
def _wake_local_workers(session: Session) -> None:
    """A transaction that enqueued a job committed: wake this process's workers on its
    engine at once (no wait for a poll or a notification's round trip)."""
    engine = session.info.pop(_ENQUEUED, None)
    if engine is None:
        return
    for wakeup, loop in _LOCAL.get(engine, {}).items():
        try:
            same_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            same_loop = False
        if same_loop:
            wakeup.set()
        else:
            with contextlib.suppress(RuntimeError):  # its loop is closed: nobody to wake
                loop.call_soon_threadsafe(wakeup.set)


@event.listens_for(Session, "after_soft_rollback")
def _forget_enqueued(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back transaction enqueued nothing (a savepoint's rollback leaves the flag:
    at worst a worker looks for nothing)."""
    if previous_transaction.parent is None:
        session.info.pop(_ENQUEUED, None)


@asynccontextmanager
async def listening(
    engine: AsyncEngine,
    wakeup: asyncio.Event,
    *,
    poll_interval: float = 0.25,
    keepalive: float = 30.0,
    retry: float = 2.0,
) -> AsyncIterator[None]:
    """While inside, ``wakeup`` is set whenever any process enqueues a job on ``engine``'s
    database (``LISTEN`` on PostgreSQL, a poll on SQLite; at the commit itself in this
    process)."""
    if engine.dialect.name == "postgresql":
        watch = _listen_postgres(engine, wakeup, keepalive=keepalive, retry=retry)
    else:
        watch = _poll_newest_job(engine, wakeup, interval=poll_interval)
    task = asyncio.create_task(watch, name="archipel-wake")
    key = engine.sync_engine
    _LOCAL[key] = {**_LOCAL.get(key, {}), wakeup: asyncio.get_running_loop()}
    try:
        yield
    finally:
        _LOCAL[key] = {w: loop for w, loop in _LOCAL.get(key, {}).items() if w is not wakeup}
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _listen_postgres(
    engine: AsyncEngine, wakeup: asyncio.Event, *, keepalive: float, retry: float
) -> None:
    import asyncpg

    args, params = engine.sync_engine.dialect.create_connect_args(engine.url)
    while True:
        try:
            connection = await asyncpg.connect(*args, **params)
        except Exception as exc:  # noqa: BLE001 -- unreachable, refused: the poll still runs
            log.warning("cannot listen for jobs (%s): retrying in %.0f s", exc, retry)
            await asyncio.sleep(retry)
            continue
        try:
            await _hold(connection, wakeup, keepalive)
        except Exception as exc:  # noqa: BLE001 -- whatever broke it, listen again
            log.warning("the job listener lost its connection (%s): listening again", exc)
        finally:
            connection.terminate()
        await asyncio.sleep(retry)


async def _hold(connection: Any, wakeup: asyncio.Event, keepalive: float) -> None:
    """Listen on ``connection`` until it is lost (returns or raises)."""
    lost = asyncio.Event()
    connection.add_termination_listener(lambda _connection: lost.set())
    await connection.add_listener(CHANNEL, lambda *_notification: wakeup.set())
    wakeup.set()  # a job may have been enqueued while nobody listened
    while not connection.is_closed():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(lost.wait(), timeout=keepalive)
            return
        await connection.fetchval("SELECT 1", timeout=10)


async def _poll_newest_job(engine: AsyncEngine, wakeup: asyncio.Event, *, interval: float) -> None:
    newest: int | None = None
    while True:
        try:
            async with engine.connect() as connection:
                connection = await connection.execution_options(**READ_ONLY)
                found = (await connection.execute(text("SELECT max(id) FROM jobs"))).scalar()
        except Exception:  # noqa: BLE001 -- the database may be briefly busy: poll again
            log.debug("polling for new jobs failed", exc_info=True)
        else:
            if newest is None or (found or 0) > newest:
                wakeup.set()  # (once at the start, as on PostgreSQL: the worker looks anyway)
            newest = found or 0
        await asyncio.sleep(interval)
