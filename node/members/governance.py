"""The administrators' college: registrations, suspensions, roles, clearing access by hand,
domain blocks and removal of remote content. Every action is written to the audit log in
the same transaction.

``by`` is the acting administrator, or None for the operator on the server's command line
(``archipel member approve ...``), who is trusted like an administrator.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.models import DomainBlock, Follow, StoredActivity
from node.db import utcnow
from node.members.audit import AuditAction, record_audit
from node.members.errors import (
    InvalidMemberInput,
    InvalidTransition,
    LastAdministrator,
    NotAllowed,
)
from node.members.models import (
    ClearingOverride,
    Member,
    MemberRole,
    MemberStates,
    MemberStatus,
    member_subject,
)
from node.members.notifications import NotificationType, notify
from node.members.service import revoke_tokens
from node.process_store import move

__all__ = [
    "MAX_REASON_LENGTH",
    "MEMBER_ACTIONS",
    "MemberAction",
    "approve_member",
    "block_domain",
    "count_admins",
    "demote_admin",
    "normalize_host",
    "promote_admin",
    "refuse_member",
    "reinstate_member",
    "remove_remote_content",
    "require_admin",
    "set_clearing_access",
    "suspend_member",
    "unblock_domain",
]

MAX_REASON_LENGTH = 2000


def require_admin(by: Member | None) -> None:
    """NotAllowed unless ``by`` is an approved administrator (None: the operator)."""
    if by is not None and (by.role != MemberRole.ADMIN or by.status != MemberStatus.APPROVED):
        raise NotAllowed("only an administrator of this chamber can do this")


def _reason(reason: str, *, required: bool) -> str:
    reason = reason.strip()
    if required and not reason:
        raise InvalidMemberInput("reason", "give a reason: it is logged and shown where it applies")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidMemberInput("reason", f"at most {MAX_REASON_LENGTH} characters")
    return reason


async def count_admins(session: AsyncSession) -> int:
    return int(
        (
            await session.execute(
                select(func.count(Member.id)).where(
                    Member.role == MemberRole.ADMIN, Member.status == MemberStatus.APPROVED
                )
            )
        ).scalar_one()
    )


async def _not_the_last_admin(session: AsyncSession, member: Member, action: str) -> None:
    if member.is_admin and member.status == MemberStatus.APPROVED:
        if await count_admins(session) <= 1:
            raise LastAdministrator(
                f"cannot {action} {member.username}: the chamber would have no administrator"
                " left (promote another member first)"
            )


def _expect(member: Member, action: str, *states: str) -> None:
    if member.status not in states:
        raise InvalidTransition(
            f"cannot {action} {member.username}, who is {member.status}"
            f" (only {' or '.join(states)} members)"
        )


def _move(
    session: AsyncSession, by: Member | None, member: Member, to: str, reason: str, now: datetime
) -> None:
    """Change the member's standing through its graph (``_expect`` has checked it first)."""
    who = by.username if by is not None else "operator"
    move(
        session,
        MemberStates,
        member,
        to,
        subject=member_subject(member),
        now=now,
        by=who,
        reason=reason,
    )


async def approve_member(
    session: AsyncSession,
    by: Member | None,
    member: Member,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> Member:
    require_admin(by)
    _expect(member, "approve", MemberStatus.PENDING, MemberStatus.REFUSED)
    now = now or utcnow()
    _move(session, by, member, MemberStatus.APPROVED, reason, now)
    member.status_reason = ""
    member.approved_at = now
    await record_audit(
        session, by, AuditAction.APPROVE, member.username, _reason(reason, required=False), now=now
    )
    await notify(session, member.id, NotificationType.REGISTRATION_APPROVED, "/account", now=now)
    return member


async def refuse_member(
    session: AsyncSession,
    by: Member | None,
    member: Member,
    reason: str,
    *,
    now: datetime | None = None,
) -> Member:
    """The reason is shown to the applicant when they try to sign in."""
    require_admin(by)
    reason = _reason(reason, required=True)
    _expect(member, "refuse", MemberStatus.PENDING)
    now = now or utcnow()
    _move(session, by, member, MemberStatus.REFUSED, reason, now)
    member.status_reason = reason
    await record_audit(session, by, AuditAction.REFUSE, member.username, reason, now=now)
    await notify(
        session, member.id, NotificationType.REGISTRATION_REFUSED, "/", {"reason": reason}, now=now
    )
    return member


async def suspend_member(
    session: AsyncSession,
    by: Member | None,
    member: Member,
    reason: str,
    *,
    now: datetime | None = None,
) -> Member:
    """Also revokes the member's API tokens: reinstating does not revive them."""
    require_admin(by)
    reason = _reason(reason, required=True)
    _expect(member, "suspend", MemberStatus.APPROVED)
    await _not_the_last_admin(session, member, "suspend")
    now = now or utcnow()
    _move(session, by, member, MemberStatus.SUSPENDED, reason, now)
    member.status_reason = reason
    revoked = await revoke_tokens(session, member, now=now)
    await record_audit(
        session,
        by,
        AuditAction.SUSPEND,
        member.username,
        reason,
        details={"tokens_revoked": revoked},
        now=now,
    )
    return member


async def reinstate_member(
    session: AsyncSession,
    by: Member | None,
    member: Member,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> Member:
    require_admin(by)
    _expect(member, "reinstate", MemberStatus.SUSPENDED)
    now = now or utcnow()
    _move(session, by, member, MemberStatus.APPROVED, reason, now)
    member.status_reason = ""
    await record_audit(
        session,
        by,
        AuditAction.REINSTATE,
        member.username,
        _reason(reason, required=False),
        now=now,
    )
    return member


async def promote_admin(
    session: AsyncSession,
    by: Member | None,
    member: Member,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> Member:
    require_admin(by)
    _expect(member, "promote", MemberStatus.APPROVED)
    if member.is_admin:
        raise InvalidTransition(f"{member.username} is already an administrator")
    member.role = MemberRole.ADMIN
    await record_audit(
        session, by, AuditAction.PROMOTE, member.username, _reason(reason, required=False), now=now
    )
    return member


async def demote_admin(
    session: AsyncSession,
    by: Member | None,
    member: Member,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> Member:
    """Never leaves the chamber without an approved administrator."""
    require_admin(by)
    if not member.is_admin:
        raise InvalidTransition(f"{member.username} is not an administrator")
    await _not_the_last_admin(session, member, "demote")
    member.role = MemberRole.MEMBER
    await record_audit(
        session, by, AuditAction.DEMOTE, member.username, _reason(reason, required=False), now=now
    )
    return member


async def set_clearing_access(
    session: AsyncSession,
    by: Member | None,
    member: Member,
    decision: str | None,
    reason: str,
    *,
    now: datetime | None = None,
) -> Member:
    """``granted`` or ``revoked`` by hand (a reason is required), or None: back to the rule."""
    require_admin(by)
    if decision not in (*ClearingOverride.ALL, None):
        raise InvalidMemberInput("decision", "granted, revoked or none (the chamber's rule)")
    reason = _reason(reason, required=True)
    if decision == ClearingOverride.GRANTED and member.clearing_override != decision:
        await notify(session, member.id, NotificationType.CLEARING_OPENED, "/account", now=now)
    member.clearing_override = decision
    member.clearing_override_reason = reason if decision is not None else ""
    action = (
        AuditAction.CLEARING_REVOKE
        if decision == ClearingOverride.REVOKED
        else AuditAction.CLEARING_GRANT
    )
    await record_audit(
        session,
        by,
        action,
        member.username,
        reason,
        details={"decision": decision or "rule"},
        now=now,
    )
    return member


def normalize_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if not host or "/" in host or " " in host or "@" in host or len(host) > 255:
        raise InvalidMemberInput(
            "host", "give a host name such as spam.example (no scheme or path)"
        )
    return host


async def block_domain(
    session: AsyncSession,
    by: Member | None,
    host: str,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> DomainBlock:
    """The federation's block list: nothing in, nothing out."""
    require_admin(by)
    host = normalize_host(host)
    reason = _reason(reason, required=False)
    block = await session.get(DomainBlock, host)
    if block is None:
        block = DomainBlock(host=host, reason=reason, created_at=now or utcnow())
        session.add(block)
    else:
        block.reason = reason
    await record_audit(session, by, AuditAction.DOMAIN_BLOCK, host, reason, now=now)
    return block


async def unblock_domain(
    session: AsyncSession,
    by: Member | None,
    host: str,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> bool:
    require_admin(by)
    host = normalize_host(host)
    result = await session.execute(delete(DomainBlock).where(DomainBlock.host == host))
    await record_audit(
        session, by, AuditAction.DOMAIN_UNBLOCK, host, _reason(reason, required=False), now=now
    )
    return bool(getattr(result, "rowcount", 0))


async def remove_remote_content(
    session: AsyncSession,
    by: Member | None,
    actor_uri: str,
    reason: str,
    *,
    now: datetime | None = None,
) -> int:
    """Forget everything a remote actor sent us (their activities in the timeline) and
    their follows; returns how many activities went."""
    require_admin(by)
    reason = _reason(reason, required=True)
    actor_uri = actor_uri.strip()
    if not actor_uri.startswith(("https://", "http://")):
        raise InvalidMemberInput("actor", "the remote actor's URL (https://...)")
    result = await session.execute(
        delete(StoredActivity).where(
            StoredActivity.actor_uri == actor_uri, StoredActivity.direction == "in"
        )
    )
    removed = int(getattr(result, "rowcount", 0) or 0)
    await session.execute(
        delete(Follow).where(
            (Follow.follower_uri == actor_uri) | (Follow.followee_uri == actor_uri)
        )
    )
    await record_audit(
        session,
        by,
        AuditAction.REMOTE_CONTENT_REMOVE,
        actor_uri,
        reason,
        details={"activities": removed},
        now=now,
    )
    return removed


MemberAction = Callable[[AsyncSession, "Member | None", Member, str], Awaitable[Member]]


async def _grant(session: AsyncSession, by: Member | None, member: Member, reason: str) -> Member:
    return await set_clearing_access(session, by, member, ClearingOverride.GRANTED, reason)


async def _revoke(session: AsyncSession, by: Member | None, member: Member, reason: str) -> Member:
    return await set_clearing_access(session, by, member, ClearingOverride.REVOKED, reason)


async def _by_rule(session: AsyncSession, by: Member | None, member: Member, reason: str) -> Member:
    return await set_clearing_access(session, by, member, None, reason)


#: What an administrator can do to a member, by name (pages, JSON API and CLI share it).
MEMBER_ACTIONS: dict[str, MemberAction] = {
    "approve": approve_member,
    "refuse": refuse_member,
    "suspend": suspend_member,
    "reinstate": reinstate_member,
    "promote": promote_admin,
    "demote": demote_admin,
    "grant-clearing": _grant,
    "revoke-clearing": _revoke,
    "clearing-by-rule": _by_rule,
}
