"""Migration 0010: tokens made before it get a name (their label, made unique per member)
and keep working."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from node.config import Settings
from node.db import make_engine, make_sessionmaker, session_scope
from node.members.service import authenticate_token, create_member, create_token
from node.migrate import downgrade, upgrade
from node.secretbox import SecretBox


async def _tokens(url: str, secret: str) -> list[str]:
    engine = make_engine(url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            tokens = []
            for username in ("jean", "marie"):
                member = await create_member(
                    session,
                    SecretBox(secret),
                    username=username,
                    chamber_username="lille",
                    status="approved",
                )
                tokens += [await create_token(session, member, f"t{n}") for n in range(3)]
            return tokens
    finally:
        await engine.dispose()


async def _sql(url: str, *statements: str) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        async with engine.begin() as connection:
            rows: list[tuple[object, ...]] = []
            for statement in statements:
                result = await connection.execute(text(statement))
                rows = [tuple(row) for row in result] if result.returns_rows else []
            return rows
    finally:
        await engine.dispose()


async def _authenticated(url: str, tokens: list[str]) -> list[str | None]:
    engine = make_engine(url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            found = [await authenticate_token(session, token) for token in tokens]
            return [member.username if member else None for member in found]
    finally:
        await engine.dispose()


def test_old_tokens_get_unique_names_and_keep_working(settings: Settings) -> None:
    url = settings.database_url
    tokens = asyncio.run(_tokens(url, settings.secret_key))
    downgrade(url, "0009")
    try:
        ids = asyncio.run(_sql(url, "SELECT id FROM api_tokens ORDER BY id"))
        first = int(ids[0][0])  # type: ignore[call-overload]
        asyncio.run(
            _sql(
                url,
                "UPDATE api_tokens SET label = 'cli'",
                f"UPDATE api_tokens SET label = '' WHERE id IN ({first + 2}, {first + 5})",
            )
        )
    finally:
        upgrade(url)
    names = asyncio.run(_sql(url, "SELECT name FROM api_tokens ORDER BY id"))
    assert [name for (name,) in names] == [
        "cli",
        f"cli-{first + 1}",
        f"token-{first + 2}",
        "cli",
        f"cli-{first + 4}",
        f"token-{first + 5}",
    ]
    assert asyncio.run(_authenticated(url, tokens)) == ["jean"] * 3 + ["marie"] * 3
