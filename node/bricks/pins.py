"""Pinned bricks: a local brick featured on its author's profile or on the chamber's."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.featured import pin, unpin
from node.activitypub.federation import Federation
from node.bricks.models import Brick
from node.bricks.service import BrickForbidden, is_author
from node.members.models import Member

__all__ = ["pin_brick"]


async def pin_brick(
    federation: Federation,
    session: AsyncSession,
    brick: Brick,
    member: Member,
    *,
    for_chamber: bool,
    pinned: bool,
) -> str | None:
    """Pin (or unpin) a local brick on its author's profile, or with ``for_chamber`` on the
    chamber's (administrators). Returns the username whose ``featured`` changed, or None."""
    if not brick.local:
        raise BrickForbidden("only bricks of this chamber can be pinned")
    if for_chamber and not member.is_admin:
        raise BrickForbidden("only administrators pin bricks for the chamber")
    if not for_chamber and not is_author(brick, member):
        raise BrickForbidden("only the authors of a brick can pin it on their profile")
    username = federation.instance_username if for_chamber else member.username
    actor_uri = federation.urls(username).id
    changed = await (pin if pinned else unpin)(session, actor_uri, brick.uri)
    return username if changed else None
