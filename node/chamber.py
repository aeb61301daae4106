"""The chamber itself: its actor (a ``Group``, so following it yields its members' bricks)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.actors import create_local_actor, get_local_actor
from node.activitypub.models import LocalActor
from node.config import Settings
from node.secretbox import SecretBox

__all__ = ["ensure_chamber_actor"]


async def ensure_chamber_actor(
    session: AsyncSession, settings: Settings, box: SecretBox
) -> LocalActor:
    actor = await get_local_actor(session, settings.chamber_username)
    if actor is None:
        actor = await create_local_actor(
            session, box, username=settings.chamber_username, actor_type="Group"
        )
    return actor
