"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

import asyncio
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from node.db import make_engine
from node.migrate import current_heads, downgrade, head_revisions, include_object, upgrade
from node.models import Base


def _inspect(url: str, fn: Any) -> Any:
    async def run() -> Any:
        engine = make_engine(url)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(fn)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _diff(sync_connection: Any) -> list[Any]:
    context = MigrationContext.configure(
        sync_connection, opts={"compare_type": True, "include_object": include_object}
    )
    return compare_metadata(context, Base.metadata)


def test_migrated_database_matches_the_models(database_url: str) -> None:
    assert _inspect(database_url, _diff) == []


def test_database_is_at_head(database_url: str) -> None:
    async def heads() -> frozenset[str]:
        engine = make_engine(database_url)
        try:
            return await current_heads(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(heads()) == head_revisions()
    assert len(head_revisions()) == 1, "merge the migration branches"


def test_downgrade_to_nothing_and_back(database_url: str) -> None:
    downgrade(database_url, "base")
    tables = _inspect(database_url, lambda c: set(inspect(c).get_table_names()))
    assert tables <= {"alembic_version"}
    upgrade(database_url)
    tables = _inspect(database_url, lambda c: set(inspect(c).get_table_names()))
    assert {t.name for t in Base.metadata.sorted_tables} <= tables
    assert _inspect(database_url, _diff) == []
