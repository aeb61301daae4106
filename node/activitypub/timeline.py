"""A follower's timeline: what the actors it follows published, read from received activities.

Deliveries are stored once per activity (``activities``, direction ``in``); a timeline is a
query joining them with the follows of the reader (a member, and the chamber whose follows
its members share), newest received first, paged by the stored activity's id (keyset).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from node.activitypub.federation import id_of
from node.activitypub.models import Follow, FollowState, StoredActivity

__all__ = ["TIMELINE_TYPES", "TimelineEntry", "TimelinePage", "timeline"]

#: Activities that publish something; Update and Delete change what was shown, not the order.
TIMELINE_TYPES = ("Create", "Announce")


@dataclass(frozen=True)
class TimelineEntry:
    """One published object: ``key`` is the cursor, ``actor`` who published or shared it."""

    key: int
    activity_type: str
    actor: str
    received_at: datetime
    object: dict[str, Any] | None
    object_id: str | None


@dataclass(frozen=True)
class TimelinePage:
    entries: list[TimelineEntry]
    next_before: int | None


def _object_of(document: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The published object: a Create's object, an Announce's (itself maybe a Create)."""
    obj = document.get("object")
    if isinstance(obj, dict) and obj.get("type") in ("Create", "Update"):
        obj = obj.get("object")
    return (obj if isinstance(obj, dict) else None), id_of(obj)


async def timeline(
    session: AsyncSession, readers: list[str], *, before: int | None = None, limit: int = 20
) -> TimelinePage:
    """What the actors ``readers`` follow (accepted follows) published, newest first; a
    brick and its chamber's Announce show once."""
    followed = select(Follow.followee_uri).where(
        Follow.follower_uri.in_(readers), Follow.state == FollowState.ACCEPTED
    )
    # An Announce of what a followed author's own Create brought already shows once: the
    # Create (a condition on the row alone, so that pages never disagree).
    original = aliased(StoredActivity)
    shown_already = (
        select(original.id)
        .where(
            original.direction == "in",
            original.activity_type == "Create",
            original.actor_uri.in_(followed),
            or_(
                original.activity_id == StoredActivity.object_id,
                original.object_id == StoredActivity.object_id,
            ),
        )
        .exists()
    )
    query = (
        select(StoredActivity)
        .where(
            StoredActivity.direction == "in",
            StoredActivity.activity_type.in_(TIMELINE_TYPES),
            StoredActivity.actor_uri.in_(followed),
            ~((StoredActivity.activity_type == "Announce") & shown_already),
        )
        .order_by(StoredActivity.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(StoredActivity.id < before)
    rows = list((await session.execute(query)).scalars())
    entries: list[TimelineEntry] = []
    seen: set[str] = set()
    for row in rows:
        obj, object_id = _object_of(row.document)
        if object_id is not None and object_id in seen:
            continue
        if object_id is not None:
            seen.add(object_id)
        entries.append(
            TimelineEntry(row.id, row.activity_type, row.actor_uri, row.created_at, obj, object_id)
        )
    return TimelinePage(entries, rows[-1].id if len(rows) == limit else None)
