"""The clearing house's core: parties, accounts, an exchange's row and its signed record.

`HouseCore` is what the other faces of the house build on (`ChamberWork`, `Readings`,
`ClearingHouse`) and what the settlement between chambers uses: `get` (locked or not),
`role_of`, `record` (sign, store and deliver an exchange's activity with its event) and
`write` (the ledger write under this chamber's limits).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
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
    Role,
)
from node.clearing.exchanges.terms import (
    ChamberUnreachable,
    ClearingTerms,
    CrossChamberUnavailable,
    ExchangeNotFound,
    InvalidExchange,
    NoPartnership,
    NotAParty,
    RemoteParty,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger import store
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingTransaction,
    Exchange,
    member_account_key,
)
from node.clearing.ledger.rules import AccountKind
from node.clearing.partners.service import partner_for_actor
from node.config import Settings
from node.db import read_only, session_scope
from node.members.models import Member, MemberStatus

__all__ = ["HouseCore"]

_EXCHANGE_BY_KEY = select(Exchange).where(Exchange.key == bindparam("key"))
_EXCHANGE_FOR_UPDATE = _EXCHANGE_BY_KEY.with_for_update()


class HouseCore:
    """Parties, accounts, and an exchange's record; `ClearingHouse` builds it."""

    federation: Federation
    settings: Settings
    sessionmaker: async_sessionmaker[AsyncSession]
    terms: ClearingTerms
    clock: Callable[[], datetime]
    _signers: dict[int | None, LocalActor]
    """The local actors who sign, by member actor id (None: the chamber): `_signer_of`."""

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

    def is_cross_chamber(self, exchange: Exchange) -> bool:
        return exchange.provider_member_id is None or exchange.beneficiary_member_id is None

    def remote_party_of(self, exchange: Exchange) -> str | None:
        """The actor URI of the party on another chamber, if any."""
        if exchange.provider_member_id is None:
            return exchange.provider_uri
        if exchange.beneficiary_member_id is None:
            return exchange.beneficiary_uri
        return None

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
