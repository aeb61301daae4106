"""The chamber's own work on its ledger: expiry of declarations, *fonte*, members' limits."""

from __future__ import annotations

from sqlalchemy import select

from node.clearing.exchanges import history
from node.clearing.exchanges.core import HouseCore
from node.clearing.exchanges.states import (
    ExchangeEvent,
    ExchangeState,
    Party,
    next_state,
)
from node.clearing.exchanges.terms import (
    AccountView,
    InvalidExchange,
)
from node.clearing.ledger import rules as ledger
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingTransaction,
    Exchange,
    TransactionKind,
)
from node.clearing.ledger.rules import AccountKind
from node.clearing.units import format_minutes, require_minutes
from node.db import read_only, session_scope
from node.members.audit import AuditAction, record_audit
from node.members.models import Member

__all__ = ["ChamberWork"]


class ChamberWork(HouseCore):
    """What the chamber does to its ledger by itself or by an administrator's hand."""

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
