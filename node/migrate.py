"""Apply the Alembic migrations shipped inside the package."""

from __future__ import annotations

import asyncio
import functools
from importlib import resources
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = [
    "alembic_config",
    "include_object",
    "current_heads",
    "downgrade",
    "head_revisions",
    "upgrade",
    "upgrade_async",
]


#: Database objects that migrations create by hand and the models do not describe:
#: full-text search (SQLite FTS5 ``bricks_fts`` and its shadow tables; PostgreSQL
#: ``bricks.search_vector`` and its GIN index). Autogenerate and the drift test skip them.
_UNMODELLED_TABLE_PREFIXES = ("bricks_fts",)
_UNMODELLED_COLUMNS = frozenset({("bricks", "search_vector")})
_UNMODELLED_INDEXES = frozenset({"ix_bricks_search_vector"})


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    """Alembic ``include_object`` hook: leave the hand-made full-text objects alone."""
    if type_ == "table" and name and name.startswith(_UNMODELLED_TABLE_PREFIXES):
        return False
    if type_ == "column" and (getattr(obj.table, "name", None), name) in _UNMODELLED_COLUMNS:
        return False
    if type_ == "index" and name in _UNMODELLED_INDEXES:
        return False
    return True


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resources.files("node") / "migrations"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "heads") -> None:
    """Migrate up. Synchronous (Alembic runs its own event loop): call it outside a loop,
    or through ``asyncio.to_thread``."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


@functools.cache
def head_revisions() -> frozenset[str]:
    """The newest revision of each branch (one, once branches are merged). The scripts ship
    with the package and cannot change while it runs: they are read once per process."""
    return frozenset(ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads())


async def current_heads(engine: AsyncEngine) -> frozenset[str]:
    async with engine.connect() as connection:
        heads = await connection.run_sync(
            lambda sync: MigrationContext.configure(sync).get_current_heads()
        )
    return frozenset(heads)


async def upgrade_async(database_url: str, revision: str = "heads") -> None:
    await asyncio.to_thread(upgrade, database_url, revision)
