"""The preparer's last step: the decider's ``Accept`` posts the holds, its ``Reject`` voids them."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import id_of
from node.activitypub.inbox import InboxContext, InboxRejected
from node.activitypub.keys import public_keys_of
from node.activitypub.proofs import verify_proof
from node.clearing.exchanges import history
from node.clearing.exchanges.copies import after_decision
from node.clearing.exchanges.house import DEMURRAGE_JOB, ClearingHouse
from node.clearing.exchanges.inbox import apply_amendment
from node.clearing.exchanges.notices import notify_exchange
from node.clearing.exchanges.states import (
    FINAL_STATES,
    OPEN_STATES,
    ExchangeEvent,
    ExchangeState,
    ExchangeStates,
    SettlementStates,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger.holds import HoldStates, hold_subject
from node.clearing.ledger.models import (
    ClearingAccount,
    ClearingTransaction,
    Exchange,
    TransactionKind,
)
from node.clearing.partners.models import (
    Hold,
    Settlement,
    SettlementRole,
    SettlementState,
)
from node.clearing.settlement.common import (
    settle,
    store_incoming,
)
from node.faults import crash_point
from node.jobs import ensure_pending
from node.process_store import move as move_process

__all__ = ["on_decision"]

log = logging.getLogger(__name__)


def on_decision(house: ClearingHouse) -> Any:
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
        settle(session, settlement, SettlementStates.committed.name, now)
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
        settle(session, settlement, SettlementStates.aborted.name, now, reason=reason)
        exchange.comment = f"not settled: {settlement.reason}" if settlement.reason else ""
    for hold, key in rows:
        to = HoldStates.posted if committed else HoldStates.voided
        subject = hold_subject(settlement.uri, key)
        move_process(session, HoldStates, hold, to, subject=subject, now=now)
    settlement.decision_activity_id = context.activity["id"]
    settlement.evidence = {**settlement.evidence, "decision": context.activity}
    session.add(
        history.event(
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
    # What the declaring side did while we were settling (kept by node.clearing.exchanges.copies).
    await after_decision(session, exchange, now=now, expiry=house.terms.declaration_expiry)


async def _catch_up(
    house: ClearingHouse, session: AsyncSession, exchange: Exchange, proposal: Any, now: datetime
) -> None:
    """Apply the amendment the decider reports, if it is one we missed and its member signed
    it (the ``Update`` that reached us while we were settling was ignored)."""
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
    stored = await store_incoming(session, proposal, now)
    session.add(history.event(exchange, ExchangeEvent.AMEND.value, initiator, stored, now))
