"""The clearing-access gate as the clearing house calls it (the rule is in ``gate``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.config import Settings
from node.db import utcnow
from node.members.audit import AuditAction, record_audit
from node.members.contributions import BricksPublished, ContributionStats
from node.members.errors import InvalidMemberInput, MemberError
from node.members.gate import ClearingAccess, ClearingRule, evaluate_clearing_access
from node.members.governance import require_admin
from node.members.models import ClearingRuleRecord, Member, MemberStatus, Notification
from node.members.notifications import NotificationType, notify

__all__ = [
    "ClearingAccessDenied",
    "clearing_access",
    "clearing_opener",
    "clearing_rule",
    "require_clearing_access",
    "set_clearing_rule",
]


class ClearingAccessDenied(MemberError):
    """The member may not use the clearing house; ``access.reasons()`` says what is missing."""

    def __init__(self, access: ClearingAccess) -> None:
        super().__init__("no access to the clearing house yet: " + "; ".join(access.reasons()))
        self.access = access


async def clearing_rule(session: AsyncSession, settings: Settings) -> ClearingRule:
    """The rule an administrator set last from /admin, else the chamber's settings."""
    record = (
        await session.execute(
            select(ClearingRuleRecord).order_by(ClearingRuleRecord.id.desc()).limit(1)
        )
    ).scalar_one_or_none()
    if record is not None:
        return ClearingRule(min_bricks=record.min_bricks, min_days=record.min_days)
    return ClearingRule(
        min_bricks=settings.clearing_min_bricks, min_days=settings.clearing_min_days
    )


async def set_clearing_rule(
    session: AsyncSession,
    settings: Settings,
    by: Member | None,
    min_bricks: object,
    min_days: object,
    *,
    now: datetime | None = None,
) -> ClearingRule:
    """An administrator sets the rule (stored, written in the audit log)."""
    require_admin(by)
    values: dict[str, int] = {}
    for name, value, most in (("min_bricks", min_bricks, 1000), ("min_days", min_days, 3650)):
        text = str(value).strip() if value is not None else ""
        if not text.isdigit() or not 0 <= int(text) <= most:
            raise InvalidMemberInput(name, f"a whole number from 0 to {most}")
        values[name] = int(text)
    before = await clearing_rule(session, settings)
    now = now or utcnow()
    session.add(
        ClearingRuleRecord(
            min_bricks=values["min_bricks"],
            min_days=values["min_days"],
            set_at=now,
            set_by=by.username if by is not None else "",
        )
    )
    await record_audit(
        session,
        by,
        AuditAction.CLEARING_RULE,
        "",
        "",
        details={
            "min_bricks": values["min_bricks"],
            "min_days": values["min_days"],
            "before": {"min_bricks": before.min_bricks, "min_days": before.min_days},
        },
        now=now,
    )
    return ClearingRule(**values)


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
        await clearing_rule(session, settings),
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


def clearing_opener(settings: Settings, contributions: ContributionStats) -> BricksPublished:
    """The listener that tells members their access opened when a brick makes them meet
    the chamber's rule: ``clearing.opened``, once per member (none when they had one, from
    an administrator's grant or before)."""

    async def opened(session: AsyncSession, member_ids: Sequence[int]) -> None:
        for member_id in sorted(set(member_ids)):
            member = await session.get(Member, member_id)
            if member is None:
                continue
            access = await clearing_access(session, settings, contributions, member)
            if not access.allowed or await _told(session, member_id):
                continue
            await notify(session, member_id, NotificationType.CLEARING_OPENED, "/account")

    return opened


async def _told(session: AsyncSession, member_id: int) -> bool:
    found = await session.execute(
        select(Notification.id)
        .where(
            Notification.member_id == member_id,
            Notification.type == NotificationType.CLEARING_OPENED,
        )
        .limit(1)
    )
    return found.first() is not None
