"""Throwaway PostgreSQL databases for a test run (``ARCHIPEL_TEST_POSTGRES_URL``).

A run migrates one template database (``migrated_postgres``) and copies it for each database
the tests need (``copied_postgres``: ``CREATE DATABASE … TEMPLATE``, faster than migrating
again). ``PostgresEmptier`` empties a database between tests over one connection per
database kept for the run (a new connection per test cost ~3 ms of CPU and ~10 ms).
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from node.db import Base, make_engine
from node.migrate import upgrade

__all__ = [
    "POSTGRES_ENV",
    "POSTGRES_SKIP",
    "PostgresEmptier",
    "admin_execute",
    "copied_postgres",
    "empty_postgres",
    "migrated_postgres",
    "postgres_admin_url",
    "throwaway_postgres",
]

POSTGRES_ENV = "ARCHIPEL_TEST_POSTGRES_URL"
POSTGRES_SKIP = f"{POSTGRES_ENV} is not set: PostgreSQL variant skipped"


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


async def admin_execute(admin_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(admin_url)
    connection = await asyncpg.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 5432,
        user=url.username or "postgres",
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@contextmanager
def throwaway_postgres(
    prefix: str = "archipel_test", *, template: str | None = None
) -> Iterator[str]:
    """An empty (unmigrated) PostgreSQL database, dropped afterwards; skips the test when no
    server is configured. The name carries the process id: xdist workers never share one.
    With ``template`` (a database's URL), a copy of that database instead."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(POSTGRES_SKIP)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    copy = f' TEMPLATE "{make_url(template).database}"' if template else ""
    asyncio.run(admin_execute(admin_url, f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def migrated_postgres(prefix: str = "archipel_test") -> Iterator[str]:
    """As ``throwaway_postgres``, migrated to the newest revision."""
    with throwaway_postgres(prefix) as url:
        upgrade(url)
        yield url


@contextmanager
def copied_postgres(template: str, prefix: str = "archipel_test") -> Iterator[str]:
    """As ``throwaway_postgres``, a copy of the database at ``template`` (migrated, and to
    which nothing is connected)."""
    with throwaway_postgres(prefix, template=template) as url:
        yield url


async def empty_postgres(url: str) -> None:
    """Every table of a migrated database emptied and every sequence restarted, as a new
    database would be (faster than migrating again). Only the tables holding rows are
    emptied, by ``DELETE`` (a ``TRUNCATE`` makes new files for every table and index: half
    a second per test, where a test fills a few small tables)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            await _empty(connection)
    finally:
        await engine.dispose()


async def _empty(connection: AsyncConnection) -> None:
    for name in reversed(await _filled_tables(connection)):  # children first
        await connection.execute(text(f'DELETE FROM "{name}"'))
    used = await connection.execute(
        text(
            "SELECT schemaname, sequencename FROM pg_sequences"
            " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
        )
    )
    for schema, sequence in used.all():
        await connection.execute(text(f'ALTER SEQUENCE "{schema}"."{sequence}" RESTART'))


async def _filled_tables(connection: AsyncConnection) -> list[str]:
    """The tables of the models that hold at least one row (one query)."""
    probes = " UNION ALL ".join(
        f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")"
        for t in Base.metadata.sorted_tables
    )
    return list((await connection.execute(text(probes))).scalars())


class PostgresEmptier:
    """``empty(url)`` as ``empty_postgres``, for synchronous fixtures, over one engine per
    database kept for the run on an event loop of its own thread (a test's own loop does not
    run yet when its database is emptied); ``forget(url)`` before the database is dropped."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="postgres-emptier", daemon=True
        )
        self._thread.start()
        self._engines: dict[str, AsyncEngine] = {}

    def _run(self, coroutine: Coroutine[Any, Any, None]) -> None:
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def empty(self, url: str) -> None:
        self._run(self._empty(url))

    async def _empty(self, url: str) -> None:
        engine = self._engines.get(url)
        if engine is None:
            engine = self._engines[url] = make_engine(url, pool_size=1)
        async with engine.begin() as connection:
            await _empty(connection)

    def forget(self, url: str) -> None:
        """Closes the connection to ``url``'s database, if any."""
        engine = self._engines.pop(url, None)
        if engine is not None:
            self._run(engine.dispose())

    def close(self) -> None:
        for url in list(self._engines):
            self.forget(url)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
