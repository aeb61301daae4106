"""Reading the clearing house: accounts, summaries, a member's exchanges and histories."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.models import StoredActivity
from node.clearing.exchanges.core import HouseCore
from node.clearing.exchanges.states import (
    ExchangeState,
    Role,
)
from node.clearing.exchanges.terms import (
    AccountView,
    Summary,
)
from node.clearing.ledger.models import (
    ClearingAccount,
    ClearingEntry,
    ClearingEvent,
    ClearingTransaction,
    Exchange,
)
from node.clearing.ledger.rules import AccountKind
from node.members.contributions import ClearingStats
from node.members.models import Member

__all__ = ["Readings", "clearing_stats"]


class Readings(HouseCore):
    """What pages, the API and the CLI read."""

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
