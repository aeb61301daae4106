"""What the settlement's steps share: the postings, the chamber's signed messages, the
claim on a settlement row and the readers of incoming settlement documents."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import id_of
from node.activitypub.inbox import InboxContext, InboxRejected
from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.outbox import deliver_again, publish
from node.clearing.exchanges.house import ClearingHouse
from node.clearing.exchanges.states import (
    OPEN_STATES,
    SettlementStates,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    Exchange,
    member_account_key,
    partner_account_key,
)
from node.clearing.partners.models import (
    Partner,
    Settlement,
    SettlementRole,
    SettlementState,
)
from node.clearing.partners.service import (
    URGENCY_AFTER_DEADLINE,
    partner_by_uri,
    urgent_until,
)
from node.clearing.units import format_minutes
from node.db import insert_for
from node.process import Move
from node.process_store import move as move_process
from node.process_store import record

__all__ = [
    "MAX_ABORT_REQUEST_DELAY",
    "SETTLEMENT_CHECK_JOB",
    "SETTLEMENT_TYPE",
    "answer",
    "chamber_actor",
    "claim",
    "limit_message",
    "parse_time",
    "partner_of_sender",
    "postings",
    "redeliver",
    "settle",
    "store_incoming",
    "stored_document",
    "text_of",
]

log = logging.getLogger(__name__)

SETTLEMENT_CHECK_JOB = "clearing.settlement.check"
SETTLEMENT_TYPE = "Settlement"
MAX_ABORT_REQUEST_DELAY = URGENCY_AFTER_DEADLINE  # each abort request is urgent until the next


def postings(house: ClearingHouse, exchange: Exchange, partner_uri: str) -> ledger.Transaction:
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


async def chamber_actor(house: ClearingHouse, session: AsyncSession) -> LocalActor:
    return (
        await session.execute(
            select(LocalActor).where(LocalActor.username == house.settings.chamber_username)
        )
    ).scalar_one()


async def stored_document(session: AsyncSession, activity_id: str) -> dict[str, Any]:
    stored = (
        await session.execute(
            select(StoredActivity).where(StoredActivity.activity_id == activity_id)
        )
    ).scalar_one_or_none()
    return dict(stored.document) if stored is not None else {}


def settle(
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


async def claim(
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


def limit_message(breach: ledger.LimitBreach) -> str:
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


def text_of(obj: Mapping[str, Any], key: str, limit: int = 2048) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise InboxRejected(422, f"the settlement's {key} must be a URL", "invalidSettlement")
    return value


def parse_time(value: Any) -> datetime:
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


async def partner_of_sender(context: InboxContext) -> Partner:
    partner = await partner_by_uri(context.session, context.actor_uri)
    if partner is None:
        raise InboxRejected(
            403, f"{context.actor_uri} is not a partner chamber of this chamber", "notPartner"
        )
    return partner


async def store_incoming(
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


async def answer(
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
            activity["result"]["proposal"] = await stored_document(
                session, exchange.proposal_activity_id
            )
    chamber = await chamber_actor(house, session)
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


async def redeliver(
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
