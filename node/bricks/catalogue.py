"""The catalogue: filters, full-text search on the database's own index, keyset paging.

Search uses SQLite FTS5 (``bricks_fts``) or PostgreSQL ``tsvector`` (``search_vector``),
both made by migration ``0004``. Every word of the query must match, as a prefix
(``commun`` finds ``communs``). Pages are ordered newest first by ``id`` and continue
from a cursor (the last id seen), so page 500 costs what page 1 costs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Select, func, literal_column, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from node.bricks.models import Brick, BrickAuthor, BrickTag
from node.bricks.validation import normalize_tag

__all__ = ["CatalogueQuery", "Page", "Scope", "count_local_bricks", "search_bricks"]

Scope = Literal["local", "federated", "all"]
MAX_PAGE = 100
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class CatalogueQuery:
    q: str = ""
    category: str | None = None
    tag: str | None = None
    author: str | None = None  # an actor URI
    chamber: str | None = None  # a host
    scope: Scope = "all"
    cursor: int | None = None
    limit: int = 20


@dataclass(frozen=True)
class Page:
    items: list[Brick]
    next_cursor: int | None


def _words(q: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(q)][:12]


#: PostgreSQL: how many of the newest candidate rows a search scans before it asks the
#: full-text index for every match instead (see ``_postgres_ids``).
PROBE_WINDOW = 5_000


def _sqlite_match(statement: Select[Any], words: list[str]) -> Select[Any]:
    expression = " ".join(f'"{w}"*' for w in words)
    return statement.where(
        Brick.id.in_(
            text("SELECT rowid FROM bricks_fts WHERE bricks_fts MATCH :fts").bindparams(
                fts=expression
            )
        )
    )


def _postgres_match(words: list[str]) -> Any:
    expression = " & ".join(f"{w}:*" for w in words)
    vector: Any = literal_column("bricks.search_vector")
    config: Any = literal_column("'simple'::regconfig")
    return vector.op("@@")(func.to_tsquery(config, expression))


async def _postgres_ids(
    session: AsyncSession, filtered: Select[Any], words: list[str], limit: int
) -> list[int]:
    """Newest matching ids on PostgreSQL, fast whether the words are common or rare.

    The planner cannot estimate prefix queries (an unseen word counts as 0.5 % of rows),
    so left alone it walks the primary key backwards and, for a rare word, reads the whole
    table. Instead: look for matches among the newest ``PROBE_WINDOW`` candidates (enough
    for a common word); when that window does not fill the page, ask the GIN index for
    every match (a rare word has few) and keep the newest.
    """
    match = _postgres_match(words)
    # The LIMIT inside keeps the match from being pushed down: it is evaluated row by row
    # on the newest candidates, and the scan stops as soon as the page is full.
    window = (
        filtered.add_columns(match.label("hit"))
        .order_by(Brick.id.desc())
        .limit(PROBE_WINDOW)
        .subquery()
    )
    probe = select(window.c.id).where(window.c.hit).order_by(window.c.id.desc()).limit(limit)
    ids = list((await session.execute(probe)).scalars())
    if len(ids) >= limit:
        return ids
    matches = filtered.where(match).cte("matches").prefix_with("MATERIALIZED")
    every = select(matches.c.id).order_by(matches.c.id.desc()).limit(limit)
    return list((await session.execute(every)).scalars())


async def search_bricks(session: AsyncSession, query: CatalogueQuery) -> Page:
    limit = max(1, min(query.limit, MAX_PAGE))
    filtered: Select[Any] = select(Brick.id)
    if query.scope == "local":
        filtered = filtered.where(Brick.local.is_(True))
    elif query.scope == "federated":
        filtered = filtered.where(Brick.local.is_(False))
    if query.category:
        filtered = filtered.where(Brick.category == query.category)
    if query.chamber:
        filtered = filtered.where(Brick.host == query.chamber.lower())
    if query.tag:
        filtered = filtered.where(
            Brick.id.in_(select(BrickTag.brick_id).where(BrickTag.name == normalize_tag(query.tag)))
        )
    if query.author:
        filtered = filtered.where(
            Brick.id.in_(select(BrickAuthor.brick_id).where(BrickAuthor.actor_uri == query.author))
        )
    if query.cursor is not None:
        filtered = filtered.where(Brick.id < query.cursor)
    words = _words(query.q)
    if words and session.get_bind().dialect.name == "postgresql":
        ids = await _postgres_ids(session, filtered, words, limit + 1)
    else:
        if words:
            filtered = _sqlite_match(filtered, words)
        statement = filtered.order_by(Brick.id.desc()).limit(limit + 1)
        ids = list((await session.execute(statement)).scalars())
    more = len(ids) > limit
    ids = ids[:limit]
    rows = {
        b.id: b for b in (await session.execute(select(Brick).where(Brick.id.in_(ids)))).scalars()
    }
    items = [rows[i] for i in ids if i in rows]
    return Page(items=items, next_cursor=ids[-1] if more and ids else None)


async def count_local_bricks(session: AsyncSession) -> int:
    return int(
        (
            await session.execute(select(func.count(Brick.id)).where(Brick.local.is_(True)))
        ).scalar_one()
    )
