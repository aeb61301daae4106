"""Exchanges with members of partner chambers, as they arrive in our inboxes.

The exchange lives on the chamber where it was declared (its URI is there); the other chamber
keeps a copy with the same URI, kept in step by the members' signed activities: an ``Offer``
creates the copy, an ``Update`` amends it, ``TentativeReject``/``Reject``/``Undo`` answer the
current proposal, and a ``Reject`` by the declaring chamber expires it. Acceptance is not here:
it is settled by the two chambers (`node.clearing.settlement`).

Only members of partner chambers are heard; every activity must carry its actor's proof, since
it is evidence later. Once checked, a step is applied to our copy by `copies` (which also makes
the copy follow the declaring chamber when two steps crossed).
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select

from node.activitypub.federation import id_of
from node.activitypub.inbox import InboxContext, InboxDispatcher, InboxIgnored, InboxRejected
from node.activitypub.keys import public_keys_of
from node.activitypub.notes import keep_as_signed
from node.activitypub.proofs import verify_proof
from node.activitypub.urls import same_origin
from node.clearing.exchanges import copies, history
from node.clearing.exchanges.copies import apply_amendment, terms_of
from node.clearing.exchanges.house import ClearingHouse
from node.clearing.exchanges.notices import notify_exchange
from node.clearing.exchanges.states import (
    ExchangeEvent,
    Party,
    Role,
)
from node.clearing.ledger.models import ClearingEvent, Exchange
from node.clearing.partners.partnership import register_partnership_handlers
from node.clearing.partners.service import partner_for_actor
from node.members.models import Member, MemberStatus

__all__ = ["apply_amendment", "register_clearing_handlers"]

ECONOMIC_EVENT = "EconomicEvent"


def _bad(message: str) -> InboxRejected:
    return InboxRejected(422, message, "invalidExchange")


async def _check_proof(context: InboxContext) -> None:
    actor = await context.federation.cached_actor(context.session, context.actor_uri)
    result = verify_proof(context.activity, public_keys_of(actor.document).get)
    if not result.ok or (result.verification_method or "").split("#")[0] != context.actor_uri:
        raise InboxRejected(
            401,
            f"an exchange activity must carry its actor's proof: {result.message}",
            "invalidProof",
        )


async def _local_member(context: InboxContext, uri: str) -> Member | None:
    username = context.federation.local_username(uri)
    if username is None:
        return None
    member = (
        await context.session.execute(select(Member).where(Member.username == username))
    ).scalar_one_or_none()
    return member if member is not None and member.status == MemberStatus.APPROVED else None


async def _require_partner(context: InboxContext) -> None:
    if await partner_for_actor(context.session, context.actor_uri) is None:
        raise InboxRejected(
            403,
            "your chamber is not a partner of this chamber: exchanges with its members "
            "need a credit line on both sides first",
            "notPartner",
        )


def _event(
    context: InboxContext, exchange: Exchange, event: str, comment: str = ""
) -> ClearingEvent:
    return history.event(
        exchange,
        event,
        context.actor_uri,
        context.stored,
        context.federation.clock(),
        comment=comment,
    )


def _on_proposal(house: ClearingHouse) -> Any:
    async def handle(context: InboxContext) -> None:
        obj = context.object
        if not isinstance(obj, dict) or obj.get("type") != ECONOMIC_EVENT:
            return
        uri, provider, receiver = obj.get("id"), obj.get("provider"), obj.get("receiver")
        if not all(isinstance(v, str) and len(v) <= 2048 for v in (uri, provider, receiver)):
            raise _bad("an exchange names its id, provider and receiver")
        assert isinstance(uri, str) and isinstance(provider, str) and isinstance(receiver, str)
        if not same_origin(uri, context.actor_uri):
            raise InboxRejected(403, "an exchange is declared on its own host", "originMismatch")
        if context.actor_uri not in (provider, receiver):
            raise InboxRejected(403, "only a party declares an exchange", "notParty")
        other = receiver if context.actor_uri == provider else provider
        member = await _local_member(context, other)
        if member is None:
            raise InboxIgnored("the exchange is not with a member of this chamber")
        await _require_partner(context)
        await _check_proof(context)
        terms = terms_of(obj)
        session = context.session
        if (await session.execute(select(Exchange.id).where(Exchange.uri == uri))).first():
            return
        now = house.clock()
        exchange = Exchange(
            key=secrets.token_hex(8),
            uri=uri,
            provider_uri=provider,
            beneficiary_uri=receiver,
            provider_member_id=member.id if other == provider else None,
            beneficiary_member_id=member.id if other == receiver else None,
            initiator=(Role.PROVIDER if context.actor_uri == provider else Role.BENEFICIARY).value,
            initiator_member_id=None,
            comment="",
            proposal_activity_id=context.activity["id"],
            created_at=now,
            updated_at=now,
            expires_at=now + house.terms.declaration_expiry,
            **terms,
        )
        history.start(session, exchange, now=now, by=context.actor_uri)
        session.add(exchange)
        await session.flush()
        session.add(_event(context, exchange, "declare"))
        await notify_exchange(session, exchange, "declare", context.actor_uri)

    return handle


def _on_amend(house: ClearingHouse) -> Any:
    async def handle(context: InboxContext) -> None:
        obj = context.object
        if not isinstance(obj, dict) or obj.get("type") != ECONOMIC_EVENT:
            return
        session = context.session
        exchange = (
            await session.execute(
                select(Exchange).where(Exchange.uri == str(obj.get("id"))).with_for_update()
            )
        ).scalar_one_or_none()
        if exchange is None or house.federation.is_local(exchange.uri):
            raise InboxIgnored("no copy of this exchange here")
        initiator = exchange.initiator_uri
        if context.actor_uri != initiator:
            raise InboxRejected(403, "only the member who declared it amends it", "notParty")
        await _check_proof(context)
        # While settling, the decider may know of the amendment and refuse the settlement (its
        # Reject brings the amendment, settlement._catch_up); else it is kept until then.
        await copies.amend(
            session,
            exchange,
            context.activity,
            context.stored,
            now=house.clock(),
            expiry=house.terms.declaration_expiry,
        )

    return handle


_ANSWERS = {
    ("TentativeReject", Party.COUNTERPARTY): ExchangeEvent.CONTEST,
    ("Reject", Party.COUNTERPARTY): ExchangeEvent.REFUSE,
    ("Undo", Party.INITIATOR): ExchangeEvent.WITHDRAW,
    ("Reject", Party.CHAMBER): ExchangeEvent.EXPIRE,
}


def _on_answer(house: ClearingHouse) -> Any:
    async def handle(context: InboxContext) -> None:
        proposal = id_of(context.object)
        if proposal is None or not isinstance(context.object, str):
            return
        session = context.session
        exchange = (
            await session.execute(
                select(Exchange).where(Exchange.proposal_activity_id == proposal).with_for_update()
            )
        ).scalar_one_or_none()
        if exchange is None:
            return  # not an exchange's proposal: another handler's business
        initiator = exchange.initiator_uri
        if context.actor_uri == initiator:
            party = Party.INITIATOR
        elif context.actor_uri in (exchange.provider_uri, exchange.beneficiary_uri):
            party = Party.COUNTERPARTY
        elif not house.federation.is_local(exchange.uri) and same_origin(
            exchange.uri, context.actor_uri
        ):
            party = Party.CHAMBER  # the declaring chamber expires its exchange
        else:
            raise InboxRejected(403, "only a party answers an exchange", "notParty")
        if house.federation.is_local(context.actor_uri):
            raise InboxRejected(403, "a local actor does not post here", "localActor")
        event = _ANSWERS.get((context.type, party))
        if event is None:
            raise InboxIgnored(f"{context.type} by the {party.value} is not an exchange answer")
        await _check_proof(context)
        await copies.answer(
            session,
            exchange,
            context.activity,
            context.stored,
            event,
            party,
            context.actor_uri,
            now=house.clock(),
        )

    return handle


def register_clearing_handlers(dispatcher: InboxDispatcher, house: ClearingHouse) -> None:
    """Exchanges with members of partner chambers, their settlement between chambers, and the
    partnerships' confirmations."""
    keep_as_signed(ECONOMIC_EVENT)  # each proposal's signed document is a step of its proof
    dispatcher.register("Offer", ECONOMIC_EVENT, _on_proposal(house))
    dispatcher.register("Update", ECONOMIC_EVENT, _on_amend(house))
    answer = _on_answer(house)
    for kind in ("TentativeReject", "Reject", "Undo"):  # of the current proposal
        for proposal in ("Offer", "Update"):
            dispatcher.register(kind, (proposal, ECONOMIC_EVENT), answer)
    register_partnership_handlers(dispatcher)
