"""What the clearing house's public pages read: the posted ledger, balances, signed activities.

Read-only queries, each in the caller's session (the pages open one ``read_only`` session).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.models import StoredActivity
from node.clearing.exchanges.states import ExchangeState
from node.clearing.ledger.models import ClearingAccount, ClearingEvent, Exchange
from node.members.models import Member

__all__ = [
    "account_rows",
    "member_usernames",
    "posted_exchanges",
    "signed_activities",
    "stream_posted_exchanges",
]


async def member_usernames(session: AsyncSession, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = await session.execute(select(Member.id, Member.username).where(Member.id.in_(ids)))
    return {member_id: username for member_id, username in rows.all()}


async def posted_exchanges(
    session: AsyncSession, *, limit: int, before: int | None = None
) -> list[Exchange]:
    """The newest posted exchanges first, older than the ``before`` cursor (an id)."""
    query = (
        select(Exchange)
        .where(Exchange.state == ExchangeState.POSTED.value)
        .order_by(Exchange.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(Exchange.id < before)
    return list((await session.execute(query)).scalars())


async def stream_posted_exchanges(session: AsyncSession) -> AsyncIterator[Exchange]:
    """Every posted exchange, oldest first, streamed (the ledger's CSV)."""
    rows = await session.stream_scalars(
        select(Exchange).where(Exchange.state == ExchangeState.POSTED.value).order_by(Exchange.id)
    )
    async for exchange in rows:
        yield exchange


async def account_rows(session: AsyncSession) -> list[tuple[str, int, str | None]]:
    """(the account's key, its balance, its member's username or None) of every account."""
    rows = await session.execute(
        select(ClearingAccount.key, ClearingAccount.balance, Member.username)
        .outerjoin(Member, Member.id == ClearingAccount.member_id)
        .order_by(ClearingAccount.id)
    )
    return [(key, balance, username) for key, balance, username in rows.all()]


async def signed_activities(
    session: AsyncSession, *, limit: int, before: int | None = None
) -> tuple[int, list[tuple[int, dict[str, Any]]]]:
    """How many clearing events there are, and the newest page of their signed activities
    as (event id: the cursor, document)."""
    total = (await session.execute(select(func.count(ClearingEvent.id)))).scalar_one()
    query = (
        select(ClearingEvent.id, StoredActivity.document)
        .join(StoredActivity, StoredActivity.id == ClearingEvent.activity_pk)
        .order_by(ClearingEvent.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(ClearingEvent.id < before)
    rows = (await session.execute(query)).all()
    return int(total), [(pk, document) for pk, document in rows]
