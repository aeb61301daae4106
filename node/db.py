"""Database engine, sessions and the declarative base shared by every domain.

SQLite (aiosqlite) is the embedded default, PostgreSQL (asyncpg) the production database;
both run the same models and the same Alembic migrations.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase

__all__ = [
    "Base",
    "UTCDateTime",
    "READ_ONLY",
    "WRITE",
    "async_url",
    "insert_for",
    "is_sqlite",
    "make_engine",
    "make_sessionmaker",
    "read_only",
    "session_scope",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def insert_for(session: AsyncSession, table: Any) -> Any:
    """``INSERT`` in the session's dialect, for ``on_conflict_do_update``/``do_nothing``: the
    one way to write an atomic upsert on both databases (SQLite >= 3.35 and PostgreSQL)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on both databases (SQLite stores no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def async_url(url: str) -> str:
    """Map plain database URLs to the async drivers we ship."""
    parsed = make_url(url)
    driver = parsed.drivername
    if driver in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif driver in ("postgres", "postgresql", "postgresql+psycopg2", "postgresql+psycopg"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif driver not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise ValueError(f"unsupported database URL {driver!r}: use sqlite or postgresql")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url_or_engine: str | AsyncEngine) -> bool:
    if isinstance(url_or_engine, AsyncEngine):
        return url_or_engine.dialect.name == "sqlite"
    return make_url(url_or_engine).get_backend_name() == "sqlite"


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself (pysqlite's implicit transactions are wrong for us).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    """``BEGIN IMMEDIATE`` unless the transaction declared itself read-only (``READ_ONLY``).

    A deferred transaction that reads and then writes fails at once with "database is
    locked" when another connection is writing (SQLite refuses the lock upgrade rather than
    deadlock), so on SQLite every transaction takes the write lock up front, waiting up to
    ``busy_timeout``. PostgreSQL ignores this and relies on its row locks.
    """
    mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
    conn.exec_driver_sql(f"BEGIN {mode}")


#: ``session.connection(execution_options=WRITE)``: the transaction will write (the default).
WRITE = {"sqlite_begin": "IMMEDIATE"}
#: ``session.connection(execution_options=READ_ONLY)`` first thing in a transaction that only
#: reads: on SQLite it then runs beside writers instead of waiting for them.
READ_ONLY = {"sqlite_begin": "DEFERRED"}


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    url = async_url(url)
    if is_sqlite(url):
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
        return engine
    # No ping on every checkout (a round trip per transaction): connections are recycled
    # after ``pool_recycle`` seconds instead, below the idle timeouts of proxies and
    # servers, and a connection that died meanwhile fails one transaction, not every one.
    kwargs.setdefault("pool_recycle", 300)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
    return create_async_engine(url, **kwargs)


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def read_only(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """A session that only reads: on SQLite it does not wait for (or block) writers, and it
    can be opened while this task already holds a write transaction."""
    async with sessionmaker() as session:
        await session.connection(execution_options=READ_ONLY)
        yield session


@asynccontextmanager
async def session_scope(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One transaction: commit on success, roll back on any exception."""
    async with sessionmaker() as session, session.begin():
        yield session
