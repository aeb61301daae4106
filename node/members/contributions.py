"""What other domains report about a member: bricks and ratings (the commons bank),
exchanges and balance (the clearing house).

The members domain does not import them. Each registers an async source on the app's
``ContributionStats`` when the app is built::

    async def brick_stats(session: AsyncSession, member: Member) -> BrickStats:
        return BrickStats(published=..., rating_average=4.5, rating_count=12)

    contributions.register_bricks(brick_stats)

With nothing registered a member has zero bricks, no rating and no exchange.

The other way, a domain tells what changed: the commons bank calls ``bricks_published``
with the local members a new brick (or a new co-authorship) counts for, in the
transaction that stores it; listeners registered with ``on_bricks_published`` (the
clearing-access notice, ``node.members.clearing_access.clearing_opener``) act in it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from node.members.models import Member

__all__ = [
    "BrickLink",
    "BrickStats",
    "BrickStatsSource",
    "BricksPublished",
    "ClearingStats",
    "ClearingStatsSource",
    "ContributionStats",
    "MemberContributions",
]


@dataclass(frozen=True)
class BrickLink:
    title: str
    url: str


@dataclass(frozen=True)
class BrickStats:
    """Published bricks, the latest few to show on the profile, and ratings received."""

    published: int = 0
    recent: tuple[BrickLink, ...] = ()
    rating_average: float | None = None
    rating_count: int = 0


@dataclass(frozen=True)
class ClearingStats:
    exchanges: int = 0
    balance: Decimal | None = None


@dataclass(frozen=True)
class MemberContributions:
    bricks: BrickStats
    clearing: ClearingStats


BrickStatsSource = Callable[[AsyncSession, Member], Awaitable[BrickStats]]
ClearingStatsSource = Callable[[AsyncSession, Member], Awaitable[ClearingStats]]
#: Called with the ids of the local members a brick now counts for (same transaction).
BricksPublished = Callable[[AsyncSession, Sequence[int]], Awaitable[None]]


async def _no_bricks(session: AsyncSession, member: Member) -> BrickStats:
    return BrickStats()


async def _no_clearing(session: AsyncSession, member: Member) -> ClearingStats:
    return ClearingStats()


class ContributionStats:
    """The registry: one source for bricks, one for the clearing house (last one wins)."""

    def __init__(self) -> None:
        self._bricks: BrickStatsSource = _no_bricks
        self._clearing: ClearingStatsSource = _no_clearing
        self._published: list[BricksPublished] = []

    def register_bricks(self, source: BrickStatsSource) -> None:
        self._bricks = source

    def register_clearing(self, source: ClearingStatsSource) -> None:
        self._clearing = source

    def on_bricks_published(self, listener: BricksPublished) -> None:
        self._published.append(listener)

    async def bricks_published(self, session: AsyncSession, member_ids: Sequence[int]) -> None:
        """Tell the listeners that bricks now count for ``member_ids``."""
        for listener in self._published:
            await listener(session, member_ids)

    async def bricks(self, session: AsyncSession, member: Member) -> BrickStats:
        return await self._bricks(session, member)

    async def clearing(self, session: AsyncSession, member: Member) -> ClearingStats:
        return await self._clearing(session, member)

    async def of(self, session: AsyncSession, member: Member) -> MemberContributions:
        return MemberContributions(
            await self.bricks(session, member), await self.clearing(session, member)
        )
