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
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.federation import (
    Federation,
    FederationError,
    RemoteUnavailable,
    authority_of,
)
from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.outbox import publish
from node.activitypub.urls import InvalidUrlError, origin_of
from node.clearing.exchanges import history
from node.clearing.exchanges.activities import (
    ExchangeTerms,
    event_activity,
    exchange_object,
    proposal_activity,
)
from node.clearing.exchanges.notices import notify_exchange
from node.clearing.exchanges.states import (
    ExchangeEvent,
    ExchangeState,
    Party,
    Role,
    next_state,
    party_of,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger import store
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingEntry,
    ClearingEvent,
    ClearingTransaction,
    Exchange,
    TransactionKind,
    member_account_key,
)
from node.clearing.ledger.rules import AccountKind, Limits
from node.clearing.units import ClearingError, format_minutes, require_minutes
from node.config import Settings
from node.db import read_only, session_scope
from node.jobs import ensure_pending
from node.members.audit import AuditAction, record_audit
from node.members.contributions import ClearingStats
from node.members.models import Member, MemberStatus

__all__ = [
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
    "clearing_stats",
]

EXPIRE_JOB = "clearing.expire"
DEMURRAGE_JOB = "clearing.demurrage"
MAX_MINUTES = 1000 * 60
MAX_DESCRIPTION = 2000
MAX_BRICKS = 20


class ExchangeNotFound(ClearingError):
    pass


class NotAParty(ClearingError):
    """The member is neither the provider nor the beneficiary of this exchange."""


class ChamberUnreachable(ClearingError):
    """The other member's chamber cannot be reached now: the same request may succeed later
    (HTTP 503 with ``Retry-After``), unlike a handle that does not exist (422)."""

    retry_after = 60

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class CrossChamberUnavailable(ClearingError):
    """The party is on another chamber: `ClearingHouse.resolve_counterparty` resolves it."""

    def __init__(self, who: str) -> None:
        self.who = who
        super().__init__(f"{who} is on another chamber")


@dataclass(frozen=True)
class RemoteParty:
    """A member of a partner chamber, as this node knows them."""

    actor_uri: str
    inbox: str
    chamber_uri: str
    name: str = ""


class InvalidExchange(ClearingError):
    """A field of a declaration is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NoPartnership(InvalidExchange):
    """The other member's chamber is not a partner both ways: not ours (``ours`` False), or it
    has not added us (yet)."""

    def __init__(self, host: str, *, ours: bool) -> None:
        self.host = host
        self.ours = ours
        if ours:
            message = (
                f"{host} has not added this chamber as a partner (yet): its members and ours "
                "can trade once both chambers have added each other"
            )
        else:
            message = (
                f"{host} is not a partner chamber of this chamber: "
                "its administrators and ours must first open credit lines to each other"
            )
        super().__init__("counterparty", message)


class IdempotencyConflict(ClearingError):
    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for a different declaration: "
            "use a new key for a new exchange"
        )


@dataclass(frozen=True)
class ClearingTerms:
    """The chamber's rules for its ledger (from the settings)."""

    default_floor: int = -20 * 60
    default_ceiling: int | None = None
    levy_basis_points: int = 0
    demurrage_basis_points: int = 0
    demurrage_threshold: int = 0
    demurrage_period: timedelta = timedelta(days=30)
    declaration_expiry: timedelta = timedelta(days=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClearingTerms:
        ceiling = settings.clearing_default_ceiling_minutes
        return cls(
            default_floor=settings.clearing_default_floor_minutes,
            default_ceiling=None if ceiling < 0 else ceiling,
            levy_basis_points=settings.clearing_levy_basis_points,
            demurrage_basis_points=settings.clearing_demurrage_basis_points,
            demurrage_threshold=settings.clearing_demurrage_threshold_minutes,
            demurrage_period=timedelta(days=settings.clearing_demurrage_period_days),
            declaration_expiry=timedelta(days=settings.clearing_declaration_expiry_days),
        )

    def limits_of(self, account: ClearingAccount) -> Limits:
        kind = AccountKind(account.kind)
        if kind == AccountKind.MEMBER:
            floor, ceiling = self.default_floor, self.default_ceiling
        else:
            floor, ceiling = 0, None
        return Limits(
            floor=account.floor if account.floor is not None else floor,
            ceiling=account.ceiling if account.ceiling is not None else ceiling,
            kind=kind,
        )


@dataclass(frozen=True)
class AccountView:
    account: ClearingAccount | None
    balance: int
    limits: Limits


@dataclass(frozen=True)
class Summary:
    accounts: int
    sum_minutes: int
    exchanges_posted: int
    volume_minutes: int


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


_EXCHANGE_BY_KEY = select(Exchange).where(Exchange.key == bindparam("key"))
_EXCHANGE_FOR_UPDATE = _EXCHANGE_BY_KEY.with_for_update()


def _fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


class Settle(Protocol):
    """Settle an acceptance across chambers (the preparer's first step)."""

    async def __call__(
        self, house: ClearingHouse, member: Member, key: str, *, comment: str = ""
    ) -> Exchange: ...


class ClearingHouse:
    """Everything that changes the clearing house; built from the federation and settings."""

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
        """How an acceptance across chambers settles (`node.clearing.settlement.steps.prepare`,
        handed in by the runtime: the settlement depends on the house, not the reverse)."""
        self.settings = settings
        self.sessionmaker: async_sessionmaker[AsyncSession] = federation.sessionmaker
        self.terms = ClearingTerms.from_settings(settings)
        self.clock = clock or federation.clock
        self._signers: dict[int | None, LocalActor] = {}

    # --- parties and accounts -------------------------------------------------------------

    def exchange_uri(self, key: str) -> str:
        return f"{self.settings.url}/exchanges/{key}"

    def actor_uri(self, member: Member) -> str:
        return self.federation.urls(member.username).id

    async def resolve_party(self, session: AsyncSession, text: str) -> Member:
        """A member of this node from ``@user@host``, ``user@host``, ``user`` or an actor URL.

        Raises `CrossChamberUnavailable` for another node's member (issue 7 settles those)
        and `InvalidExchange` when nobody answers to it here.
        """
        handle = text.strip()
        username: str | None
        if handle.startswith(("http://", "https://")):
            try:
                origin_of(handle)
            except InvalidUrlError as exc:
                raise InvalidExchange("counterparty", str(exc)) from None
            if not self.federation.is_local(handle):
                raise CrossChamberUnavailable(handle)
            username = self.federation.local_username(handle)
            if username is None and handle.startswith(self.settings.url + "/@"):
                username = handle[len(self.settings.url) + 2 :]
        else:
            account = handle.removeprefix("acct:").lstrip("@")
            user, sep, host = account.partition("@")
            if sep and host.lower() != self.settings.host.lower():
                raise CrossChamberUnavailable(handle)
            username = user
        member = None
        if username:
            member = (
                await session.execute(select(Member).where(Member.username == username.lower()))
            ).scalar_one_or_none()
        if member is None or member.status != MemberStatus.APPROVED:
            raise InvalidExchange("counterparty", f"no member of this chamber is called {text!r}")
        return member

    async def resolve_counterparty(self, text: str) -> Member | RemoteParty:
        """A member of this chamber, or of a partner chamber (fetched over the network:
        call it outside any transaction). Another chamber must be a partner."""
        try:
            async with read_only(self.sessionmaker) as session:
                return await self.resolve_party(session, text)
        except CrossChamberUnavailable:
            pass
        from node.clearing.partners.service import partner_for_actor  # noqa: PLC0415 (cycle)

        try:
            actor_uri = await self.federation.resolve_handle(text)
            actor = await self.federation.get_remote_actor(actor_uri)
        except RemoteUnavailable as exc:
            raise ChamberUnreachable(
                "counterparty", f"the chamber of {text!r} cannot be reached now: {exc}"
            ) from None
        except FederationError as exc:
            raise InvalidExchange("counterparty", f"{text!r} cannot be reached: {exc}") from None
        kinds = actor.document.get("type")
        if "Person" not in (kinds if isinstance(kinds, list) else [kinds]):
            raise InvalidExchange("counterparty", f"{actor_uri} is not a person")
        async with read_only(self.sessionmaker) as session:
            partner = await partner_for_actor(session, actor_uri)
        if partner is None or partner.confirmed_at is None:
            raise NoPartnership(authority_of(actor_uri), ours=partner is not None)
        name = actor.document.get("preferredUsername")
        return RemoteParty(
            actor_uri=actor.uri,
            inbox=actor.inbox,
            chamber_uri=partner.chamber_uri,
            name=f"{name}@{authority_of(actor_uri)}" if isinstance(name, str) else actor.uri,
        )

    async def ensure_accounts(self, *member_ids: int, commons: bool = False) -> None:
        """Open (at zero) the accounts that do not exist yet, each in its own transaction."""
        wanted: list[tuple[str, AccountKind, int | None]] = [
            (member_account_key(m), AccountKind.MEMBER, m) for m in member_ids
        ]
        if commons:
            wanted.append((COMMONS_FUND_KEY, AccountKind.COMMONS_FUND, None))
        async with read_only(self.sessionmaker) as session:
            existing = set(
                (
                    await session.execute(
                        select(ClearingAccount.key).where(
                            ClearingAccount.key.in_([k for k, _, _ in wanted])
                        )
                    )
                ).scalars()
            )
        for key, kind, member_id in wanted:
            if key in existing:
                continue
            try:
                async with session_scope(self.sessionmaker) as session:
                    session.add(
                        ClearingAccount(
                            key=key,
                            kind=kind.value,
                            member_id=member_id,
                            balance=0,
                            created_at=self.clock(),
                        )
                    )
            except IntegrityError:
                pass  # created meanwhile by another request: fine

    # --- declaring ------------------------------------------------------------------------

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
            {
                "counterparty": counterparty.actor_uri
                if isinstance(counterparty, RemoteParty)
                else counterparty.id,
                "role": role.value,
                "minutes": minutes,
                "description": description,
                "date": performed_on.isoformat(),
                "bricks": brick_list,
            }
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

    def is_cross_chamber(self, exchange: Exchange) -> bool:
        return exchange.provider_member_id is None or exchange.beneficiary_member_id is None

    def remote_party_of(self, exchange: Exchange) -> str | None:
        """The actor URI of the party on another chamber, if any."""
        if exchange.provider_member_id is None:
            return exchange.provider_uri
        if exchange.beneficiary_member_id is None:
            return exchange.beneficiary_uri
        return None

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

    # --- answering ------------------------------------------------------------------------

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

    def role_of(self, exchange: Exchange, member: Member) -> Role:
        if exchange.provider_member_id == member.id:
            return Role.PROVIDER
        if exchange.beneficiary_member_id == member.id:
            return Role.BENEFICIARY
        raise NotAParty("you are neither the provider nor the beneficiary of this exchange")

    async def get(self, session: AsyncSession, key: str, *, lock: bool = False) -> Exchange:
        query = _EXCHANGE_FOR_UPDATE if lock else _EXCHANGE_BY_KEY
        exchange = (await session.execute(query, {"key": key})).scalar_one_or_none()
        if exchange is None:
            raise ExchangeNotFound(f"no exchange {key!r} on this chamber")
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

    async def write(
        self,
        session: AsyncSession,
        transaction: ledger.Transaction,
        row: ClearingTransaction,
        *,
        decided: bool = False,
    ) -> None:
        """Post ``transaction`` under this chamber's limits (`node.clearing.ledger.store.write`)."""
        await store.write(
            session, transaction, row, limits_of=self.terms.limits_of, decided=decided
        )

    # --- activities -----------------------------------------------------------------------

    def terms_of(self, exchange: Exchange) -> ExchangeTerms:
        return ExchangeTerms(
            uri=exchange.uri,
            provider=exchange.provider_uri,
            receiver=exchange.beneficiary_uri,
            minutes=exchange.minutes,
            description=exchange.description,
            performed_on=exchange.performed_on,
            bricks=tuple(exchange.bricks or ()),
            version=exchange.version,
            url=exchange.uri,
        )

    def document_of(self, exchange: Exchange) -> dict[str, Any]:
        initiator = exchange.initiator_uri
        return exchange_object(
            self.terms_of(exchange), state=ExchangeState(exchange.state), attributed_to=initiator
        )

    async def _signer_of(self, session: AsyncSession, member: Member | None) -> LocalActor:
        """The local actor who signs for ``member`` (None: the chamber), loaded once per
        process: only its username and its key are used, and neither ever changes."""
        cache_key = None if member is None else member.actor_id
        actor = self._signers.get(cache_key)
        if actor is None:
            if member is None:
                query = select(LocalActor).where(
                    LocalActor.username == self.settings.chamber_username
                )
            else:
                query = select(LocalActor).where(LocalActor.id == member.actor_id)
            actor = (await session.execute(query)).scalar_one()
            if len(self._signers) >= 4096:
                self._signers.clear()
            self._signers[cache_key] = actor
        return actor

    async def record(
        self,
        session: AsyncSession,
        exchange: Exchange,
        event: str,
        member: Member | None,
        now: datetime,
        *,
        comment: str = "",
        deliver: bool = True,
    ) -> StoredActivity:
        """Sign and store the activity for this change, and the event that points to it.

        The activity goes to the party on another chamber, if there is one (``deliver``)."""
        actor = await self._signer_of(session, member)
        actor_uri = self.federation.urls(actor.username).id
        other = (
            exchange.beneficiary_uri
            if actor_uri == exchange.provider_uri
            else exchange.provider_uri
        )
        if event in ("declare", ExchangeEvent.AMEND.value):
            document = self.document_of(exchange)
            document["state"] = ExchangeState.PROPOSED.value
            activity = proposal_activity(event, actor_uri, other, document)
        else:
            result = None
            if event == ExchangeEvent.ACCEPT.value:
                result = self.document_of(exchange)
                result["state"] = ExchangeState.POSTED.value
            audience = other if member is not None else exchange.provider_uri
            activity = event_activity(
                ExchangeEvent(event),
                actor_uri,
                exchange.proposal_activity_id,
                exchange.uri,
                audience,
                comment=comment.strip(),
                result=result,
            )
            if member is None:
                activity["cc"] = [exchange.provider_uri, exchange.beneficiary_uri]
        inboxes: list[str] = []
        remote = self.remote_party_of(exchange)
        if deliver and remote is not None:
            inboxes.append((await self.federation.cached_actor(session, remote)).inbox)
        stored = await publish(self.federation, session, actor, activity, inboxes=inboxes, now=now)
        if event in ("declare", ExchangeEvent.AMEND.value):
            exchange.proposal_activity_id = stored.activity_id
        proposed = event in ("declare", ExchangeEvent.AMEND.value)
        session.add(
            history.event(
                exchange,
                event,
                actor_uri,
                stored,
                now,
                comment=comment.strip(),
                state_after=ExchangeState.PROPOSED.value if proposed else None,
            )
        )
        await notify_exchange(session, exchange, event, actor_uri)
        await session.flush()
        return stored

    # --- the chamber's periodic work ------------------------------------------------------

    async def expire_due(self, *, limit: int = 200) -> int:
        """Expire open declarations whose delay has passed; return how many."""
        now = self.clock()
        open_states = [ExchangeState.PROPOSED.value, ExchangeState.CONTESTED.value]
        async with read_only(self.sessionmaker) as session:
            keys = list(
                (
                    await session.execute(
                        select(Exchange.key)
                        .where(
                            Exchange.state.in_(open_states),
                            Exchange.expires_at <= now,
                            # A copy of another chamber's exchange expires when its origin says.
                            Exchange.uri.startswith(self.settings.url + "/"),
                        )
                        .order_by(Exchange.expires_at)
                        .limit(limit)
                    )
                ).scalars()
            )
        expired = 0
        for key in keys:
            async with session_scope(self.sessionmaker) as session:
                exchange = await self.get(session, key, lock=True)
                if exchange.state not in open_states or exchange.expires_at > now:
                    continue  # answered meanwhile
                expired_state = next_state(
                    ExchangeState(exchange.state), ExchangeEvent.EXPIRE, Party.CHAMBER
                )
                history.move(session, exchange, expired_state, now=now, reason="expired")
                await self.record(session, exchange, ExchangeEvent.EXPIRE.value, None, now)
                expired += 1
        return expired

    async def run_demurrage(self, period: str) -> int:
        """One period of *fonte*: melt balances above the threshold into the commons fund.

        ``period`` names the period (e.g. ``2026-11-23``): a second run for the same period
        does nothing. Returns the minutes melted.
        """
        rate = self.terms.demurrage_basis_points
        if rate == 0:
            return 0
        await self.ensure_accounts(commons=True)
        now = self.clock()
        async with session_scope(self.sessionmaker) as session:
            if (
                await session.execute(
                    select(ClearingTransaction.id).where(
                        ClearingTransaction.period == f"demurrage:{period}"
                    )
                )
            ).first() is not None:
                return 0
            rows = (
                await session.execute(
                    select(ClearingAccount.key, ClearingAccount.balance).where(
                        ClearingAccount.kind == AccountKind.MEMBER.value,
                        ClearingAccount.balance > self.terms.demurrage_threshold,
                    )
                )
            ).all()
            postings = ledger.demurrage_postings(
                {key: balance for key, balance in rows},
                rate,
                self.terms.demurrage_threshold,
                COMMONS_FUND_KEY,
            )
            if not postings:
                return 0
            transaction = ledger.Transaction(postings)
            # Balances are re-read under lock by write; a race that moved one since is
            # refused by the ledger or simply melts from the fresh balance on the next period.
            await self.write(
                session,
                transaction,
                ClearingTransaction(
                    kind=TransactionKind.DEMURRAGE,
                    period=f"demurrage:{period}",
                    memo=f"fonte {rate / 100:g} % above "
                    f"{format_minutes(self.terms.demurrage_threshold)}",
                    posted_at=now,
                ),
            )
            return transaction.volume

    # --- limits ---------------------------------------------------------------------------

    async def set_limits(
        self,
        member: Member,
        *,
        floor: int | None,
        ceiling: int | None,
        by: Member | None,
        reason: str,
    ) -> AccountView:
        """An administrator's override of a member's floor and ceiling (None: the chamber
        default), written to the audit log. A balance already past a new limit stays: the
        limit only refuses postings that move further past it."""
        if not reason.strip():
            raise InvalidExchange("reason", "say why the limits change (it is logged)")
        for name, value in (("floor", floor), ("ceiling", ceiling)):
            if value is not None:
                require_minutes(value, name)
        if floor is not None and floor > 0:
            raise InvalidExchange("floor", "the floor is an overdraft limit: zero or below")
        if ceiling is not None and ceiling < 0:
            raise InvalidExchange("ceiling", "the ceiling must be zero or above")
        await self.ensure_accounts(member.id)
        async with session_scope(self.sessionmaker) as session:
            account = (
                await session.execute(
                    select(ClearingAccount)
                    .where(ClearingAccount.member_id == member.id)
                    .with_for_update()
                )
            ).scalar_one()
            before = {"floor": account.floor, "ceiling": account.ceiling}
            account.floor, account.ceiling = floor, ceiling
            await record_audit(
                session,
                by,
                AuditAction.LIMIT_CHANGE,
                member.username,
                reason.strip(),
                details={"before": before, "after": {"floor": floor, "ceiling": ceiling}},
            )
            return AccountView(account, account.balance, self.terms.limits_of(account))

    # --- reading --------------------------------------------------------------------------

    async def account_of(self, session: AsyncSession, member: Member) -> AccountView:
        account = (
            await session.execute(
                select(ClearingAccount).where(ClearingAccount.member_id == member.id)
            )
        ).scalar_one_or_none()
        if account is None:
            probe = ClearingAccount(kind=AccountKind.MEMBER.value, balance=0)
            return AccountView(None, 0, self.terms.limits_of(probe))
        return AccountView(account, account.balance, self.terms.limits_of(account))

    async def summary(self, session: AsyncSession) -> Summary:
        count, total = (
            await session.execute(
                select(
                    func.count(ClearingAccount.id),
                    func.coalesce(func.sum(ClearingAccount.balance), 0),
                )
            )
        ).one()
        posted, volume = (
            await session.execute(
                select(func.count(Exchange.id), func.coalesce(func.sum(Exchange.minutes), 0)).where(
                    Exchange.state == ExchangeState.POSTED.value
                )
            )
        ).one()
        return Summary(int(count), int(total), int(posted), int(volume))

    async def exchanges_of(
        self,
        session: AsyncSession,
        member: Member,
        *,
        state: str | None = None,
        role: Role | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[Exchange]:
        if role == Role.PROVIDER:
            where = Exchange.provider_member_id == member.id
        elif role == Role.BENEFICIARY:
            where = Exchange.beneficiary_member_id == member.id
        else:
            where = or_(
                Exchange.provider_member_id == member.id,
                Exchange.beneficiary_member_id == member.id,
            )
        query = select(Exchange).where(where).order_by(Exchange.id.desc()).limit(limit)
        if state:
            query = query.where(Exchange.state == state)
        if before is not None:
            query = query.where(Exchange.id < before)
        return list((await session.execute(query)).scalars())

    async def events_of(self, session: AsyncSession, exchange: Exchange) -> list[ClearingEvent]:
        return list(
            (
                await session.execute(
                    select(ClearingEvent)
                    .where(ClearingEvent.exchange_id == exchange.id)
                    .order_by(ClearingEvent.id)
                )
            ).scalars()
        )

    async def history_of(self, session: AsyncSession, exchange: Exchange) -> list[dict[str, Any]]:
        """Every signed activity of the exchange's life, oldest first, each as stored (its
        ``@context`` and ``proof`` untouched, so that anyone can check it): the members'
        activities and, across two chambers, the settlement's ``Offer`` and its decision
        (`activities.verify_exchange` replays them)."""
        rows = await session.execute(
            select(StoredActivity.document)
            .join(ClearingEvent, ClearingEvent.activity_pk == StoredActivity.id)
            .where(ClearingEvent.exchange_id == exchange.id)
            .order_by(ClearingEvent.id)
        )
        return [dict(document) for document in rows.scalars()]

    async def history(
        self, session: AsyncSession, account: ClearingAccount, *, limit: int = 200
    ) -> list[tuple[ClearingEntry, ClearingTransaction]]:
        rows = await session.execute(
            select(ClearingEntry, ClearingTransaction)
            .join(ClearingTransaction, ClearingTransaction.id == ClearingEntry.transaction_id)
            .where(ClearingEntry.account_id == account.id)
            .order_by(ClearingEntry.id.desc())
            .limit(limit)
        )
        return [(entry, tx) for entry, tx in rows.all()]


async def clearing_stats(session: AsyncSession, member: Member) -> ClearingStats:
    """The clearing plug-in of ``node.members.contributions``: exchanges posted, balance."""
    exchanges = (
        await session.execute(
            select(func.count(Exchange.id)).where(
                Exchange.state == ExchangeState.POSTED.value,
                or_(
                    Exchange.provider_member_id == member.id,
                    Exchange.beneficiary_member_id == member.id,
                ),
            )
        )
    ).scalar_one()
    balance = (
        await session.execute(
            select(ClearingAccount.balance).where(ClearingAccount.member_id == member.id)
        )
    ).scalar_one_or_none()
    hours = None if balance is None else (Decimal(balance) / 60).quantize(Decimal("0.01"))
    return ClearingStats(exchanges=int(exchanges), balance=hours)
