"""The clearing house service: exchanges, their signed activities, and posting to the ledger.

Each change is one write transaction: the exchange row is locked (``FOR UPDATE`` on
PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers), the state machine
(`node.clearing.exchanges.states`)
says whether the change is allowed, and on acceptance the involved
account rows are locked in id order, their balances and limits loaded, `ledger.apply` decides,
and the entries and new balances are written; the signed activity is stored with
`node.activitypub.outbox.publish` in the same transaction. Two acceptances racing for the same
headroom therefore never both pass, and a declaration is never half-recorded.

Accounts are created in their own short transaction before the main one (``ensure_account``),
so that two first exchanges of a member never race to create the same row.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.federation import (
    Federation,
)
from node.activitypub.urls import InvalidUrlError, origin_of
from node.clearing.exchanges import history
from node.clearing.exchanges.periodic import ChamberWork
from node.clearing.exchanges.reading import Readings, clearing_stats
from node.clearing.exchanges.states import (
    ExchangeEvent,
    ExchangeState,
    Role,
    next_state,
    party_of,
)
from node.clearing.exchanges.terms import (
    DEMURRAGE_JOB,
    EXPIRE_JOB,
    MAX_BRICKS,
    MAX_DESCRIPTION,
    MAX_MINUTES,
    AccountView,
    ChamberUnreachable,
    ClearingTerms,
    CrossChamberUnavailable,
    ExchangeNotFound,
    IdempotencyConflict,
    InvalidExchange,
    NoPartnership,
    NotAParty,
    RemoteParty,
    Summary,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingTransaction,
    Exchange,
    TransactionKind,
    member_account_key,
)
from node.clearing.units import format_minutes
from node.config import Settings
from node.db import read_only, session_scope
from node.jobs import ensure_pending
from node.members.models import Member

__all__ = [
    "DEMURRAGE_JOB",
    "EXPIRE_JOB",
    "MAX_BRICKS",
    "MAX_DESCRIPTION",
    "MAX_MINUTES",
    "AccountView",
    "ClearingHouse",
    "ClearingTerms",
    "ChamberUnreachable",
    "CrossChamberUnavailable",
    "ExchangeNotFound",
    "IdempotencyConflict",
    "InvalidExchange",
    "NoPartnership",
    "NotAParty",
    "RemoteParty",
    "Summary",
    "Settle",
    "clearing_stats",
]


def _fingerprint(
    counterparty: Member | RemoteParty,
    role: Role,
    minutes: int,
    description: str,
    performed_on: date,
    bricks: list[str],
) -> str:
    """What an idempotent replay of a declaration must repeat exactly."""
    values = {
        "counterparty": counterparty.actor_uri
        if isinstance(counterparty, RemoteParty)
        else counterparty.id,
        "role": role.value,
        "minutes": minutes,
        "description": description,
        "date": performed_on.isoformat(),
        "bricks": bricks,
    }
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


class _OtherChamber(Exception):
    """The acceptance of an exchange with another chamber's member: a settlement."""


@dataclass(frozen=True)
class _Changes:
    """What an answer may carry: a comment, and an amendment's new terms."""

    comment: str
    minutes: Any
    description: Any
    performed_on: date | None
    bricks: Sequence[str] | None


class Settle(Protocol):
    """Settle an acceptance across chambers (the preparer's first step)."""

    async def __call__(
        self, house: ClearingHouse, member: Member, key: str, *, comment: str = ""
    ) -> Exchange: ...


class ClearingHouse(ChamberWork, Readings):
    """Everything that changes the clearing house; built from the federation and settings.

    Its faces: `HouseCore` (parties, accounts, the record of an exchange), `ChamberWork`
    (expiry, *fonte*, limits), `Readings`; here, declaring and answering."""

    def __init__(
        self,
        federation: Federation,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        settle: Settle | None = None,
    ) -> None:
        self.federation = federation
        self.settle = settle
        """How an acceptance across chambers settles (`node.clearing.settlement.prepare`,
        handed in by the runtime: the settlement depends on the house, not the reverse)."""
        self.settings = settings
        self.sessionmaker: async_sessionmaker[AsyncSession] = federation.sessionmaker
        self.terms = ClearingTerms.from_settings(settings)
        self.clock = clock or federation.clock
        self._signers = {}

    def _check_terms(
        self, minutes: Any, description: Any, performed_on: date | None, bricks: Any
    ) -> tuple[int, str, date, list[str]]:
        if isinstance(minutes, bool) or not isinstance(minutes, int):
            raise InvalidExchange("minutes", "a whole number of minutes, e.g. 90 for 1 h 30")
        if not 0 < minutes <= MAX_MINUTES:
            raise InvalidExchange(
                "minutes", f"between 1 and {MAX_MINUTES} ({format_minutes(MAX_MINUTES)})"
            )
        if not isinstance(description, str) or not description.strip():
            raise InvalidExchange("description", "say in a few words what was done")
        if len(description) > MAX_DESCRIPTION:
            raise InvalidExchange("description", f"at most {MAX_DESCRIPTION} characters")
        today = self.clock().date()
        performed_on = performed_on or today
        if performed_on > today + timedelta(days=1):
            raise InvalidExchange("date", "an exchange is declared once done, not in advance")
        bricks = list(bricks or [])
        if len(bricks) > MAX_BRICKS:
            raise InvalidExchange("bricks", f"at most {MAX_BRICKS} bricks")
        for brick in bricks:
            try:
                if not isinstance(brick, str):
                    raise InvalidUrlError("not text")
                origin_of(brick)
            except InvalidUrlError:
                raise InvalidExchange("bricks", f"{brick!r} is not a brick URL") from None
        return minutes, description.strip(), performed_on, bricks

    async def declare(
        self,
        member: Member,
        counterparty: Member | RemoteParty,
        *,
        role: Role,
        minutes: Any,
        description: Any,
        performed_on: date | None = None,
        bricks: Sequence[str] | None = None,
        idempotency_key: str | None = None,
        offer_uri: str | None = None,
    ) -> tuple[Exchange, bool]:
        """Record "``member`` (on side ``role``) and ``counterparty`` exchanged this"
        (``offer_uri``: the offer or need it answers, ``node.offers``).

        Returns the exchange and whether it is a replay of an earlier request with the same
        ``idempotency_key`` (then nothing new is created).
        """
        minutes, description, performed_on, brick_list = self._check_terms(
            minutes, description, performed_on, bricks
        )
        if isinstance(counterparty, Member) and counterparty.id == member.id:
            raise InvalidExchange("counterparty", "an exchange needs two different members")
        if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
            raise InvalidExchange("Idempotency-Key", "between 1 and 255 characters")
        provider, beneficiary = (
            (member, counterparty) if role == Role.PROVIDER else (counterparty, member)
        )
        fingerprint = _fingerprint(
            counterparty, role, minutes, description, performed_on, brick_list
        )
        if idempotency_key is not None:
            replay = await self._replay(member, idempotency_key, fingerprint)
            if replay is not None:
                return replay, True
        await self.ensure_accounts(
            *(p.id for p in (provider, beneficiary) if isinstance(p, Member))
        )
        now = self.clock()
        key = secrets.token_hex(8)
        try:
            async with session_scope(self.sessionmaker) as session:
                exchange = Exchange(
                    key=key,
                    uri=self.exchange_uri(key),
                    provider_uri=self._uri_of(provider),
                    beneficiary_uri=self._uri_of(beneficiary),
                    provider_member_id=provider.id if isinstance(provider, Member) else None,
                    beneficiary_member_id=(
                        beneficiary.id if isinstance(beneficiary, Member) else None
                    ),
                    initiator=role.value,
                    initiator_member_id=member.id,
                    minutes=minutes,
                    description=description,
                    performed_on=performed_on,
                    bricks=brick_list,
                    comment="",
                    version=1,
                    idempotency_key=idempotency_key,
                    request_fingerprint=fingerprint,
                    offer_uri=offer_uri,
                    created_at=now,
                    updated_at=now,
                    expires_at=now + self.terms.declaration_expiry,
                )
                history.start(session, exchange, now=now, by=self.actor_uri(member))
                session.add(exchange)
                await session.flush()
                await self.record(session, exchange, "declare", member, now)
                await ensure_pending(session, EXPIRE_JOB, exchange.expires_at, now=now)
        except IntegrityError:
            if idempotency_key is None:
                raise
            replay = await self._replay(member, idempotency_key, fingerprint)
            if replay is None:
                raise
            return replay, True
        return exchange, False

    def _uri_of(self, party: Member | RemoteParty) -> str:
        return party.actor_uri if isinstance(party, RemoteParty) else self.actor_uri(party)

    async def _replay(self, member: Member, key: str, fingerprint: str) -> Exchange | None:
        async with read_only(self.sessionmaker) as session:
            found = (
                await session.execute(
                    select(Exchange).where(
                        Exchange.initiator_member_id == member.id,
                        Exchange.idempotency_key == key,
                    )
                )
            ).scalar_one_or_none()
        if found is not None and found.request_fingerprint != fingerprint:
            raise IdempotencyConflict()
        return found

    async def act(
        self,
        member: Member,
        key: str,
        event: ExchangeEvent,
        *,
        comment: str = "",
        minutes: Any = None,
        description: Any = None,
        performed_on: date | None = None,
        bricks: Sequence[str] | None = None,
    ) -> Exchange:
        """``member`` accepts, contests, refuses, withdraws or amends the exchange ``key``.

        Accepting posts it to the ledger in the same transaction, or raises a
        `ledger.LimitBreach` and changes nothing.
        """
        if event == ExchangeEvent.EXPIRE:
            raise NotAParty("only the chamber expires a declaration")
        if len(comment) > MAX_DESCRIPTION:
            raise InvalidExchange("comment", f"at most {MAX_DESCRIPTION} characters")
        if event == ExchangeEvent.CONTEST and not comment.strip():
            raise InvalidExchange("comment", "say what is wrong, so that it can be amended")
        changes = _Changes(comment, minutes, description, performed_on, bricks)
        try:
            return await self._answer(member, key, event, changes)
        except (_OtherChamber, ledger.UnknownAccount) as detour:
            if event != ExchangeEvent.ACCEPT:
                raise
            # Rare: the exchange involves another chamber (a settlement), or an account has
            # yet to be opened (the commons fund once a levy is set). Open what is missing in
            # its own transaction, then answer again.
            async with read_only(self.sessionmaker) as session:
                found = await self.get(session, key)
            member_ids = [
                m for m in (found.provider_member_id, found.beneficiary_member_id) if m is not None
            ]
            await self.ensure_accounts(*member_ids, commons=self.terms.levy_basis_points > 0)
            if isinstance(detour, _OtherChamber):
                if self.settle is None:
                    raise CrossChamberUnavailable(found.uri) from None
                return await self.settle(self, member, key, comment=comment)
            return await self._answer(member, key, event, changes)

    async def _answer(
        self, member: Member, key: str, event: ExchangeEvent, changes: _Changes
    ) -> Exchange:
        """One write transaction: lock the exchange, move it, post it if accepted, sign and
        store the activity. The acceptance of a cross-chamber exchange (a settlement) raises
        `_OtherChamber` before anything changes."""
        now = self.clock()
        comment = changes.comment
        async with session_scope(self.sessionmaker) as session:
            exchange = await self.get(session, key, lock=True)
            if event == ExchangeEvent.ACCEPT and self.is_cross_chamber(exchange):
                raise _OtherChamber()
            role = self.role_of(exchange, member)
            party = party_of(role, Role(exchange.initiator))
            new_state = next_state(ExchangeState(exchange.state), event, party)
            if event == ExchangeEvent.AMEND:
                new_minutes, new_description, new_date, new_bricks = self._check_terms(
                    exchange.minutes if changes.minutes is None else changes.minutes,
                    exchange.description if changes.description is None else changes.description,
                    changes.performed_on or exchange.performed_on,
                    exchange.bricks if changes.bricks is None else changes.bricks,
                )
                exchange.minutes, exchange.description = new_minutes, new_description
                exchange.performed_on, exchange.bricks = new_date, new_bricks
                exchange.version += 1
                exchange.expires_at = now + self.terms.declaration_expiry
            if event == ExchangeEvent.ACCEPT:
                await self._post(session, exchange, now)
                exchange.posted_at = now
                if self.terms.demurrage_basis_points:
                    await ensure_pending(
                        session, DEMURRAGE_JOB, now + self.terms.demurrage_period, now=now
                    )
            if event in (ExchangeEvent.CONTEST, ExchangeEvent.AMEND):
                exchange.comment = comment.strip() if event == ExchangeEvent.CONTEST else ""
            history.move(session, exchange, new_state, now=now, by=self.actor_uri(member))
            await self.record(session, exchange, event.value, member, now, comment=comment)
        return exchange

    async def _post(self, session: AsyncSession, exchange: Exchange, now: datetime) -> None:
        assert exchange.provider_member_id is not None
        assert exchange.beneficiary_member_id is not None
        provider_key = member_account_key(exchange.provider_member_id)
        beneficiary_key = member_account_key(exchange.beneficiary_member_id)
        levy = self.terms.levy_basis_points
        transaction = ledger.exchange_postings(
            provider_key,
            beneficiary_key,
            exchange.minutes,
            levy,
            COMMONS_FUND_KEY if levy else None,
        )
        await self.write(
            session,
            transaction,
            ClearingTransaction(
                kind=TransactionKind.EXCHANGE,
                exchange_id=exchange.id,
                memo=exchange.description[:200],
                posted_at=now,
            ),
        )
