"""Plain notes (a chamber's news) and the timeline of what local actors received.

Receiving: Create/Announce/Update of any object no domain registered for are kept only when
a local actor follows the sender or is addressed (``require_audience``, which the domains'
handlers of these activities call first too).
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation
from node.activitypub.inbox import ANY, InboxContext, InboxDispatcher, InboxIgnored
from node.activitypub.models import Follow, FollowState, LocalActor, StoredActivity
from node.activitypub.outbox import PUBLIC, publish

__all__ = ["publish_note", "register_timeline_handlers", "require_audience"]


async def publish_note(
    federation: Federation, session: AsyncSession, actor: LocalActor, text: str
) -> StoredActivity:
    """A public ``Create(Note)`` to the actor's followers."""
    urls = federation.urls(actor.username)
    now = federation.clock()
    note_id = f"{urls.id}/notes/{uuid.uuid4()}"
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n\n") if p.strip())
    note: dict[str, Any] = {
        "id": note_id,
        "type": "Note",
        "attributedTo": urls.id,
        "content": paragraphs,
        "published": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "to": [PUBLIC],
        "cc": [urls.followers],
    }
    return await publish(
        federation,
        session,
        actor,
        {"type": "Create", "object": note, "to": [PUBLIC], "cc": [urls.followers]},
        to_followers=True,
        now=now,
    )


async def require_audience(ctx: InboxContext) -> None:
    """Ignore the activity unless a local actor follows its sender or is addressed."""
    addressed: list[Any] = []
    for key in ("to", "cc", "bto", "bcc", "audience"):
        value = ctx.activity.get(key)
        addressed.extend(value if isinstance(value, list) else [value])
    if any(isinstance(a, str) and ctx.federation.local_username(a) for a in addressed):
        return
    followed = await ctx.session.execute(
        select(Follow.id).where(
            Follow.followee_uri == ctx.actor_uri, Follow.state == FollowState.ACCEPTED
        )
    )
    if followed.first() is None:
        raise InboxIgnored("nobody here follows this actor or is addressed")


def register_timeline_handlers(dispatcher: InboxDispatcher) -> None:
    for activity_type in ("Create", "Announce", "Update"):
        dispatcher.register(activity_type, ANY, require_audience)
