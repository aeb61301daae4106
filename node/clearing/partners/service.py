"""Partner chambers: who this chamber trades with, and the credit line it extends to each.

Adding a partner resolves its chamber actor (over the network: outside any transaction), then
opens its mirror account in our ledger, whose floor is ``-credit_line_minutes``: how far the
partner may owe us, and tells the partner (`node.clearing.partners.partnership`): both chambers must
add each other before their members can trade, and ``confirmed`` says that the partner has.
`list_settlements` is what the administrators see of the settlements with partners.
`urgent_until` is how long a message with a deadline (a settlement's, a round's) skips a
partner's host paused after failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation, FederationError, authority_of
from node.activitypub.urls import InvalidUrlError, same_origin
from node.clearing.ledger.models import ClearingAccount, Exchange, partner_account_key
from node.clearing.ledger.rules import AccountKind
from node.clearing.partners.models import Partner, Settlement, SettlementState
from node.clearing.partners.partnership import offer_partnership
from node.clearing.units import ClearingError, format_minutes, require_minutes
from node.db import read_only, session_scope
from node.members.audit import AuditAction, record_audit
from node.members.models import Member

__all__ = [
    "MAX_CREDIT_LINE",
    "URGENCY_AFTER_DEADLINE",
    "PartnerError",
    "PartnerView",
    "SettlementView",
    "add_partner",
    "list_partners",
    "list_settlements",
    "partner_by_uri",
    "partner_for_actor",
    "set_credit_line",
    "urgent_until",
]

MAX_CREDIT_LINE = 1_000_000 * 60
CHAMBER_TYPES = frozenset({"Group", "Organization"})
URGENCY_AFTER_DEADLINE = timedelta(minutes=30)
"""After a deadline, a message of the abort protocol (``Undo``, the answer to it) is urgent
for this long: the longest wait between two abort requests."""


def urgent_until(deadline: datetime, now: datetime) -> datetime:
    """Until when a message about something with ``deadline`` is delivered even to a host
    paused after failures: the deadline, and at least `URGENCY_AFTER_DEADLINE` from now."""
    return max(deadline, now + URGENCY_AFTER_DEADLINE)


class PartnerError(ClearingError):
    """The partner cannot be added or changed; the message says why."""


@dataclass(frozen=True)
class PartnerView:
    chamber_uri: str
    name: str
    handle: str
    inbox: str
    credit_line_minutes: int
    balance_minutes: int
    created_at: datetime
    #: When the partner told us it has added this chamber too (None: not yet).
    confirmed_at: datetime | None = None

    @property
    def confirmed(self) -> bool:
        """Both chambers have added each other: their members can trade."""
        return self.confirmed_at is not None

    def as_json(self) -> dict[str, object]:
        return {
            "chamber": self.chamber_uri,
            "name": self.name,
            "handle": self.handle,
            "credit_line_minutes": self.credit_line_minutes,
            "credit_line": format_minutes(self.credit_line_minutes),
            "balance_minutes": self.balance_minutes,
            "balance": format_minutes(self.balance_minutes),
            "since": self.created_at.isoformat(),
            "confirmed": self.confirmed,
            "confirmed_at": self.confirmed_at.isoformat() if self.confirmed_at else None,
        }


def _check_line(minutes: object) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise PartnerError("credit_line_minutes: a whole number of minutes (600 for 10 h)")
    require_minutes(minutes, "credit_line_minutes")
    if not 0 <= minutes <= MAX_CREDIT_LINE:
        raise PartnerError(f"credit_line_minutes: between 0 and {MAX_CREDIT_LINE}")
    return minutes


async def partner_by_uri(session: AsyncSession, chamber_uri: str) -> Partner | None:
    return (
        await session.execute(select(Partner).where(Partner.chamber_uri == chamber_uri))
    ).scalar_one_or_none()


async def partner_for_actor(session: AsyncSession, actor_uri: str) -> Partner | None:
    """The partner chamber on the same host as ``actor_uri`` (a chamber or one of its members)."""
    try:
        host = authority_of(actor_uri)
    except (InvalidUrlError, ValueError):
        return None
    candidates = (
        await session.execute(select(Partner).where(Partner.chamber_uri.contains(host)))
    ).scalars()
    for partner in candidates:
        try:
            if same_origin(partner.chamber_uri, actor_uri):
                return partner
        except InvalidUrlError:
            continue
    return None


async def add_partner(
    federation: Federation,
    text: str,
    credit_line_minutes: object,
    *,
    by: Member | None,
    reason: str = "",
) -> PartnerView:
    """Trade with the chamber ``text`` (``@chamber@host`` or its actor URL); if it is a partner
    already, set its credit line. Logged in the administrators' audit log. The partner is told
    (again, while it has not confirmed): its answer confirms the partnership."""
    line = _check_line(credit_line_minutes)
    try:
        chamber_uri = await federation.resolve_handle(text)
        actor = await federation.get_remote_actor(chamber_uri)
    except FederationError as exc:
        raise PartnerError(f"{text!r} cannot be reached: {exc}") from None
    kinds = actor.document.get("type")
    if not CHAMBER_TYPES & set(kinds if isinstance(kinds, list) else [kinds]):
        raise PartnerError(f"{actor.uri} is a {kinds}, not a chamber")
    name = actor.document.get("name") or actor.document.get("preferredUsername") or ""
    username = actor.document.get("preferredUsername")
    handle = f"@{username}@{authority_of(actor.uri)}" if isinstance(username, str) else ""
    now = federation.clock()
    async with session_scope(federation.sessionmaker) as session:
        partner = await partner_by_uri(session, actor.uri)
        if partner is None:
            if await partner_for_actor(session, actor.uri) is not None:
                raise PartnerError(f"{authority_of(actor.uri)} already has a partner chamber here")
            account = ClearingAccount(
                key=partner_account_key(actor.uri),
                kind=AccountKind.CHAMBER.value,
                partner_actor_uri=actor.uri,
                balance=0,
                floor=-line,
                created_at=now,
            )
            session.add(account)
            await session.flush()
            partner = Partner(
                chamber_uri=actor.uri,
                inbox=actor.shared_inbox or actor.inbox,
                name=str(name)[:255],
                handle=handle[:255],
                credit_line_minutes=line,
                account_id=account.id,
                created_at=now,
                updated_at=now,
            )
            session.add(partner)
            await record_audit(
                session,
                by,
                AuditAction.PARTNER_ADD,
                actor.uri,
                reason.strip(),
                details={"credit_line_minutes": line},
                now=now,
            )
            await session.flush()
        else:
            partner.inbox = actor.shared_inbox or actor.inbox
            partner.name = str(name)[:255]
            partner.handle = handle[:255]
        if partner.confirmed_at is None:
            await offer_partnership(federation, session, partner, now)
    if partner.credit_line_minutes != line:
        return await set_credit_line(federation, actor.uri, line, by=by, reason=reason)
    return await _view(federation, actor.uri)


async def set_credit_line(
    federation: Federation,
    chamber_uri: str,
    credit_line_minutes: object,
    *,
    by: Member | None,
    reason: str = "",
) -> PartnerView:
    """Change how far the partner may owe us. A lower line refuses new debts only: what the
    partner owes already stays owed."""
    line = _check_line(credit_line_minutes)
    async with session_scope(federation.sessionmaker) as session:
        partner = await partner_by_uri(session, chamber_uri)
        if partner is None:
            raise PartnerError(f"{chamber_uri} is not a partner chamber")
        account = (
            await session.execute(
                select(ClearingAccount)
                .where(ClearingAccount.id == partner.account_id)
                .with_for_update()
            )
        ).scalar_one()
        before = partner.credit_line_minutes
        partner.credit_line_minutes = line
        partner.updated_at = federation.clock()
        account.floor = -line
        await record_audit(
            session,
            by,
            AuditAction.PARTNER_CREDIT_LINE,
            chamber_uri,
            reason.strip(),
            details={"before": before, "after": line},
        )
    return await _view(federation, chamber_uri)


async def list_partners(session: AsyncSession) -> list[PartnerView]:
    rows = await session.execute(
        select(Partner, ClearingAccount.balance)
        .join(ClearingAccount, ClearingAccount.id == Partner.account_id)
        .order_by(Partner.name, Partner.id)
    )
    return [_as_view(partner, balance) for partner, balance in rows.all()]


def _as_view(partner: Partner, balance: int) -> PartnerView:
    return PartnerView(
        chamber_uri=partner.chamber_uri,
        name=partner.name,
        handle=partner.handle,
        inbox=partner.inbox,
        credit_line_minutes=partner.credit_line_minutes,
        balance_minutes=balance,
        created_at=partner.created_at,
        confirmed_at=partner.confirmed_at,
    )


async def _view(federation: Federation, chamber_uri: str) -> PartnerView:
    async with read_only(federation.sessionmaker) as session:
        for view in await list_partners(session):
            if view.chamber_uri == chamber_uri:
                return view
    raise PartnerError(f"{chamber_uri} is not a partner chamber")


@dataclass(frozen=True)
class SettlementView:
    """One settlement with a partner as the administrators see it (``exchange_key`` is None
    for a decider's abort of a settlement it never saw)."""

    uri: str
    role: str
    state: str
    partner_uri: str
    minutes: int
    deadline: datetime
    reason: str
    created_at: datetime
    decided_at: datetime | None
    exchange_key: str | None
    exchange_uri: str | None
    description: str

    @property
    def in_flight(self) -> bool:
        return self.state == SettlementState.PREPARED


async def list_settlements(session: AsyncSession, *, recent: int = 20) -> list[SettlementView]:
    """Every settlement still in flight (the nearest deadline first), then the ``recent``
    latest decided ones (newest first)."""
    query = select(Settlement, Exchange.key, Exchange.uri, Exchange.description).outerjoin(
        Exchange, Exchange.id == Settlement.exchange_id
    )
    in_flight = await session.execute(
        query.where(Settlement.state == SettlementState.PREPARED).order_by(
            Settlement.deadline, Settlement.id
        )
    )
    decided = await session.execute(
        query.where(Settlement.state != SettlementState.PREPARED)
        .order_by(Settlement.id.desc())
        .limit(recent)
    )
    return [
        SettlementView(
            uri=row.uri,
            role=row.role,
            state=row.state,
            partner_uri=row.partner_uri,
            minutes=row.minutes,
            deadline=row.deadline,
            reason=row.reason,
            created_at=row.created_at,
            decided_at=row.decided_at,
            exchange_key=key,
            exchange_uri=uri,
            description=description or "",
        )
        for row, key, uri, description in [*in_flight.all(), *decided.all()]
    ]
