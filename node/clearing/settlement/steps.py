"""Settling an exchange between two chambers: prepare at one, decide at the other.

The protocol is in ``docs/between-chambers.md``. In short: the *preparer* (the chamber of the
member who accepts) reserves holds and sends an ``Offer`` of a ``Settlement``; the *decider*
(the chamber where the exchange was declared) posts or refuses it in one local transaction and
answers ``Accept`` or ``Reject``; the preparer then posts or voids its holds. The decider's
decision is final; the preparer never decides alone. A preparer still waiting after the
deadline sends ``Undo`` of its ``Offer`` until it hears the decision; a decider that never saw
the ``Offer`` records an abort (a tombstone) and refuses it if it ever arrives.

Every step is one transaction and every message a durable delivery, so a crash between any
two steps is recovered by restarting: the job or the delivery still pending does the rest.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import id_of
from node.activitypub.inbox import InboxContext, InboxDispatcher, InboxRejected
from node.activitypub.keys import public_keys_of
from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.outbox import deliver_again, publish
from node.activitypub.proofs import verify_proof
from node.activitypub.urls import same_origin
from node.clearing.exchanges import history
from node.clearing.exchanges.activities import exchange_terms_match
from node.clearing.exchanges.house import DEMURRAGE_JOB, ClearingHouse, InvalidExchange
from node.clearing.exchanges.notices import notify_exchange
from node.clearing.exchanges.states import (
    FINAL_STATES,
    OPEN_STATES,
    ExchangeEvent,
    ExchangeState,
    ExchangeStates,
    Role,
    SettlementStates,
    next_state,
    party_of,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger import store
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingTransaction,
    Exchange,
    TransactionKind,
    member_account_key,
    partner_account_key,
)
from node.clearing.partners.models import (
    Hold,
    HoldState,
    Partner,
    Settlement,
    SettlementRole,
    SettlementState,
)
from node.clearing.partners.service import (
    URGENCY_AFTER_DEADLINE,
    partner_by_uri,
    partner_for_actor,
    urgent_until,
)
from node.clearing.units import format_minutes
from node.db import insert_for, read_only, session_scope
from node.faults import crash_point
from node.jobs import Done, Handler, Job, Outcome, Retry, ensure_pending, next_delay
from node.members.models import Member
from node.process import Move
from node.process_store import move as move_process
from node.process_store import record
from node.process_store import start as start_process

__all__ = [
    "SETTLEMENT_CHECK_JOB",
    "prepare",
    "register_settlement_handlers",
    "settlement_job_handlers",
]

log = logging.getLogger(__name__)

SETTLEMENT_CHECK_JOB = "clearing.settlement.check"
SETTLEMENT_TYPE = "Settlement"
MAX_ABORT_REQUEST_DELAY = URGENCY_AFTER_DEADLINE  # each abort request is urgent until the next


# --- the preparer: a member accepts an exchange with a member of another chamber -----------


def _postings(house: ClearingHouse, exchange: Exchange, partner_uri: str) -> ledger.Transaction:
    """This chamber's side: the local member and the partner's mirror account (and the levy,
    which only the provider's chamber takes)."""
    mirror = partner_account_key(partner_uri)
    if exchange.provider_member_id is not None:
        levy = house.terms.levy_basis_points
        return ledger.exchange_postings(
            member_account_key(exchange.provider_member_id),
            mirror,
            exchange.minutes,
            levy,
            COMMONS_FUND_KEY if levy else None,
        )
    assert exchange.beneficiary_member_id is not None
    return ledger.exchange_postings(
        mirror, member_account_key(exchange.beneficiary_member_id), exchange.minutes
    )


async def _chamber(house: ClearingHouse, session: AsyncSession) -> LocalActor:
    return (
        await session.execute(
            select(LocalActor).where(LocalActor.username == house.settings.chamber_username)
        )
    ).scalar_one()


async def _document(session: AsyncSession, activity_id: str) -> dict[str, Any]:
    stored = (
        await session.execute(
            select(StoredActivity).where(StoredActivity.activity_id == activity_id)
        )
    ).scalar_one_or_none()
    return dict(stored.document) if stored is not None else {}


_event = history.event


def _settle(
    session: AsyncSession, settlement: Settlement, to: str, now: datetime, *, reason: str = ""
) -> None:
    """Move ``settlement`` through `SettlementStates` (recorded); a final state is decided."""
    move_process(
        session, SettlementStates, settlement, to, subject=settlement.uri, now=now, reason=reason
    )
    settlement.updated_at = now
    if reason:
        settlement.reason = reason[:2000]
    if SettlementStates.is_final(to):
        settlement.decided_at = now


async def _claim(
    session: AsyncSession, uri: str, partner: Partner, now: datetime
) -> tuple[Settlement, bool]:
    """The decider's row for ``uri``, locked, and whether this message created it (then it
    is ``received``, to be decided in this transaction). A late ``Offer`` and its abort
    request may arrive together: the unique URI makes the second wait for the first and
    find its decision, instead of inserting the same settlement twice."""
    await session.execute(
        insert_for(session, Settlement.__table__)
        .values(
            uri=uri,
            role=SettlementRole.DECIDER,
            partner_uri=partner.chamber_uri,
            state=SettlementStates.received.name,
            minutes=0,
            deadline=now,
            reason="",
            prepare_activity_id="",
            decision_activity_id="",
            evidence={},
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["uri"])
    )
    row = (
        await session.execute(select(Settlement).where(Settlement.uri == uri).with_for_update())
    ).scalar_one()
    created = row.state == SettlementState.RECEIVED
    if created:
        record(session, Move("SettlementStates", uri, None, row.state, at=now), now)
    return row, created


def _limit_message(breach: ledger.LimitBreach) -> str:
    """Why a limit refuses a settlement, in words a member and an administrator understand."""
    if breach.account.startswith("chamber:"):
        return (
            f"the credit line between the two chambers ({format_minutes(abs(breach.limit))}) "
            f"would be exceeded by {format_minutes(breach.excess)}"
        )
    if isinstance(breach, ledger.FloorBreach):
        return (
            f"the member's balance would go below their floor of "
            f"{format_minutes(breach.limit)} by {format_minutes(breach.excess)}"
        )
    return (
        f"the member's balance would go above their ceiling of "
        f"{format_minutes(breach.limit)} by {format_minutes(breach.excess)}"
    )


async def prepare(house: ClearingHouse, member: Member, key: str, *, comment: str = "") -> Exchange:
    """``member`` accepts the cross-chamber exchange ``key``: reserve holds, ask the decider.

    Raises `ledger.LimitBreach` (nothing changes) when a limit here refuses it already."""
    async with read_only(house.sessionmaker) as session:
        found = await house.get(session, key)
        remote = house.remote_party_of(found)
        assert remote is not None
        partner = await partner_for_actor(session, remote)
    if partner is None:
        raise InvalidExchange(
            "counterparty", "the other member's chamber is no longer a partner of this chamber"
        )
    if house.terms.levy_basis_points and found.provider_member_id is not None:
        await house.ensure_accounts(commons=True)
    now = house.clock()
    deadline = now + timedelta(seconds=house.settings.clearing_settlement_timeout_seconds)
    async with session_scope(house.sessionmaker) as session:
        exchange = await house.get(session, key, lock=True)
        role = house.role_of(exchange, member)
        next_state(
            ExchangeState(exchange.state),
            ExchangeEvent.ACCEPT,
            party_of(role, Role(exchange.initiator)),
        )
        previous = exchange.state
        transaction = _postings(house, exchange, partner.chamber_uri)
        accounts = await store.lock_accounts(session, [p.account for p in transaction])
        limits = {k: house.terms.limits_of(a) for k, a in accounts.items()}
        balances = {k: a.balance for k, a in accounts.items()}
        holds = await store.pending_holds(session, list(accounts.values()))
        try:
            ledger.apply_with_holds(balances, holds, limits, transaction)
        except ledger.LimitBreach as exc:
            if exc.account == partner_account_key(partner.chamber_uri):
                raise ledger.LedgerError(_limit_message(exc)) from exc
            raise
        by = house.actor_uri(member)
        history.move(session, exchange, ExchangeStates.settling, now=now, by=by)
        accept = await house.record(
            session,
            exchange,
            ExchangeEvent.ACCEPT.value,
            member,
            now,
            comment=comment,
            deliver=False,
        )
        proposal = await _document(session, exchange.proposal_activity_id)
        uri = f"{house.settings.url}/settlements/{secrets.token_hex(12)}"
        settlement = Settlement(
            uri=uri,
            exchange_id=exchange.id,
            role=SettlementRole.PREPARER,
            partner_uri=partner.chamber_uri,
            minutes=exchange.minutes,
            deadline=deadline,
            evidence={
                "previous_state": previous,
                "proposal": proposal,
                "accept": accept.document,
            },
            created_at=now,
            updated_at=now,
        )
        start_process(
            session, SettlementStates, settlement, SettlementStates.prepared, subject=uri, now=now
        )
        session.add(settlement)
        await session.flush()
        for posting in transaction:
            session.add(
                Hold(
                    settlement_id=settlement.id,
                    account_id=accounts[posting.account].id,
                    amount=posting.amount,
                    state=HoldState.PENDING,
                    created_at=now,
                )
            )
        chamber = await _chamber(house, session)
        offer = await publish(
            house.federation,
            session,
            chamber,
            {
                "type": "Offer",
                "to": [partner.chamber_uri],
                "context": exchange.uri,
                "object": {
                    "type": SETTLEMENT_TYPE,
                    "id": uri,
                    "exchange": exchange.uri,
                    "provider": exchange.provider_uri,
                    "receiver": exchange.beneficiary_uri,
                    "minutes": exchange.minutes,
                    "endTime": deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "evidence": [proposal, accept.document],
                },
            },
            inboxes=[partner.inbox],
            now=now,
            urgent_until=urgent_until(deadline, now),
        )
        settlement.prepare_activity_id = offer.activity_id
        settlement.evidence = {**settlement.evidence, "prepare": offer.document}
        session.add(_event(exchange, "prepare", offer.actor_uri, offer, now))
        await ensure_pending(
            session,
            SETTLEMENT_CHECK_JOB,
            deadline,
            process_key=uri,
            payload={"settlement": uri},
            now=now,
        )
    crash_point("settlement.prepared")
    return exchange


# --- the decider: one transaction posts or refuses -------------------------------------


def _text(obj: Mapping[str, Any], key: str, limit: int = 2048) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InboxRejected(422, f"the settlement's {key} must be a URL", "invalidSettlement")
    return value


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise InboxRejected(422, "the settlement's endTime is missing", "invalidSettlement")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InboxRejected(
            422, "the settlement's endTime is not a date", "invalidSettlement"
        ) from None
    if parsed.tzinfo is None:
        raise InboxRejected(422, "the settlement's endTime needs a time zone", "invalidSettlement")
    return parsed


async def _partner_of_sender(context: InboxContext) -> Partner:
    partner = await partner_by_uri(context.session, context.actor_uri)
    if partner is None:
        raise InboxRejected(
            403, f"{context.actor_uri} is not a partner chamber of this chamber", "notPartner"
        )
    return partner


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


async def _store_incoming(
    session: AsyncSession, document: dict[str, Any], now: datetime
) -> StoredActivity:
    """Keep a member's activity received inside a chamber's message (get or create)."""
    found = (
        await session.execute(
            select(StoredActivity).where(StoredActivity.activity_id == document["id"])
        )
    ).scalar_one_or_none()
    if found is not None:
        return found
    stored = StoredActivity(
        activity_id=document["id"],
        direction="in",
        actor_uri=str(document["actor"]),
        activity_type=str(document["type"]),
        object_id=id_of(document.get("object")),
        public=True,
        document=document,
        created_at=now,
    )
    session.add(stored)
    await session.flush()
    return stored


async def _answer(
    house: ClearingHouse,
    session: AsyncSession,
    partner: Partner,
    settlement: Settlement,
    offer_id: str,
    exchange: Exchange | None,
    now: datetime,
) -> StoredActivity:
    """Publish the decision (Accept or Reject of the ``Offer``) to the preparer."""
    committed = settlement.state == SettlementState.COMMITTED
    activity: dict[str, Any] = {
        "type": "Accept" if committed else "Reject",
        "to": [partner.chamber_uri],
        "object": offer_id,
        "result": {
            "type": SETTLEMENT_TYPE,
            "id": settlement.uri,
            "state": settlement.state,
            "exchangeState": exchange.state if exchange is not None else None,
        },
    }
    if exchange is not None:
        activity["context"] = exchange.uri
        activity["result"]["exchange"] = exchange.uri
        activity["result"]["minutes"] = exchange.minutes
    if not committed:
        activity["content"] = settlement.reason
        if exchange is not None and exchange.state in {s.value for s in OPEN_STATES}:
            # The preparer may have missed an amendment while it was settling: the current
            # proposal, signed by its member, lets it catch up.
            activity["result"]["proposal"] = await _document(session, exchange.proposal_activity_id)
    chamber = await _chamber(house, session)
    decision = await publish(
        house.federation,
        session,
        chamber,
        activity,
        inboxes=[partner.inbox],
        now=now,
        urgent_until=urgent_until(settlement.deadline, now),
    )
    settlement.decision_activity_id = decision.activity_id
    return decision


async def _redeliver(
    house: ClearingHouse, session: AsyncSession, partner: Partner, settlement: Settlement
) -> None:
    decision = (
        await session.execute(
            select(StoredActivity).where(
                StoredActivity.activity_id == settlement.decision_activity_id
            )
        )
    ).scalar_one_or_none()
    if decision is not None:
        now = house.clock()
        await deliver_again(
            house.federation,
            session,
            decision,
            partner.inbox,
            now=now,
            urgent_until=urgent_until(settlement.deadline, now),
        )


def _on_settlement_offer(house: ClearingHouse) -> Any:
    async def handle(context: InboxContext) -> None:
        obj = context.object
        if not isinstance(obj, dict) or obj.get("type") != SETTLEMENT_TYPE:
            return
        session = context.session
        partner = await _partner_of_sender(context)
        uri = _text(obj, "id")
        exchange_uri = _text(obj, "exchange")
        if not same_origin(uri, context.actor_uri):
            raise InboxRejected(403, "a settlement's id is on its sender's host", "originMismatch")
        minutes = obj.get("minutes")
        if isinstance(minutes, bool) or not isinstance(minutes, int) or minutes <= 0:
            raise InboxRejected(422, "minutes: a positive whole number", "invalidSettlement")
        deadline = _parse_time(obj.get("endTime"))
        now = house.clock()
        settlement, created = await _claim(session, uri, partner, now)
        if not created:
            # A duplicate, or an Offer arriving after we recorded an abort for it.
            existing = settlement
            if existing.partner_uri != context.actor_uri:
                raise InboxRejected(403, "this settlement belongs to another chamber", "notOwner")
            if existing.decision_activity_id:
                await _redeliver(house, session, partner, existing)
            return
        exchange = (
            await session.execute(
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
        if (obj.get("provider"), obj.get("receiver"), minutes) != (
            exchange.provider_uri,
            exchange.beneficiary_uri,
            exchange.minutes,
        ):
            reason: str | None = "the settlement's terms differ from the exchange"
            accept: dict[str, Any] | None = None
        else:
            accept, reason = await _check_member_acceptance(
                house, session, exchange, remote, obj.get("evidence")
            )
        if reason is None and now > deadline:
            reason = "the settlement arrived after its deadline"
        settlement.exchange_id = exchange.id
        settlement.minutes, settlement.deadline = minutes, deadline
        settlement.prepare_activity_id = context.activity["id"]
        settlement.evidence = {"prepare": context.activity}
        if reason is None:
            assert accept is not None
            reason = await _post_here(house, session, exchange, partner, uri, now)
        if reason is None:
            assert accept is not None
            _settle(session, settlement, SettlementStates.committed.name, now)
            member_accept = await _store_incoming(session, accept, now)
            session.add(_event(exchange, ExchangeEvent.ACCEPT.value, remote, member_accept, now))
            settlement.evidence = {
                "proposal": await _document(session, exchange.proposal_activity_id),
                "accept": accept,
                "prepare": context.activity,
            }
        else:
            _settle(session, settlement, SettlementStates.aborted.name, now, reason=reason)
        await session.flush()
        session.add(_event(exchange, "prepare", context.actor_uri, context.stored, now, comment=""))
        decision = await _answer(
            house, session, partner, settlement, context.activity["id"], exchange, now
        )
        settlement.evidence = {**settlement.evidence, "decision": decision.document}
        session.add(
            _event(
                exchange,
                "commit" if settlement.state == SettlementState.COMMITTED else "abort",
                decision.actor_uri,
                decision,
                now,
                comment=settlement.reason,
            )
        )
        await session.flush()
        crash_point("settlement.deciding")
        context.after_commit.append(lambda: crash_point("settlement.decided"))

    return handle


async def _post_here(
    house: ClearingHouse,
    session: AsyncSession,
    exchange: Exchange,
    partner: Partner,
    uri: str,
    now: datetime,
) -> str | None:
    """Post the decider's side; return why not when a limit refuses it."""
    transaction = _postings(house, exchange, partner.chamber_uri)
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
        return _limit_message(exc)
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


def _on_abort_request(house: ClearingHouse) -> Any:
    """The preparer has waited past the deadline: answer with the decision, or abort now."""

    async def handle(context: InboxContext) -> None:
        obj = context.object
        if not isinstance(obj, dict) or obj.get("type") != "Offer":
            return
        inner = obj.get("object")
        if not isinstance(inner, dict) or inner.get("type") != SETTLEMENT_TYPE:
            return
        session = context.session
        partner = await _partner_of_sender(context)
        offer_id = _text(obj, "id")
        uri = _text(inner, "id")
        if not same_origin(uri, context.actor_uri) or not same_origin(offer_id, context.actor_uri):
            raise InboxRejected(403, "a settlement's id is on its sender's host", "originMismatch")
        now = house.clock()
        settlement, created = await _claim(session, uri, partner, now)
        if not created:
            if settlement.partner_uri != context.actor_uri:
                raise InboxRejected(403, "this settlement belongs to another chamber", "notOwner")
            await _redeliver(house, session, partner, settlement)
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
        _settle(session, tombstone, SettlementStates.aborted.name, now, reason=reason)
        await session.flush()
        decision = await _answer(house, session, partner, tombstone, offer_id, exchange, now)
        tombstone.evidence = {**tombstone.evidence, "decision": decision.document}
        if exchange is not None:
            # The declaring chamber's copy shows its signed decision too (as the other's does).
            session.add(
                _event(exchange, "abort", decision.actor_uri, decision, now, comment=reason)
            )

    return handle


# --- the preparer learns the decision ---------------------------------------------------


def _on_decision(house: ClearingHouse) -> Any:
    async def handle(context: InboxContext) -> None:
        offer_id = id_of(context.object)
        if offer_id is None or not house.federation.is_local(offer_id):
            return
        session = context.session
        settlement = (
            await session.execute(
                select(Settlement)
                .where(
                    Settlement.prepare_activity_id == offer_id,
                    Settlement.role == SettlementRole.PREPARER,
                )
                .with_for_update()
            )
        ).scalar_one_or_none()
        if settlement is None:
            return  # not a settlement of ours: another handler's Accept/Reject
        if settlement.partner_uri != context.actor_uri:
            raise InboxRejected(403, "only the deciding chamber decides", "notDecider")
        result = context.activity.get("result")
        if isinstance(result, dict) and result.get("id") not in (None, settlement.uri):
            raise InboxRejected(422, "the decision names another settlement", "invalidSettlement")
        committed = context.type == "Accept"
        if settlement.state != SettlementState.PREPARED:
            if (settlement.state == SettlementState.COMMITTED) != committed:
                log.error(
                    "settlement %s: %s after %s: the decider contradicts itself",
                    settlement.uri,
                    context.type,
                    settlement.state,
                )
            return
        crash_point("settlement.finishing")
        await _finish(house, context, settlement, committed, result)
        context.after_commit.append(lambda: crash_point("settlement.finished"))

    return handle


async def _finish(
    house: ClearingHouse,
    context: InboxContext,
    settlement: Settlement,
    committed: bool,
    result: Any,
) -> None:
    session = context.session
    now = house.clock()
    open_states = {state.value for state in OPEN_STATES}
    assert settlement.exchange_id is not None
    exchange = (
        await session.execute(
            select(Exchange).where(Exchange.id == settlement.exchange_id).with_for_update()
        )
    ).scalar_one()
    rows = (
        await session.execute(
            select(Hold, ClearingAccount.key)
            .join(ClearingAccount, ClearingAccount.id == Hold.account_id)
            .where(Hold.settlement_id == settlement.id)
        )
    ).all()
    if committed:
        await house.write(
            session,
            ledger.Transaction(ledger.Posting(key, hold.amount) for hold, key in rows),
            ClearingTransaction(
                kind=TransactionKind.EXCHANGE,
                exchange_id=exchange.id,
                reference=settlement.uri,
                memo=exchange.description[:200],
                posted_at=now,
            ),
            decided=True,
        )
        history.move(session, exchange, ExchangeStates.posted, now=now, by=context.actor_uri)
        exchange.posted_at = now
        _settle(session, settlement, SettlementStates.committed.name, now)
        await notify_exchange(session, exchange, "settled", context.actor_uri)
        if house.terms.demurrage_basis_points:
            await ensure_pending(
                session, DEMURRAGE_JOB, now + house.terms.demurrage_period, now=now
            )
    else:
        reported = result.get("exchangeState") if isinstance(result, dict) else None
        final = {s.value for s in FINAL_STATES} - {ExchangeState.POSTED.value}
        back_to = (
            reported if reported in final else settlement.evidence.get("previous_state", "proposed")
        )
        history.move(
            session, exchange, back_to, now=now, by=context.actor_uri, reason="not settled"
        )
        content = context.activity.get("content")
        reason = content[:2000] if isinstance(content, str) else ""
        _settle(session, settlement, SettlementStates.aborted.name, now, reason=reason)
        exchange.comment = f"not settled: {settlement.reason}" if settlement.reason else ""
    for hold, _ in rows:
        hold.state = HoldState.POSTED if committed else HoldState.VOIDED
    settlement.decision_activity_id = context.activity["id"]
    settlement.evidence = {**settlement.evidence, "decision": context.activity}
    session.add(
        _event(
            exchange,
            "commit" if committed else "abort",
            context.actor_uri,
            context.stored,
            now,
            comment=settlement.reason,
        )
    )
    await session.flush()
    if not committed and isinstance(result, dict) and exchange.state in open_states:
        await _catch_up(house, session, exchange, result.get("proposal"), now)
        await session.flush()


async def _catch_up(
    house: ClearingHouse, session: AsyncSession, exchange: Exchange, proposal: Any, now: datetime
) -> None:
    """Apply the amendment the decider reports, if it is one we missed and its member signed
    it (the ``Update`` that reached us while we were settling was ignored)."""
    from node.clearing.exchanges.inbox import apply_amendment  # noqa: PLC0415 (cycle)

    if (
        not isinstance(proposal, dict)
        or proposal.get("type") != "Update"
        or proposal.get("id") == exchange.proposal_activity_id
        or not isinstance(proposal.get("object"), dict)
        or proposal["object"].get("id") != exchange.uri
    ):
        return
    initiator = exchange.initiator_uri
    if proposal.get("actor") != initiator:
        return
    actor = await house.federation.cached_actor(session, initiator)
    result = verify_proof(proposal, public_keys_of(actor.document).get)
    if not result.ok or (result.verification_method or "").split("#")[0] != initiator:
        log.warning(
            "settlement of %s: the reported amendment is not signed by %s", exchange.uri, initiator
        )
        return
    apply_amendment(
        session,
        exchange,
        proposal["object"],
        str(proposal["id"]),
        now,
        house.terms.declaration_expiry,
    )
    stored = await _store_incoming(session, proposal, now)
    session.add(_event(exchange, ExchangeEvent.AMEND.value, initiator, stored, now))


# --- the preparer's patience ------------------------------------------------------------


def settlement_job_handlers(house: ClearingHouse) -> dict[str, Handler]:
    async def check(job: Job) -> Outcome:
        uri = str(job.payload.get("settlement", ""))
        now = house.clock()
        async with session_scope(house.sessionmaker) as session:
            settlement = (
                await session.execute(
                    select(Settlement).where(Settlement.uri == uri).with_for_update()
                )
            ).scalar_one_or_none()
            if settlement is None or settlement.state != SettlementState.PREPARED:
                return Done()
            if now < settlement.deadline:
                return Retry("waiting for the decision", delay=settlement.deadline - now)
            partner = await partner_by_uri(session, settlement.partner_uri)
            if partner is None:
                return Retry(f"{settlement.partner_uri} is no longer a partner")
            chamber = await _chamber(house, session)
            prepare = settlement.evidence.get("prepare", {})
            await publish(
                house.federation,
                session,
                chamber,
                {
                    "type": "Undo",
                    "to": [partner.chamber_uri],
                    "context": prepare.get("context"),
                    "object": {
                        "type": "Offer",
                        "id": settlement.prepare_activity_id,
                        "actor": prepare.get("actor"),
                        "object": {
                            "type": SETTLEMENT_TYPE,
                            "id": settlement.uri,
                            "exchange": (prepare.get("object") or {}).get("exchange"),
                        },
                    },
                },
                inboxes=[partner.inbox],
                now=now,
                urgent_until=urgent_until(settlement.deadline, now),
            )
        delay = min(
            next_delay(job.attempts + 1, base=house.settings.retry_base_seconds * 4),
            MAX_ABORT_REQUEST_DELAY,
        )
        return Retry("no decision yet: asked the deciding chamber again", delay=delay)

    return {SETTLEMENT_CHECK_JOB: check}


def register_settlement_handlers(dispatcher: InboxDispatcher, house: ClearingHouse) -> None:
    dispatcher.register("Offer", SETTLEMENT_TYPE, _on_settlement_offer(house))
    dispatcher.register("Undo", ("Offer", SETTLEMENT_TYPE), _on_abort_request(house))
    decision = _on_decision(house)
    dispatcher.register("Accept", ("Offer", SETTLEMENT_TYPE), decision)
    dispatcher.register("Reject", ("Offer", SETTLEMENT_TYPE), decision)
