"""Throwaway PostgreSQL databases for a test run (``ARCHIPEL_TEST_POSTGRES_URL``)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from node.db import Base, make_engine
from node.migrate import upgrade

__all__ = [
    "POSTGRES_ENV",
    "POSTGRES_SKIP",
    "admin_execute",
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
def throwaway_postgres(prefix: str = "archipel_test") -> Iterator[str]:
    """An empty (unmigrated) PostgreSQL database, dropped afterwards; skips the test when no
    server is configured. The name carries the process id: xdist workers never share one."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(POSTGRES_SKIP)
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
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


async def empty_postgres(url: str) -> None:
    """Every table of a migrated database emptied and every sequence restarted, as a new
    database would be (faster than migrating again). Only the tables holding rows are
    emptied, by ``DELETE`` (a ``TRUNCATE`` makes new files for every table and index: half
    a second per test, where a test fills a few small tables)."""
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
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
    finally:
        await engine.dispose()


async def _filled_tables(connection: AsyncConnection) -> list[str]:
    """The tables of the models that hold at least one row (one query)."""
    probes = " UNION ALL ".join(
        f"SELECT '{t.name}' WHERE EXISTS (SELECT 1 FROM \"{t.name}\")"
        for t in Base.metadata.sorted_tables
    )
    return list((await connection.execute(text(probes))).scalars())
