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

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.clearing.ledger import rules
from node.clearing.ledger.models import ClearingAccount, ClearingEntry, ClearingTransaction
from node.clearing.partners.models import Hold, HoldState

__all__ = ["LimitsOf", "lock_accounts", "pending_holds", "write"]

LimitsOf = Callable[[ClearingAccount], rules.Limits]
"""An account's limits under the chamber's terms (`ClearingTerms.limits_of`)."""


async def lock_accounts(session: AsyncSession, keys: Sequence[str]) -> dict[str, ClearingAccount]:
    """The accounts ``keys`` (those that exist), locked in id order."""
    accounts = (
        await session.execute(
            select(ClearingAccount)
            .where(ClearingAccount.key.in_(list(keys)))
            .order_by(ClearingAccount.id)
            .with_for_update()
        )
    ).scalars()
    return {a.key: a for a in accounts}


async def pending_holds(
    session: AsyncSession, accounts: Sequence[ClearingAccount]
) -> dict[str, tuple[int, int]]:
    """Each account's pending (debits, credits) reserved by prepared settlements."""
    by_id = {a.id: a.key for a in accounts}
    rows = await session.execute(
        select(Hold.account_id, Hold.amount).where(
            Hold.account_id.in_(list(by_id)), Hold.state == HoldState.PENDING
        )
    )
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
    nothing), add ``row`` and its entries; return the accounts written, by key.

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
        holds = await pending_holds(session, accounts)
        after = rules.apply_with_holds(balances, holds, limits, transaction)
    session.add(row)
    await session.flush()
    for posting in transaction:
        account = by_key[posting.account]
        account.balance = after[posting.account]
        session.add(
            ClearingEntry(
                transaction_id=row.id,
                account_id=account.id,
                amount=posting.amount,
                balance_after=account.balance,
                posted_at=row.posted_at,
            )
        )
    await session.flush()
    return by_key
