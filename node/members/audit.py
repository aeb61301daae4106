"""The administrators' audit log: every administrative action, readable by every admin."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.db import utcnow
from node.members.models import AuditEntry, Member

__all__ = ["OPERATOR", "AuditAction", "list_audit", "record_audit"]

#: Who acted, when it was the server's command line (``archipel ...``).
OPERATOR = "operator"


class AuditAction:
    APPROVE = "member.approve"
    REFUSE = "member.refuse"
    SUSPEND = "member.suspend"
    REINSTATE = "member.reinstate"
    RESET_LINK = "member.reset_link"
    PROMOTE = "admin.promote"
    DEMOTE = "admin.demote"
    CLEARING_GRANT = "clearing.grant"
    CLEARING_REVOKE = "clearing.revoke"
    CLEARING_RULE = "clearing.rule"
    LIMIT_CHANGE = "clearing.limit"
    DOMAIN_BLOCK = "domain.block"
    DOMAIN_UNBLOCK = "domain.unblock"
    REMOTE_CONTENT_REMOVE = "remote.remove"
    CHARTER_EDIT = "charter.edit"
    PARTNER_ADD = "partner.add"
    PARTNER_CREDIT_LINE = "partner.credit_line"
    RECONCILE_MISMATCH = "partner.mismatch"
    RECONCILE_RESOLVED = "partner.reconciled"


async def record_audit(
    session: AsyncSession,
    by: Member | None,
    action: str,
    target: str = "",
    reason: str = "",
    *,
    details: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> AuditEntry:
    """Write one entry in the caller's transaction (so it exists iff the action does).
    ``by`` None means the operator on the server's command line."""
    entry = AuditEntry(
        at=now or utcnow(),
        by=by.username if by is not None else OPERATOR,
        action=action,
        target=target,
        reason=reason,
        details=details or {},
    )
    session.add(entry)
    await session.flush()
    return entry


async def list_audit(
    session: AsyncSession, *, limit: int = 100, before_id: int | None = None
) -> tuple[list[AuditEntry], int]:
    """Newest first, and the total count."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before_id is not None:
        query = query.where(AuditEntry.id < before_id)
    entries = list((await session.execute(query)).scalars())
    total = int((await session.execute(select(func.count(AuditEntry.id)))).scalar_one())
    return entries, total
