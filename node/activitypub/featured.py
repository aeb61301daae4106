"""What a local actor pins on its profile: its ``featured`` collection (Mastodon's pinned
posts). The domain decides who may pin what; this keeps the list."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.models import FeaturedObject
from node.db import insert_for, utcnow

__all__ = ["MAX_FEATURED", "featured_ids", "pin", "unpin"]

#: Mastodon shows five pinned posts; a few more is harmless, hundreds is not a profile.
MAX_FEATURED = 20


async def featured_ids(session: AsyncSession, actor_uri: str) -> list[str]:
    """The pinned object ids, the latest pinned first."""
    rows = await session.execute(
        select(FeaturedObject.object_id)
        .where(FeaturedObject.actor_uri == actor_uri)
        .order_by(FeaturedObject.id.desc())
        .limit(MAX_FEATURED)
    )
    return list(rows.scalars())


async def pin(session: AsyncSession, actor_uri: str, object_id: str) -> bool:
    """Pin ``object_id``; False when it already was."""
    result = await session.execute(
        insert_for(session, FeaturedObject)
        .values(actor_uri=actor_uri, object_id=object_id, created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[FeaturedObject.actor_uri, FeaturedObject.object_id])
    )
    return bool(getattr(result, "rowcount", 0))


async def unpin(session: AsyncSession, actor_uri: str, object_id: str | None = None) -> bool:
    """Unpin ``object_id`` (every actor's pin of it when ``actor_uri`` is empty)."""
    statement = delete(FeaturedObject)
    if actor_uri:
        statement = statement.where(FeaturedObject.actor_uri == actor_uri)
    if object_id is not None:
        statement = statement.where(FeaturedObject.object_id == object_id)
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))
