"""Helpers shared by the operations tests: table snapshots (throwaway PostgreSQL databases come
from the harness: ``tests.harness.databases.throwaway_postgres``)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import inspect, select

from node.db import make_engine
from node.ops.backup import tables
from tests.harness.databases import throwaway_postgres

__all__ = ["snapshot", "throwaway_postgres"]


async def _snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as connection:
            present = set(await connection.run_sync(lambda sync: inspect(sync).get_table_names()))
            snapshot = {}
            for table in tables():
                if table.name not in present:
                    continue
                order = list(table.primary_key.columns)
                rows = await connection.execute(select(table).order_by(*order))
                snapshot[table.name] = [dict(row) for row in rows.mappings()]
            return snapshot
    finally:
        await engine.dispose()


def snapshot(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, as the models read it (typed values)."""
    return asyncio.run(_snapshot(url))
