"""What the home page shows besides the chamber's identity: the latest bricks, the partner
chambers and a few figures (members, bricks, exchanges, hours exchanged)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from node.bricks.catalogue import CatalogueQuery, search_bricks
from node.bricks.models import Brick
from node.clearing.partners.models import Partner
from node.db import read_only
from node.members.clearing_access import clearing_rule
from node.members.gate import ClearingRule
from node.members.models import Member, MemberStatus
from node.web.context import NodeContext

__all__ = ["HomeView", "home_view"]

LATEST_BRICKS = 5


@dataclass(frozen=True)
class HomeView:
    latest: list[Brick]
    partners: list[Partner]
    members: int
    bricks: int
    exchanges: int
    volume_minutes: int
    rule: ClearingRule


async def home_view(node: NodeContext) -> HomeView:
    async with read_only(node.sessionmaker) as session:
        latest = await search_bricks(session, CatalogueQuery(scope="local", limit=LATEST_BRICKS))
        partners = list((await session.execute(select(Partner).order_by(Partner.name))).scalars())
        members = (
            await session.execute(
                select(func.count(Member.id)).where(Member.status == MemberStatus.APPROVED)
            )
        ).scalar_one()
        bricks = (
            await session.execute(select(func.count(Brick.id)).where(Brick.local.is_(True)))
        ).scalar_one()
        summary = await node.services.clearing.summary(session)
        rule = await clearing_rule(session, node.settings)
    return HomeView(
        latest=list(latest.items),
        partners=partners,
        members=int(members),
        bricks=int(bricks),
        exchanges=summary.exchanges_posted,
        volume_minutes=summary.volume_minutes,
        rule=rule,
    )
