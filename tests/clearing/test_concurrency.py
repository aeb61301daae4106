"""100 validations racing for the same headroom, from several connections, on SQLite and
PostgreSQL: no limit is breached, no exchange is posted twice, the balances sum to zero."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from node.clearing.exchanges.house import ClearingHouse
from node.clearing.exchanges.states import ExchangeEvent, InvalidTransition, Role
from node.clearing.ledger.models import (
    ClearingAccount,
    ClearingEntry,
    ClearingTransaction,
    Exchange,
)
from node.clearing.ledger.rules import LimitBreach
from node.db import read_only

from .conftest import MakeMember


async def test_racing_validations_never_breach_a_limit(
    house: ClearingHouse, make_member: MakeMember
) -> None:
    buyer, _ = await make_member("buyer")  # floor -20 h: room for 40 exchanges of 30 min
    providers = [(await make_member(f"p{i}"))[0] for i in range(5)]
    exchanges = []
    for i in range(100):
        provider = providers[i % 5]
        exchange, _ = await house.declare(
            provider, buyer, role=Role.PROVIDER, minutes=30, description=f"service {i}"
        )
        exchanges.append(exchange)

    async def accept(key: str) -> str:
        try:
            await house.act(buyer, key, ExchangeEvent.ACCEPT)
            return "posted"
        except LimitBreach:
            return "breach"
        except InvalidTransition:
            return "already"

    # every exchange is validated twice at once: 200 racing transactions
    keys = [e.key for e in exchanges]
    outcomes = await asyncio.gather(*(accept(key) for key in keys + keys))
    assert outcomes.count("posted") == 40
    assert outcomes.count("posted") + outcomes.count("already") <= 100 + 40

    async with read_only(house.sessionmaker) as session:
        accounts = list((await session.execute(select(ClearingAccount))).scalars())
        posted = (
            await session.execute(select(func.count()).where(Exchange.state == "posted"))
        ).scalar_one()
        transactions = (
            await session.execute(select(func.count(ClearingTransaction.id)))
        ).scalar_one()
        replayed = dict(
            (
                await session.execute(
                    select(ClearingEntry.account_id, func.sum(ClearingEntry.amount)).group_by(
                        ClearingEntry.account_id
                    )
                )
            ).all()
        )
    assert posted == transactions == 40
    assert sum(a.balance for a in accounts) == 0
    by_member = {a.member_id: a.balance for a in accounts}
    assert by_member[buyer.id] == -1200
    assert all(a.balance >= -1200 for a in accounts)
    assert sum(by_member[p.id] for p in providers) == 1200
    for account in accounts:
        assert replayed.get(account.id, 0) == account.balance
