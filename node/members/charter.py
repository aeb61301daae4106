"""The chamber's charter: its own text, edited by administrators, every version kept."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.db import utcnow
from node.members.audit import AuditAction, record_audit
from node.members.errors import InvalidMemberInput
from node.members.models import Charter, Member

__all__ = [
    "DEFAULT_CHARTER",
    "MAX_CHARTER_LENGTH",
    "current_charter",
    "edit_charter",
    "ensure_charter",
    "get_charter",
]

MAX_CHARTER_LENGTH = 50_000
DEFAULT_CHARTER = """\
Charte de la chambre des communs

1. L'adhésion est libre, gratuite et individuelle.
2. Chaque membre contribue à la banque des communs : ce qu'on y dépose est partagé sous
   licence CC BY-SA 4.0.
3. Contribuer à la banque des communs est la condition pour utiliser la chambre de
   compensation.
4. Les échanges sont transparents et se font de bonne foi.

(Les administrateurs de la chambre remplacent ce texte par la charte de la chambre.)
"""


async def current_charter(session: AsyncSession) -> Charter:
    """The version in force; before any is stored, version 1 is the default text (unsaved)."""
    stored = (
        await session.execute(select(Charter).order_by(Charter.version.desc()).limit(1))
    ).scalar_one_or_none()
    if stored is not None:
        return stored
    return Charter(version=1, text=DEFAULT_CHARTER, created_by="")


async def get_charter(session: AsyncSession, version: int) -> Charter | None:
    charter = (
        await session.execute(select(Charter).where(Charter.version == version))
    ).scalar_one_or_none()
    if charter is None and version == 1:
        return await current_charter(session) if await _none_stored(session) else None
    return charter


async def _none_stored(session: AsyncSession) -> bool:
    return (await session.execute(select(Charter.id).limit(1))).first() is None


async def ensure_charter(session: AsyncSession, *, now: datetime | None = None) -> Charter:
    """The version in force, storing the default as version 1 if none is stored yet."""
    charter = await current_charter(session)
    if charter.id is None:
        charter.created_at = now or utcnow()
        session.add(charter)
        await session.flush()
    return charter


async def edit_charter(
    session: AsyncSession,
    by: Member | None,
    text: str,
    reason: str = "",
    *,
    now: datetime | None = None,
) -> Charter:
    """A new version (authorisation is the caller's: see ``governance.require_admin``)."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise InvalidMemberInput("text", "the charter cannot be empty")
    if len(text) > MAX_CHARTER_LENGTH:
        raise InvalidMemberInput("text", f"at most {MAX_CHARTER_LENGTH} characters")
    now = now or utcnow()
    previous = await ensure_charter(session, now=now)
    charter = Charter(
        version=previous.version + 1,
        text=text,
        created_at=now,
        created_by=by.username if by is not None else "operator",
    )
    session.add(charter)
    await session.flush()
    await record_audit(
        session,
        by,
        AuditAction.CHARTER_EDIT,
        f"charter v{charter.version}",
        reason,
        details={"version": charter.version},
        now=now,
    )
    return charter
