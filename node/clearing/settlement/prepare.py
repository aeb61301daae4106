"""The preparer's first step: a member accepts an exchange with a member of another chamber;
this chamber reserves holds and offers the settlement to the decider."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.models import StoredActivity
from node.activitypub.outbox import publish
from node.clearing.exchanges import history
from node.clearing.exchanges.house import ClearingHouse, InvalidExchange
from node.clearing.exchanges.states import (
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
from node.clearing.ledger.holds import HoldStates, hold_subject
from node.clearing.ledger.models import (
    ClearingAccount,
    Exchange,
    partner_account_key,
)
from node.clearing.partners.models import (
    Hold,
    Partner,
    Settlement,
    SettlementRole,
)
from node.clearing.partners.service import (
    partner_for_actor,
    urgent_until,
)
from node.clearing.settlement.common import (
    SETTLEMENT_CHECK_JOB,
    SETTLEMENT_TYPE,
    chamber_actor,
    limit_message,
    postings,
    stored_document,
)
from node.db import read_only, session_scope
from node.faults import crash_point
from node.jobs import ensure_pending
from node.members.models import Member
from node.process_store import start as start_process

__all__ = ["prepare"]

log = logging.getLogger(__name__)


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
    # To the second, as the Offer's endTime carries it (and a round's deadline is kept): the
    # decider refuses the settlement from the moment the preparer asks to abort it.
    timeout = timedelta(seconds=house.settings.clearing_settlement_timeout_seconds)
    deadline = (now + timeout).replace(microsecond=0)
    async with session_scope(house.sessionmaker) as session:
        exchange = await house.get(session, key, lock=True)
        role = house.role_of(exchange, member)
        next_state(
            ExchangeState(exchange.state),
            ExchangeEvent.ACCEPT,
            party_of(role, Role(exchange.initiator)),
        )
        previous = exchange.state
        transaction = postings(house, exchange, partner.chamber_uri)
        accounts = await _check_limits(house, session, transaction, partner)
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
        proposal = await stored_document(session, exchange.proposal_activity_id)
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
        _reserve(session, settlement, transaction, accounts, now)
        offer = await _offer(house, session, exchange, partner, settlement, now)
        settlement.prepare_activity_id = offer.activity_id
        settlement.evidence = {**settlement.evidence, "prepare": offer.document}
        session.add(history.event(exchange, "prepare", offer.actor_uri, offer, now))
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


async def _check_limits(
    house: ClearingHouse, session: AsyncSession, transaction: ledger.Transaction, partner: Partner
) -> dict[str, ClearingAccount]:
    """Lock the accounts and check that the holds fit in their limits (nothing is written)."""
    accounts = await store.lock_accounts(session, [p.account for p in transaction])
    limits = {k: house.terms.limits_of(a) for k, a in accounts.items()}
    balances = {k: a.balance for k, a in accounts.items()}
    holds = await store.pending_holds(session, list(accounts.values()))
    try:
        ledger.apply_with_holds(balances, holds, limits, transaction)
    except ledger.LimitBreach as exc:
        if exc.account == partner_account_key(partner.chamber_uri):
            raise ledger.LedgerError(limit_message(exc)) from exc
        raise
    return accounts


async def _offer(
    house: ClearingHouse,
    session: AsyncSession,
    exchange: Exchange,
    partner: Partner,
    settlement: Settlement,
    now: datetime,
) -> StoredActivity:
    """The chamber's signed ``Offer`` of the settlement to the decider, delivered urgently."""
    evidence = settlement.evidence
    return await publish(
        house.federation,
        session,
        await chamber_actor(house, session),
        {
            "type": "Offer",
            "to": [partner.chamber_uri],
            "context": exchange.uri,
            "object": {
                "type": SETTLEMENT_TYPE,
                "id": settlement.uri,
                "exchange": exchange.uri,
                "provider": exchange.provider_uri,
                "receiver": exchange.beneficiary_uri,
                "minutes": exchange.minutes,
                "endTime": settlement.deadline.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "evidence": [evidence["proposal"], evidence["accept"]],
            },
        },
        inboxes=[partner.inbox],
        now=now,
        urgent_until=urgent_until(settlement.deadline, now),
    )


def _reserve(
    session: AsyncSession,
    settlement: Settlement,
    transaction: ledger.Transaction,
    accounts: dict[str, ClearingAccount],
    now: datetime,
) -> None:
    """One pending hold per posting of the settlement (each a process of `HoldStates`)."""
    for posting in transaction:
        hold = Hold(
            settlement_id=settlement.id,
            account_id=accounts[posting.account].id,
            amount=posting.amount,
            created_at=now,
        )
        subject = hold_subject(settlement.uri, posting.account)
        start_process(session, HoldStates, hold, HoldStates.pending, subject=subject, now=now)
        session.add(hold)
