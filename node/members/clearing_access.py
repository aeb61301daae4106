"""The clearing-access gate as the clearing house calls it (the rule is in ``gate``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from node.config import Settings
from node.db import utcnow
from node.members.contributions import ContributionStats
from node.members.errors import MemberError
from node.members.gate import ClearingAccess, ClearingRule, evaluate_clearing_access
from node.members.models import Member, MemberStatus

__all__ = ["ClearingAccessDenied", "clearing_access", "clearing_rule", "require_clearing_access"]


class ClearingAccessDenied(MemberError):
    """The member may not use the clearing house; ``access.reasons()`` says what is missing."""

    def __init__(self, access: ClearingAccess) -> None:
        super().__init__("no access to the clearing house yet: " + "; ".join(access.reasons()))
        self.access = access


def clearing_rule(settings: Settings) -> ClearingRule:
    return ClearingRule(
        min_bricks=settings.clearing_min_bricks, min_days=settings.clearing_min_days
    )


async def clearing_access(
    session: AsyncSession,
    settings: Settings,
    contributions: ContributionStats,
    member: Member,
    *,
    now: datetime | None = None,
) -> ClearingAccess:
    """Whether ``member`` may use the clearing house now, and what is missing if not."""
    now = now or utcnow()
    if member.status != MemberStatus.APPROVED:
        return ClearingAccess(False, (), None, "")
    bricks = await contributions.bricks(session, member)
    return evaluate_clearing_access(
        clearing_rule(settings),
        published_bricks=bricks.published,
        member_since=member.approved_at or member.created_at,
        now=now,
        override=member.clearing_override,
        override_reason=member.clearing_override_reason,
    )


async def require_clearing_access(
    session: AsyncSession,
    settings: Settings,
    contributions: ContributionStats,
    member: Member,
    *,
    now: datetime | None = None,
) -> ClearingAccess:
    """``clearing_access``, raising ``ClearingAccessDenied`` when it is closed."""
    access = await clearing_access(session, settings, contributions, member, now=now)
    if not access.allowed:
        raise ClearingAccessDenied(access)
    return access
