"""The ledger's store: the one place that writes balances and entries.

Every posting of the clearing house goes through `write`: the exchange's acceptance, *fonte*,
a settlement's commit on either chamber, a clearing round. It locks the accounts in id order
(the one order every writer uses, so two writers never wait on each other crosswise), lets the
pure rules of `node.clearing.ledger.rules` decide, and writes the entries and new balances in
the caller's transaction. Limits count the pending holds of prepared settlements
(`pending_holds`), unless the transaction was decided already (a settlement's commit, a round).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from node.clearing.ledger import rules
from node.clearing.ledger.models import ClearingAccount, ClearingEntry, ClearingTransaction
from node.clearing.partners.models import Hold, HoldState

__all__ = ["LimitsOf", "lock_accounts", "pending_holds", "write"]

LimitsOf = Callable[[ClearingAccount], rules.Limits]
"""An account's limits under the chamber's terms (`ClearingTerms.limits_of`)."""

# Built once: building and caching the expressions costs more than sending them.
_LOCK_ACCOUNTS = (
    select(ClearingAccount)
    .where(ClearingAccount.key.in_(bindparam("keys", expanding=True)))
    .order_by(ClearingAccount.id)
    .with_for_update()
)
_PENDING_HOLDS = select(Hold.account_id, Hold.amount).where(
    Hold.account_id.in_(bindparam("ids", expanding=True)), Hold.state == HoldState.PENDING
)
_ACCOUNTS = cast(Table, ClearingAccount.__table__)
_TRANSACTIONS = cast(Table, ClearingTransaction.__table__)
_INSERT_TRANSACTION = insert(_TRANSACTIONS).returning(_TRANSACTIONS.c.id)
_TRANSACTION_COLUMNS = ("kind", "exchange_id", "period", "reference", "memo", "posted_at")
_SET_BALANCE = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.id == bindparam("account_id"))
    .values(balance=bindparam("after"))
)
_INSERT_ENTRY = insert(cast(Table, ClearingEntry.__table__))


async def lock_accounts(session: AsyncSession, keys: Sequence[str]) -> dict[str, ClearingAccount]:
    """The accounts ``keys`` (those that exist), locked in id order."""
    accounts = (await session.execute(_LOCK_ACCOUNTS, {"keys": list(keys)})).scalars()
    return {a.key: a for a in accounts}


async def pending_holds(
    session: AsyncSession, accounts: Sequence[ClearingAccount]
) -> dict[str, tuple[int, int]]:
    """Each account's pending (debits, credits) reserved by prepared settlements."""
    by_id = {a.id: a.key for a in accounts}
    rows = await session.execute(_PENDING_HOLDS, {"ids": list(by_id)})
    holds: dict[str, tuple[int, int]] = {}
    for account_id, amount in rows.all():
        debits, credits = holds.get(by_id[account_id], (0, 0))
        holds[by_id[account_id]] = (
            (debits + amount, credits) if amount < 0 else (debits, credits + amount)
        )
    return holds


async def write(
    session: AsyncSession,
    transaction: rules.Transaction,
    row: ClearingTransaction,
    *,
    limits_of: LimitsOf | None = None,
    decided: bool = False,
) -> dict[str, ClearingAccount]:
    """Lock the accounts, apply ``transaction`` (or raise a `rules.LedgerError` and write
    nothing), insert ``row`` and its entries; return the accounts written, by key.

    ``decided``: the transaction was agreed already, only the accounts' existence is checked;
    otherwise ``limits_of`` gives each account's limits, holds counted."""
    by_key = await lock_accounts(session, [p.account for p in transaction])
    accounts = list(by_key.values())
    balances = {a.key: a.balance for a in accounts}
    if decided:
        missing = {p.account for p in transaction} - set(by_key)
        if missing:
            raise rules.UnknownAccount(sorted(missing)[0])
        after = rules.apply_decided(balances, transaction)
    else:
        assert limits_of is not None, "an undecided transaction is checked against limits"
        limits = {a.key: limits_of(a) for a in accounts}
        # A statement of its own, not a subquery of the lock: its snapshot (PostgreSQL, read
        # committed) is taken once the locks are held, so it sees the holds of a settlement
        # that held them first.
        holds = await pending_holds(session, accounts)
        after = rules.apply_with_holds(balances, holds, limits, transaction)
    # Three statements in Core whatever the number of postings, no flush of the session: the
    # ORM's unit of work costs more than these writes (bench.exchanges). ``row`` gets its id;
    # the account rows in the session get their new balance as committed state.
    values = {c: getattr(row, c) for c in _TRANSACTION_COLUMNS if getattr(row, c) is not None}
    row.id = (await session.execute(_INSERT_TRANSACTION, values)).scalar_one()
    await session.execute(
        _SET_BALANCE, [{"account_id": a.id, "after": after[k]} for k, a in by_key.items()]
    )
    await session.execute(
        _INSERT_ENTRY,
        [
            {
                "transaction_id": row.id,
                "account_id": by_key[p.account].id,
                "amount": p.amount,
                "balance_after": after[p.account],
                "posted_at": row.posted_at,
            }
            for p in transaction
        ],
    )
    for key, account in by_key.items():
        set_committed_value(account, "balance", after[key])
    return by_key
