"""Waking workers across processes: a job committed through one engine wakes a worker that
listens through another (``LISTEN/NOTIFY`` on PostgreSQL, a poll on SQLite); a transaction
notifies once, and only if it commits; a listener whose connection is lost listens again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from node.db import make_engine, make_sessionmaker, session_scope
from node.jobs import enqueue
from node.wake import CHANNEL, listening
from tests.harness.databases import empty_postgres

#: Generous: a wake-up comes within a poll interval or a notification's round trip; the
#: bound only keeps a broken listener from hanging the run.
PATIENCE = 30.0


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    """Two engines on one database, as two processes would have."""
    first, second = make_engine(database_url), make_engine(database_url)
    try:
        yield first, second
    finally:
        await first.dispose()
        await second.dispose()


async def woken(wakeup: asyncio.Event) -> bool:
    """Whether ``wakeup`` was set within the patience (then cleared for the next one)."""
    try:
        await asyncio.wait_for(wakeup.wait(), PATIENCE)
    except TimeoutError:
        return False
    wakeup.clear()
    return True


async def test_a_job_committed_elsewhere_wakes_the_listener(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    worker_engine, server_engine = engines
    wakeup = asyncio.Event()
    async with listening(worker_engine, wakeup, poll_interval=0.05):
        assert await woken(wakeup), "a listener wakes once when it starts (jobs may be due)"
        async with session_scope(make_sessionmaker(server_engine)) as session:
            await enqueue(session, "test", {})
        assert await woken(wakeup), "a job committed through another engine woke nobody"


async def test_a_job_committed_in_this_process_wakes_its_worker_at_once(
    engines: tuple[AsyncEngine, AsyncEngine],
) -> None:
    """Through the worker's own engine the commit itself wakes it: no poll (an hour here) or
    notification is waited for; a rolled-back job wakes nobody."""
    engine, _ = engines
    wakeup = asyncio.Event()
    async with listening(engine, wakeup, poll_interval=3600):
        assert await woken(wakeup)  # the wake-up at the start
        sessionmaker = make_sessionmaker(engine)
        async with sessionmaker() as session:
            await enqueue(session, "test", {})
            await session.rollback()
        await asyncio.sleep(0)
        assert not wakeup.is_set(), "a rolled-back job woke the worker"
        async with session_scope(sessionmaker) as session:
            await enqueue(session, "test", {})
        assert wakeup.is_set(), "the commit did not wake the worker of this process"
    async with session_scope(sessionmaker) as session:
        await enqueue(session, "test", {})  # nobody listens any more: nothing to wake


@pytest.fixture
async def postgres_url(postgres_database: str) -> str:
    await empty_postgres(postgres_database)
    return postgres_database


async def _raw_listener(url: str) -> tuple[Any, list[str]]:
    parsed = make_url(url)
    connection = await asyncpg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, database=parsed.database
    )
    heard: list[str] = []
    await connection.add_listener(CHANNEL, lambda *args: heard.append(args[-1]))
    return connection, heard


async def test_a_transaction_notifies_once_and_only_when_it_commits(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    notifies: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "pg_notify" in statement:
            notifies.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    connection, heard = await _raw_listener(postgres_url)
    sessionmaker = make_sessionmaker(engine)
    try:
        async with sessionmaker() as session:
            await enqueue(session, "test", {"n": 0})
            await session.rollback()
        async with session_scope(sessionmaker) as session:
            for n in range(3):
                await enqueue(session, "test", {"n": n})
        assert len(notifies) == 2  # the rolled-back transaction's, then one for three jobs
        async with session_scope(sessionmaker) as session:
            await enqueue(session, "test", {"n": 3})
        assert len(notifies) == 3  # a new transaction notifies again
        for _ in range(int(PATIENCE / 0.05)):
            if len(heard) == 2:
                break
            await asyncio.sleep(0.05)
        assert heard == ["", ""]  # the two commits, not the rollback
    finally:
        await connection.close()
        await engine.dispose()


async def test_a_listener_whose_connection_is_cut_listens_again(postgres_url: str) -> None:
    listener_engine, other = make_engine(postgres_url), make_engine(postgres_url)
    wakeup = asyncio.Event()
    try:
        async with listening(listener_engine, wakeup, retry=0.05):
            assert await woken(wakeup)
            async with other.begin() as connection:
                cut = await connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                    )
                )
                assert cut.scalars().all() == [True]
            assert await woken(wakeup)  # listening again (woken, in case a job came meanwhile)
            async with session_scope(make_sessionmaker(other)) as session:
                await enqueue(session, "test", {})
            assert await woken(wakeup), "after the cut, a committed job woke nobody"
    finally:
        await listener_engine.dispose()
        await other.dispose()
