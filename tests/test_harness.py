"""The test harness's own tricks: the compiled-statement cache shared by alike engines."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import create_async_engine

from node.activitypub.models import LocalActor
from node.db import make_engine
from tests.harness.engines import SharedCompiledCache, dialect_signature


async def test_alike_engines_share_compiled_statements(tmp_path: Path) -> None:
    cache = SharedCompiledCache(100)
    table = LocalActor.__table__
    assert isinstance(table, Table)
    query = select(LocalActor.username).where(LocalActor.username == "lille")
    for name in ("a", "b"):
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{tmp_path / name}.db",
            execution_options={"compiled_cache": cache},
        )
        try:
            async with engine.begin() as connection:
                await connection.run_sync(table.create)
                assert (await connection.execute(query)).all() == []
        finally:
            await engine.dispose()
        assert len(cache) == 1  # the second engine found the first one's SQL


async def test_dialects_set_differently_do_not_share(sqlite_template: Path) -> None:
    url = f"sqlite+aiosqlite:///{sqlite_template}"
    engines = [
        make_engine(url),
        make_engine(url),
        create_async_engine(url, json_serializer=json.dumps),
        create_async_engine(url.replace("sqlite+aiosqlite", "postgresql+asyncpg")),
    ]
    try:
        for engine in engines[:3]:
            async with engine.connect():
                pass
        signatures = [dialect_signature(e.dialect) for e in engines]
    finally:
        for engine in engines:
            await engine.dispose()
    assert signatures[0] == signatures[1]
    assert len({signatures[0], signatures[2], signatures[3]}) == 3
