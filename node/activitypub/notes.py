"""Plain notes (a chamber's news) and the timeline of what local actors received.

Receiving: Create/Announce/Update of any object no domain registered for are kept only when
a local actor follows the sender or is addressed, or (an Update) when we hold the object from
that owner (``require_audience``, which the domains' handlers of these activities call first
too). An ``Update`` from the object's owner replaces the copy our stored activities hold
(``apply_update``); a ``Delete`` from it removes every activity we keep about the object, its
Create, Updates, boosts (``forget_deleted``, which the domain owning ``Delete`` calls).

Except evidence: a domain that keeps signed activities as proofs (an exchange's ``Offer`` of
its ``EconomicEvent``) names their object types with ``keep_as_signed``; what we keep of
those is never rewritten nor forgotten by a later Update or Delete, whoever sends it.
"""

from __future__ import annotations

import uuid
from html import escape
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation, id_of
from node.activitypub.follows import is_followed_here
from node.activitypub.inbox import ANY, InboxContext, InboxDispatcher, InboxIgnored
from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.outbox import PUBLIC, publish

__all__ = [
    "apply_update",
    "forget_deleted",
    "keep_as_signed",
    "publish_note",
    "register_timeline_handlers",
    "require_audience",
]


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


_SIGNED_TYPES: set[str] = set()


def keep_as_signed(*object_types: str) -> None:
    """Activities about objects of these types are evidence, kept exactly as signed."""
    _SIGNED_TYPES.update(object_types)


def _signed_evidence(stored: StoredActivity) -> bool:
    embedded = stored.document.get("object")
    kinds = embedded.get("type") if isinstance(embedded, dict) else None
    listed = kinds if isinstance(kinds, list) else [kinds]
    return any(isinstance(kind, str) and kind in _SIGNED_TYPES for kind in listed)


async def _kept_about(ctx: InboxContext, object_id: str) -> list[StoredActivity]:
    rows = await ctx.session.execute(
        select(StoredActivity).where(
            StoredActivity.direction == "in",
            StoredActivity.object_id == object_id,
            StoredActivity.id != ctx.stored.id,
        )
    )
    return list(rows.scalars())


def _owned_by(stored: StoredActivity, signer: str) -> bool:
    """Whether ``stored`` shows ``signer`` as the owner of its object: it created or updated
    it, or the embedded object is attributed to it."""
    if stored.activity_type in ("Create", "Update") and stored.actor_uri == signer:
        return True
    embedded = stored.document.get("object")
    if not isinstance(embedded, dict):
        return False
    attributed = embedded.get("attributedTo")
    owners = attributed if isinstance(attributed, list) else [attributed]
    return signer in {id_of(owner) for owner in owners}


async def require_audience(ctx: InboxContext) -> None:
    """Ignore the activity unless a local actor follows its sender or is addressed, or it
    updates an object we hold from that sender."""
    object_id = id_of(ctx.object)
    if ctx.type == "Update" and object_id == ctx.actor_uri:
        return  # an actor's new profile: the follow handlers refresh our copy
    if ctx.type == "Update" and object_id is not None:
        if any(_owned_by(row, ctx.actor_uri) for row in await _kept_about(ctx, object_id)):
            return
    addressed: list[Any] = []
    for key in ("to", "cc", "bto", "bcc", "audience"):
        value = ctx.activity.get(key)
        addressed.extend(value if isinstance(value, list) else [value])
    if any(isinstance(a, str) and ctx.federation.local_username(a) for a in addressed):
        return
    if not await is_followed_here(ctx.session, ctx.actor_uri):
        raise InboxIgnored("nobody here follows this actor or is addressed")


async def apply_update(ctx: InboxContext) -> None:
    """The owner's Update of an object we keep: our stored activities show the new one."""
    obj = ctx.object
    object_id = id_of(obj)
    if not isinstance(obj, dict) or object_id is None:
        return
    kept = await _kept_about(ctx, object_id)
    if not any(_owned_by(row, ctx.actor_uri) for row in kept):
        return
    for row in kept:
        embedded = row.document.get("object")
        if _signed_evidence(row):
            continue  # a proof: the document stays as it was signed
        if isinstance(embedded, dict) and embedded.get("id") == object_id:
            row.document = {**row.document, "object": obj}


async def forget_deleted(ctx: InboxContext) -> None:
    """The owner deleted an object: what we kept about it goes (its Create, Updates,
    boosts, likes), so it is gone from the inbox API and the pages."""
    object_id = id_of(ctx.object)
    if object_id is None:
        return
    kept = await _kept_about(ctx, object_id)
    if kept and any(_owned_by(row, ctx.actor_uri) for row in kept):
        gone = [row.id for row in kept if not _signed_evidence(row)]
        await ctx.session.execute(delete(StoredActivity).where(StoredActivity.id.in_(gone)))


async def _on_update(ctx: InboxContext) -> None:
    await require_audience(ctx)
    await apply_update(ctx)


def register_timeline_handlers(dispatcher: InboxDispatcher) -> None:
    """Objects no domain registered for; ``Delete`` is the bricks' (they call
    ``forget_deleted``)."""
    for activity_type in ("Create", "Announce"):
        dispatcher.register(activity_type, ANY, require_audience)
    dispatcher.register("Update", ANY, _on_update)
