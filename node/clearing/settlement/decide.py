"""The decider: an incoming settlement ``Offer`` is posted or refused in one transaction and
answered; an abort request (``Undo`` of the ``Offer``) is answered with the decision or a
tombstone."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.inbox import InboxContext, InboxRejected
from node.activitypub.keys import public_keys_of
from node.activitypub.proofs import verify_proof
from node.activitypub.urls import same_origin
from node.clearing.exchanges import history
from node.clearing.exchanges.activities import exchange_terms_match
from node.clearing.exchanges.house import DEMURRAGE_JOB, ClearingHouse
from node.clearing.exchanges.notices import notify_exchange
from node.clearing.exchanges.states import (
    OPEN_STATES,
    ExchangeEvent,
    ExchangeStates,
    SettlementStates,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingTransaction,
    Exchange,
    TransactionKind,
)
from node.clearing.partners.models import (
    Partner,
    Settlement,
    SettlementState,
)
from node.clearing.settlement.common import (
    SETTLEMENT_TYPE,
    answer,
    claim,
    limit_message,
    parse_time,
    partner_of_sender,
    postings,
    redeliver,
    settle,
    store_incoming,
    stored_document,
    text_of,
)
from node.faults import crash_point
from node.jobs import ensure_pending

__all__ = ["on_abort_request", "on_settlement_offer"]

log = logging.getLogger(__name__)


async def _check_member_acceptance(
    house: ClearingHouse,
    session: AsyncSession,
    exchange: Exchange,
    remote: str,
    evidence: Any,
) -> tuple[dict[str, Any], str | None]:
    """The remote member's signed ``Accept`` from the evidence, and why it cannot settle the
    exchange now (None when it can). A forged acceptance is refused outright."""
    if (
        not isinstance(evidence, list)
        or len(evidence) != 2
        or not all(isinstance(item, dict) for item in evidence)
    ):
        raise InboxRejected(
            422, "a settlement's evidence is the proposal and its acceptance", "invalidSettlement"
        )
    proposal, accept = evidence
    if accept.get("type") != "Accept" or accept.get("actor") != remote:
        raise InboxRejected(
            422, "the evidence must hold the other member's Accept", "invalidSettlement"
        )
    actor = await house.federation.cached_actor(session, remote)
    keys = public_keys_of(actor.document)
    result = verify_proof(accept, keys.get)
    if not result.ok or (result.verification_method or "").split("#")[0] != remote:
        raise InboxRejected(
            403,
            f"the acceptance is not signed by {remote}: {result.message}",
            "invalidProof",
        )
    if accept.get("context") != exchange.uri:
        raise InboxRejected(422, "the acceptance is about another exchange", "invalidSettlement")
    if exchange.state not in {s.value for s in OPEN_STATES}:
        return accept, f"the exchange is already {exchange.state}"
    if (
        accept.get("object") != exchange.proposal_activity_id
        or proposal.get("id") != exchange.proposal_activity_id
    ):
        return accept, "the terms changed: the accepted proposal is not the current one"
    accepted = accept.get("result")
    if not isinstance(accepted, Mapping) or not exchange_terms_match(
        accepted, house.document_of(exchange)
    ):
        return accept, "the accepted terms differ from the exchange"
    return accept, None


def on_settlement_offer(house: ClearingHouse) -> Any:
    """The decider's walk of an incoming settlement ``Offer``, one transaction: read it,
    claim its row, find the exchange, check the member's signed acceptance, then post it
    through the ledger's one write (or refuse it) and answer (`_decide`)."""

    async def handle(context: InboxContext) -> None:
        obj = context.object
        if not isinstance(obj, dict) or obj.get("type") != SETTLEMENT_TYPE:
            return
        session = context.session
        partner = await partner_of_sender(context)
        uri, exchange_uri, minutes, deadline = _read_offer(context, obj)
        now = house.clock()
        settlement, created = await claim(session, uri, partner, now)
        if not created:
            # A duplicate, or an Offer arriving after we recorded an abort for it.
            if settlement.partner_uri != context.actor_uri:
                raise InboxRejected(403, "this settlement belongs to another chamber", "notOwner")
            if settlement.decision_activity_id:
                await redeliver(house, session, partner, settlement)
            return
        exchange, remote = await _offered_exchange(house, context, exchange_uri)
        accept, reason = await _acceptance(house, session, exchange, remote, obj, minutes)
        if reason is None and now > deadline:
            reason = "the settlement arrived after its deadline"
        settlement.exchange_id = exchange.id
        settlement.minutes, settlement.deadline = minutes, deadline
        settlement.prepare_activity_id = context.activity["id"]
        settlement.evidence = {"prepare": context.activity}
        await _decide(house, context, partner, settlement, exchange, accept, reason, now)
        crash_point("settlement.deciding")
        context.after_commit.append(lambda: crash_point("settlement.decided"))

    return handle


def _read_offer(context: InboxContext, obj: dict[str, Any]) -> tuple[str, str, int, datetime]:
    """The settlement's id, its exchange, its minutes and its deadline, checked."""
    uri = text_of(obj, "id")
    exchange_uri = text_of(obj, "exchange")
    if not same_origin(uri, context.actor_uri):
        raise InboxRejected(403, "a settlement's id is on its sender's host", "originMismatch")
    minutes = obj.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
        raise InboxRejected(422, "minutes: a positive whole number", "invalidSettlement")
    return uri, exchange_uri, minutes, parse_time(obj.get("endTime"))


async def _offered_exchange(
    house: ClearingHouse, context: InboxContext, exchange_uri: str
) -> tuple[Exchange, str]:
    """The exchange declared here that the offer settles (locked), and its remote party."""
    exchange = (
        await context.session.execute(
            select(Exchange).where(Exchange.uri == exchange_uri).with_for_update()
        )
    ).scalar_one_or_none()
    if exchange is None or not house.federation.is_local(exchange.uri):
        raise InboxRejected(404, f"no exchange {exchange_uri} was declared here", "noExchange")
    remote = house.remote_party_of(exchange)
    if remote is None or not same_origin(remote, context.actor_uri):
        raise InboxRejected(
            403, "only the other member's chamber can settle this exchange", "notParty"
        )
    return exchange, remote


async def _acceptance(
    house: ClearingHouse,
    session: AsyncSession,
    exchange: Exchange,
    remote: str,
    obj: dict[str, Any],
    minutes: int,
) -> tuple[dict[str, Any] | None, str | None]:
    """The remote member's signed acceptance, or why the offer is refused."""
    if (obj.get("provider"), obj.get("receiver"), minutes) != (
        exchange.provider_uri,
        exchange.beneficiary_uri,
        exchange.minutes,
    ):
        return None, "the settlement's terms differ from the exchange"
    return await _check_member_acceptance(house, session, exchange, remote, obj.get("evidence"))


async def _decide(
    house: ClearingHouse,
    context: InboxContext,
    partner: Partner,
    settlement: Settlement,
    exchange: Exchange,
    accept: dict[str, Any] | None,
    reason: str | None,
    now: datetime,
) -> None:
    """Post the exchange here (or refuse it), move the settlement to its final state, answer
    the preparer and record the steps in the exchange's history."""
    session = context.session
    if reason is None:
        reason = await _post_here(house, session, exchange, partner, settlement.uri, now)
    if reason is None:
        assert accept is not None
        settle(session, settlement, SettlementStates.committed.name, now)
        member_accept = await store_incoming(session, accept, now)
        remote = str(accept.get("actor", ""))
        session.add(history.event(exchange, ExchangeEvent.ACCEPT.value, remote, member_accept, now))
        settlement.evidence = {
            "proposal": await stored_document(session, exchange.proposal_activity_id),
            "accept": accept,
            "prepare": context.activity,
        }
    else:
        settle(session, settlement, SettlementStates.aborted.name, now, reason=reason)
        if exchange.state in {s.value for s in OPEN_STATES}:  # its acceptance was not settled
            await notify_exchange(session, exchange, "reopened", context.actor_uri)
    await session.flush()
    session.add(
        history.event(exchange, "prepare", context.actor_uri, context.stored, now, comment="")
    )
    decision = await answer(
        house, session, partner, settlement, context.activity["id"], exchange, now
    )
    settlement.evidence = {**settlement.evidence, "decision": decision.document}
    session.add(
        history.event(
            exchange,
            "commit" if settlement.state == SettlementState.COMMITTED else "abort",
            decision.actor_uri,
            decision,
            now,
            comment=settlement.reason,
        )
    )
    await session.flush()


async def _post_here(
    house: ClearingHouse,
    session: AsyncSession,
    exchange: Exchange,
    partner: Partner,
    uri: str,
    now: datetime,
) -> str | None:
    """Post the decider's side; return why not when a limit refuses it."""
    transaction = postings(house, exchange, partner.chamber_uri)
    if any(p.account == COMMONS_FUND_KEY for p in transaction):
        await _ensure_commons(house, session, now)
    try:
        await house.write(
            session,
            transaction,
            ClearingTransaction(
                kind=TransactionKind.EXCHANGE,
                exchange_id=exchange.id,
                reference=uri,
                memo=exchange.description[:200],
                posted_at=now,
            ),
        )
    except ledger.LimitBreach as exc:
        return limit_message(exc)
    history.move(session, exchange, ExchangeStates.posted, now=now, by=partner.chamber_uri)
    exchange.posted_at = now
    await notify_exchange(session, exchange, "settled", partner.chamber_uri)
    if house.terms.demurrage_basis_points:
        await ensure_pending(session, DEMURRAGE_JOB, now + house.terms.demurrage_period, now=now)
    return None


async def _ensure_commons(house: ClearingHouse, session: AsyncSession, now: datetime) -> None:
    found = (
        await session.execute(
            select(ClearingAccount.id).where(ClearingAccount.key == COMMONS_FUND_KEY)
        )
    ).first()
    if found is None:
        session.add(
            ClearingAccount(
                key=COMMONS_FUND_KEY,
                kind=ledger.AccountKind.COMMONS_FUND.value,
                balance=0,
                created_at=now,
            )
        )
        await session.flush()


def on_abort_request(house: ClearingHouse) -> Any:
    """The preparer has waited past the deadline: answer with the decision, or abort now."""

    async def handle(context: InboxContext) -> None:
        obj = context.object
        if not isinstance(obj, dict) or obj.get("type") != "Offer":
            return
        inner = obj.get("object")
        if not isinstance(inner, dict) or inner.get("type") != SETTLEMENT_TYPE:
            return
        session = context.session
        partner = await partner_of_sender(context)
        offer_id = text_of(obj, "id")
        uri = text_of(inner, "id")
        if not same_origin(uri, context.actor_uri) or not same_origin(offer_id, context.actor_uri):
            raise InboxRejected(403, "a settlement's id is on its sender's host", "originMismatch")
        now = house.clock()
        settlement, created = await claim(session, uri, partner, now)
        if not created:
            if settlement.partner_uri != context.actor_uri:
                raise InboxRejected(403, "this settlement belongs to another chamber", "notOwner")
            await redeliver(house, session, partner, settlement)
            return
        exchange_uri = inner.get("exchange")
        exchange = None
        if isinstance(exchange_uri, str):
            exchange = (
                await session.execute(select(Exchange).where(Exchange.uri == exchange_uri))
            ).scalar_one_or_none()
        tombstone = settlement
        tombstone.exchange_id = exchange.id if exchange is not None else None
        tombstone.prepare_activity_id = offer_id
        tombstone.evidence = {"abort_request": context.activity}
        reason = "the settlement did not arrive before its deadline"
        settle(session, tombstone, SettlementStates.aborted.name, now, reason=reason)
        await session.flush()
        decision = await answer(house, session, partner, tombstone, offer_id, exchange, now)
        tombstone.evidence = {**tombstone.evidence, "decision": decision.document}
        if exchange is not None:
            # The declaring chamber's copy shows its signed decision too (as the other's does).
            session.add(
                history.event(exchange, "abort", decision.actor_uri, decision, now, comment=reason)
            )

    return handle
