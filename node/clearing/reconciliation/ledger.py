"""Reading this chamber's side of a reconciliation from its ledger, at a cut-off.

The queries behind `node.clearing.reconciliation.service`: our statement of a partner's mirror
account (`mirror_statement`), what was in flight with the partner at a moment (settlements
prepared and clearing rounds started, not decided by then), our postings for given references
wherever they fall in time, and what we know of a reference to explain it. They only read, in
the caller's session; `node.clearing.reconciliation.statements` does the rest, without I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.clearing.ledger.models import ClearingEntry, ClearingTransaction, Exchange
from node.clearing.partners.models import Hold, Partner, Settlement, SettlementState
from node.clearing.reconciliation.statements import (
    MAX_PENDING,
    PendingEntry,
    ReferenceNote,
    Statement,
    StatementEntry,
    build_statement,
)
from node.clearing.rounds.models import ClearingRound
from node.clearing.rounds.protocol import FINAL_ROUND_STATES

__all__ = [
    "in_flight",
    "mirror_statement",
    "postings_of",
    "reference_notes",
    "unreferenced",
]

_CHUNK = 500


def unreferenced(host: str, transaction_id: int) -> str:
    """The name of a posting to a mirror account without a shared reference (there should be
    none: settlements and rounds always give one)."""
    return f"urn:archipel:{host}:transaction:{transaction_id}"


def _chunks(items: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(items), _CHUNK):
        yield items[i : i + _CHUNK]


async def mirror_statement(
    session: AsyncSession,
    partner: Partner,
    *,
    chamber: str,
    host: str,
    as_of: datetime,
    start: datetime | None = None,
    limit: int | None = None,
) -> Statement:
    """``chamber``'s statement of ``partner``'s mirror account as of ``as_of``, after ``start``.

    With ``limit``, a longer history starts later: the entries at or before the new start are
    in the opening balance. The balance is summed from the entries (not the account's stored
    balance), so that it is the balance *at* the cut-off.
    """
    account = partner.account_id
    window = [ClearingEntry.account_id == account, ClearingEntry.posted_at <= as_of]
    if start is not None:
        window.append(ClearingEntry.posted_at > start)
    if limit is not None:
        cut = (
            await session.execute(
                select(ClearingEntry.posted_at)
                .where(*window)
                .order_by(ClearingEntry.posted_at.desc(), ClearingEntry.id.desc())
                .offset(limit)
                .limit(1)
            )
        ).scalar_one_or_none()
        if cut is not None:
            start = cut
            window.append(ClearingEntry.posted_at > start)
    rows = await session.execute(
        select(
            ClearingTransaction.reference,
            ClearingTransaction.id,
            ClearingEntry.amount,
            ClearingEntry.posted_at,
        )
        .join(ClearingTransaction, ClearingTransaction.id == ClearingEntry.transaction_id)
        .where(*window)
    )
    postings = [
        (reference or unreferenced(host, tx_id), amount, posted_at)
        for reference, tx_id, amount, posted_at in rows.all()
    ]
    opening = 0
    if start is not None:
        opening = (
            await session.execute(
                select(func.coalesce(func.sum(ClearingEntry.amount), 0)).where(
                    ClearingEntry.account_id == account, ClearingEntry.posted_at <= start
                )
            )
        ).scalar_one()
    return build_statement(
        chamber=chamber,
        partner=partner.chamber_uri,
        as_of=as_of,
        postings=postings,
        start=start,
        opening=int(opening),
        pending=await in_flight(session, partner, as_of),
    )


async def in_flight(session: AsyncSession, partner: Partner, as_of: datetime) -> list[PendingEntry]:
    """Settlements with ``partner`` prepared by ``as_of`` and not decided by then (with their
    hold on the mirror account), then clearing rounds with it in the same case."""
    settlements = (
        await session.execute(
            select(Settlement.id, Settlement.uri)
            .where(
                Settlement.partner_uri == partner.chamber_uri,
                Settlement.created_at <= as_of,
                or_(
                    Settlement.state == SettlementState.PREPARED,
                    and_(Settlement.decided_at.is_not(None), Settlement.decided_at > as_of),
                ),
            )
            .order_by(Settlement.created_at, Settlement.id)
            .limit(MAX_PENDING)
        )
    ).all()
    held: dict[int, int] = {}
    if settlements:
        rows = await session.execute(
            select(Hold.settlement_id, func.sum(Hold.amount))
            .where(
                Hold.settlement_id.in_([s.id for s in settlements]),
                Hold.account_id == partner.account_id,
            )
            .group_by(Hold.settlement_id)
        )
        held = {settlement_id: int(total) for settlement_id, total in rows.all() if total}
    pending = [PendingEntry(uri, held.get(sid)) for sid, uri in settlements]
    pending += await _rounds_in_flight(session, partner, as_of)
    return pending[:MAX_PENDING]


async def _rounds_in_flight(
    session: AsyncSession, partner: Partner, as_of: datetime
) -> list[PendingEntry]:
    rows = await session.execute(
        select(ClearingRound.uri, ClearingRound.participants)
        .where(
            ClearingRound.created_at <= as_of,
            or_(
                ClearingRound.state.not_in([s.value for s in FINAL_ROUND_STATES]),
                and_(ClearingRound.decided_at.is_not(None), ClearingRound.decided_at > as_of),
            ),
        )
        .order_by(ClearingRound.created_at, ClearingRound.id)
    )
    return [
        PendingEntry(uri)
        for uri, participants in rows.all()
        if partner.chamber_uri in (participants or [])
    ]


async def postings_of(
    session: AsyncSession, partner: Partner, references: Sequence[str]
) -> dict[str, StatementEntry]:
    """Our postings to the mirror account for ``references``, wherever they are in time."""
    found: dict[str, StatementEntry] = {}
    for chunk in _chunks(references):
        rows = await session.execute(
            select(
                ClearingTransaction.reference,
                func.sum(ClearingEntry.amount),
                func.max(ClearingEntry.posted_at),
            )
            .join(ClearingTransaction, ClearingTransaction.id == ClearingEntry.transaction_id)
            .where(
                ClearingEntry.account_id == partner.account_id,
                ClearingTransaction.reference.in_(chunk),
            )
            .group_by(ClearingTransaction.reference)
        )
        for reference, total, posted_at in rows.all():
            if reference is not None and total:
                found[reference] = StatementEntry(reference, int(total), posted_at)
    return found


async def reference_notes(
    session: AsyncSession, references: Sequence[str]
) -> dict[str, ReferenceNote]:
    """What we know of each reference: its settlement here and the exchange behind it."""
    notes: dict[str, ReferenceNote] = {}
    for chunk in _chunks(references):
        rows = await session.execute(
            select(
                Settlement.uri,
                Settlement.state,
                Settlement.reason,
                Exchange.uri,
                Exchange.description,
            )
            .outerjoin(Exchange, Exchange.id == Settlement.exchange_id)
            .where(Settlement.uri.in_(chunk))
        )
        for uri, state, reason, exchange, description in rows.all():
            notes[uri] = ReferenceNote(exchange or "", description or "", state, reason or "")
    return notes
