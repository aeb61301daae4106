"""Helpers shared by the operations tests: throwaway PostgreSQL databases, table snapshots."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url

from node.db import make_engine
from node.ops.backup import tables
from tests.conftest import POSTGRES_SKIP, _admin_execute, postgres_admin_url


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """An empty (unmigrated) PostgreSQL database, dropped afterwards."""
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip(POSTGRES_SKIP)
    name = f"archipel_ops_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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
