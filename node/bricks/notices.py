"""The local authors of a brick hear of a review or a rating (``node.members.notifications``),
in the transaction that stores it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.bricks.models import Brick, BrickAuthor
from node.members.notifications import NotificationType, notify

__all__ = ["notify_review"]


async def notify_review(
    session: AsyncSession, brick: Brick, who: str, rating: int | None, reviewer_id: int | None
) -> None:
    """``who`` (a name) reviewed ``brick``; each local author but the reviewer is told."""
    authors = (
        await session.execute(
            select(BrickAuthor.member_id).where(
                BrickAuthor.brick_id == brick.id, BrickAuthor.member_id.is_not(None)
            )
        )
    ).scalars()
    params = {"who": who, "title": brick.title[:120], "rating": rating if rating else "–"}
    for member_id in set(authors):
        if member_id is not None and member_id != reviewer_id:
            await notify(
                session, member_id, NotificationType.BRICK_REVIEWED, f"/bricks/{brick.key}", params
            )
