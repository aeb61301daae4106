"""Offers and needs from the archipelago: ``Create``/``Update``/``Delete`` of FEP-0837
Proposals and a chamber's ``Announce`` of them.

A Proposal is kept when a local actor follows the sender (a member or a chamber); sent by
its author only (``attributedTo`` is the signer), or announced by the author's chamber
(same origin). Only the origin may update or delete it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from node.activitypub.federation import authority_of, id_of
from node.activitypub.follows import is_followed_here
from node.activitypub.inbox import InboxContext, InboxDispatcher, InboxIgnored
from node.activitypub.models import RemoteActor
from node.activitypub.urls import same_origin
from node.offers.as2 import ProposalInvalid, is_proposal, parse_proposal
from node.offers.models import Offer
from node.offers.service import store_remote_offer

__all__ = ["on_delete", "register_offer_handlers"]

PROPOSAL = "Proposal"


def _same_origin(a: str | None, b: str | None) -> bool:
    return bool(a and b) and same_origin(str(a), str(b))


async def _cached(ctx: InboxContext, uri: str | None) -> dict[str, Any]:
    if not uri:
        return {}
    actor = (
        await ctx.session.execute(select(RemoteActor).where(RemoteActor.uri == uri))
    ).scalar_one_or_none()
    return actor.document if actor is not None and isinstance(actor.document, dict) else {}


async def _upsert(ctx: InboxContext, obj: Any, *, announced: bool) -> None:
    sender = ctx.actor_uri
    try:
        doc = parse_proposal(obj, now=ctx.federation.clock())
    except ProposalInvalid:
        return  # not an offer: the other handlers decide
    if ctx.federation.is_local(doc.uri):
        return
    if not announced and doc.author != sender:
        raise InboxIgnored("an offer is only accepted from its author")
    if not _same_origin(doc.uri, sender) or not _same_origin(doc.author, sender):
        raise InboxIgnored("an offer is only accepted from its own origin")
    exists = (
        await ctx.session.execute(select(Offer.id).where(Offer.uri == doc.uri))
    ).first() is not None
    if (
        not exists
        and not await is_followed_here(ctx.session, sender)
        and not await is_followed_here(ctx.session, doc.author)
    ):
        return  # nobody here follows the author or the chamber of this offer
    author = await _cached(ctx, doc.author)
    chamber = await _cached(ctx, doc.chamber_uri)
    handle = doc.author.rstrip("/").rsplit("/", 1)[-1]
    name = author.get("name") or author.get("preferredUsername") or handle
    url = author.get("url") if isinstance(author.get("url"), str) else doc.author
    await store_remote_offer(
        ctx.session,
        doc,
        author_name=str(name),
        author_url=str(url),
        chamber_name=str(chamber.get("name") or authority_of(doc.uri)),
        now=ctx.federation.clock(),
    )


async def _forget(ctx: InboxContext, object_id: str | None) -> None:
    if object_id is None or not _same_origin(object_id, ctx.actor_uri):
        return
    offer = (
        await ctx.session.execute(
            select(Offer).where(Offer.uri == object_id, Offer.local.is_(False))
        )
    ).scalar_one_or_none()
    if offer is not None:
        await ctx.session.delete(offer)


async def _on_create(ctx: InboxContext) -> None:
    if is_proposal(ctx.object):
        await _upsert(ctx, ctx.object, announced=False)


async def _on_update(ctx: InboxContext) -> None:
    if is_proposal(ctx.object):
        exists = (
            await ctx.session.execute(select(Offer.id).where(Offer.uri == id_of(ctx.object)))
        ).first()
        if exists is not None:
            await _upsert(ctx, ctx.object, announced=False)


async def on_delete(ctx: InboxContext) -> None:
    """The author's Delete (an offer closed): our copy goes. Registered by the runtime with
    the other domains' on ``("Delete", ANY)``."""
    await _forget(ctx, id_of(ctx.object))


async def _on_announce(ctx: InboxContext) -> None:
    """A chamber announces its members' offers: the Proposal, or the Delete itself."""
    obj = ctx.object
    if not isinstance(obj, dict) or not _same_origin(id_of(obj), ctx.actor_uri):
        return
    if is_proposal(obj):
        await _upsert(ctx, obj, announced=True)
        return
    inner = obj.get("object")
    if not _same_origin(id_of(obj.get("actor")), ctx.actor_uri):
        return
    if obj.get("type") == "Create" and is_proposal(inner):
        await _upsert(ctx, inner, announced=True)
    elif obj.get("type") == "Delete":
        await _forget(ctx, id_of(inner))


def register_offer_handlers(dispatcher: InboxDispatcher) -> None:
    """FEP-0837 Proposals (typed ``["Note", "Proposal"]``: the inbox routes a multi-typed
    object on the type registered for it) and the chamber's Announces of them."""
    dispatcher.register("Create", PROPOSAL, _on_create)
    dispatcher.register("Update", PROPOSAL, _on_update)
    dispatcher.register("Announce", PROPOSAL, _on_announce)
    dispatcher.register("Announce", ("Create", PROPOSAL), _on_announce)
