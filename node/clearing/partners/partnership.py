"""Partnerships confirmed both ways: a chamber learns that its partner has added it too.

Members of two chambers may trade only when each chamber has added the other. When a chamber
adds a partner (and at every reconciliation run while it is not confirmed), it sends it an
``Offer`` of a ``Partnership``; a chamber that has the sender as partner answers ``Accept``,
and marks the sender confirmed (its ``Offer`` says it has added us). The answer marks the
asking chamber's row too. A chamber that has not added the sender keeps nothing: when its
administrators add the sender later, its own ``Offer`` confirms both sides. Every message is a
durable delivery; nothing is held in memory. The activities are in ``docs/between-chambers.md``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation, id_of
from node.activitypub.inbox import InboxContext, InboxDispatcher, InboxIgnored, InboxRejected
from node.activitypub.models import LocalActor
from node.activitypub.outbox import publish
from node.clearing.partners.models import Partner
from node.db import session_scope

__all__ = [
    "PARTNERSHIP_TYPE",
    "ask_unconfirmed_partners",
    "offer_partnership",
    "register_partnership_handlers",
]

log = logging.getLogger(__name__)

PARTNERSHIP_TYPE = "Partnership"


def _chamber_uri(federation: Federation) -> str:
    return federation.urls(federation.instance_username).id


def _partnership(federation: Federation, partner_uri: str) -> dict[str, Any]:
    """ "This chamber has added ``partner_uri`` as a partner"."""
    me = _chamber_uri(federation)
    return {"type": PARTNERSHIP_TYPE, "attributedTo": me, "partner": partner_uri}


async def _chamber(federation: Federation, session: AsyncSession) -> LocalActor:
    return (
        await session.execute(
            select(LocalActor).where(LocalActor.username == federation.instance_username)
        )
    ).scalar_one()


async def offer_partnership(
    federation: Federation, session: AsyncSession, partner: Partner, now: datetime
) -> None:
    """Tell ``partner`` that we have added it (in the caller's transaction): it answers
    ``Accept`` if it has added us too."""
    await publish(
        federation,
        session,
        await _chamber(federation, session),
        {
            "type": "Offer",
            "to": [partner.chamber_uri],
            "object": _partnership(federation, partner.chamber_uri),
        },
        inboxes=[partner.inbox],
        now=now,
    )


async def ask_unconfirmed_partners(federation: Federation) -> int:
    """Offer the partnership again to every partner that has not confirmed it (partners added
    before this protocol existed, or whose answer was lost); how many were asked."""
    now = federation.clock()
    async with session_scope(federation.sessionmaker) as session:
        partners = list(
            (
                await session.execute(
                    select(Partner).where(Partner.confirmed_at.is_(None)).order_by(Partner.id)
                )
            ).scalars()
        )
        for partner in partners:
            await offer_partnership(federation, session, partner, now)
    return len(partners)


def _check_partnership(ctx: InboxContext, obj: Any) -> bool:
    """Whether ``obj`` is a partnership stated by the sender with this chamber (False: not a
    partnership, another handler's business); refuses one about somebody else."""
    if not isinstance(obj, dict) or obj.get("type") != PARTNERSHIP_TYPE:
        return False
    if id_of(obj.get("attributedTo")) != ctx.actor_uri:
        raise InboxRejected(
            422, "a partnership is stated by the chamber that sends it", "invalidPartnership"
        )
    if id_of(obj.get("partner")) != _chamber_uri(ctx.federation):
        raise InboxRejected(
            422, "this partnership is with another chamber than this one", "invalidPartnership"
        )
    return True


async def _sender_as_partner(ctx: InboxContext) -> Partner | None:
    return (
        await ctx.session.execute(
            select(Partner).where(Partner.chamber_uri == ctx.actor_uri).with_for_update()
        )
    ).scalar_one_or_none()


def _confirm(partner: Partner, now: datetime) -> None:
    if partner.confirmed_at is None:
        partner.confirmed_at = now
        partner.updated_at = now
        log.info("partnership with %s confirmed both ways", partner.chamber_uri)


async def _on_offer(ctx: InboxContext) -> None:
    """A chamber has added us. If we have added it too, the partnership is confirmed: say so."""
    if not _check_partnership(ctx, ctx.object):
        return
    partner = await _sender_as_partner(ctx)
    if partner is None:
        raise InboxIgnored(
            f"{ctx.actor_uri} is not a partner of this chamber: its offer is confirmed when "
            "this chamber adds it"
        )
    now = ctx.federation.clock()
    _confirm(partner, now)
    await publish(
        ctx.federation,
        ctx.session,
        await _chamber(ctx.federation, ctx.session),
        {
            "type": "Accept",
            "to": [partner.chamber_uri],
            "object": ctx.activity["id"],
            "result": _partnership(ctx.federation, partner.chamber_uri),
        },
        inboxes=[partner.inbox],
        now=now,
    )


async def _on_accept(ctx: InboxContext) -> None:
    """A partner has added us too (its answer to our ``Offer``)."""
    if not _check_partnership(ctx, ctx.activity.get("result")):
        return
    offer = id_of(ctx.object)
    if offer is None or not ctx.federation.is_local(offer):
        raise InboxRejected(422, "the answer names no offer of this chamber", "invalidPartnership")
    partner = await _sender_as_partner(ctx)
    if partner is not None:
        _confirm(partner, ctx.federation.clock())


def register_partnership_handlers(dispatcher: InboxDispatcher) -> None:
    dispatcher.register("Offer", PARTNERSHIP_TYPE, _on_offer)
    dispatcher.register("Accept", ("Offer", PARTNERSHIP_TYPE), _on_accept)
