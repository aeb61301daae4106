"""Creating members and looking them up; API tokens."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.actors import create_local_actor, get_local_actor
from node.db import utcnow
from node.members.errors import InvalidMemberInput, MemberNotFound, UsernameTaken
from node.members.models import ApiToken, Member, MemberRole, MemberStatus
from node.members.passwords import MIN_PASSWORD_LENGTH, hash_password_async
from node.secretbox import SecretBox

__all__ = [
    "RESERVED_USERNAMES",
    "authenticate_token",
    "count_members",
    "create_member",
    "create_token",
    "get_member",
    "validate_username",
]

USERNAME_RE = re.compile(r"^[a-z0-9_]{1,30}$")
RESERVED_USERNAMES = frozenset(
    {
        "admin",
        "administrator",
        "root",
        "api",
        "inbox",
        "outbox",
        "actors",
        "static",
        "system",
        "www",
        "nodeinfo",
        "webfinger",
        "well_known",
        "chamber",
        "instance",
        "relay",
    }
)
TOKEN_PREFIX = "arch_"


def validate_username(username: str, *, chamber_username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise InvalidMemberInput(
            "username", "use 1 to 30 lowercase letters, digits or underscores (e.g. marie_d)"
        )
    if name in RESERVED_USERNAMES or name == chamber_username:
        raise InvalidMemberInput("username", f"{name!r} is reserved; choose another")
    return name


async def create_member(
    session: AsyncSession,
    box: SecretBox,
    *,
    username: str,
    chamber_username: str,
    password: str | None = None,
    password_hash: str | None = None,
    display_name: str = "",
    status: str = MemberStatus.PENDING,
    role: str = MemberRole.MEMBER,
    now: datetime | None = None,
) -> Member:
    """A member and their ``Person`` actor (with its keys), in the caller's transaction.
    ``password_hash`` instead of ``password``: hashed by the caller before its transaction."""
    name = validate_username(username, chamber_username=chamber_username)
    if status not in MemberStatus.ALL:
        raise InvalidMemberInput("status", f"one of {', '.join(MemberStatus.ALL)}")
    if role not in MemberRole.ALL:
        raise InvalidMemberInput("role", f"one of {', '.join(MemberRole.ALL)}")
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidMemberInput("password", f"at least {MIN_PASSWORD_LENGTH} characters, please")
    if len(display_name) > 100:
        raise InvalidMemberInput("display_name", "at most 100 characters")
    hashed = password_hash or (await hash_password_async(password) if password else None)
    if await get_local_actor(session, name) is not None:
        raise UsernameTaken(f"the username {name!r} is already taken")
    now = now or utcnow()
    actor = await create_local_actor(session, box, username=name, actor_type="Person")
    member = Member(
        username=name,
        display_name=display_name.strip() or name,
        password_hash=hashed,
        status=status,
        role=role,
        actor_id=actor.id,
        actor=actor,
        created_at=now,
        approved_at=now if status == MemberStatus.APPROVED else None,
    )
    session.add(member)
    await session.flush()
    return member


async def get_member(session: AsyncSession, username: str) -> Member:
    member = (
        await session.execute(select(Member).where(Member.username == username.lower()))
    ).scalar_one_or_none()
    if member is None:
        raise MemberNotFound(f"no member named {username!r}")
    return member


async def count_members(session: AsyncSession, *, active_since: datetime | None = None) -> int:
    query = select(func.count(Member.id)).where(Member.status == MemberStatus.APPROVED)
    if active_since is not None:
        query = query.where(Member.last_active_at >= active_since)
    return int((await session.execute(query)).scalar_one())


def _token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def create_token(session: AsyncSession, member: Member, label: str = "") -> str:
    """Return a new bearer token; only its digest is stored, so show it once."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(member_id=member.id, token_sha256=_token_digest(token), label=label))
    await session.flush()
    return token


async def authenticate_token(
    session: AsyncSession, token: str, *, now: datetime | None = None
) -> Member | None:
    """The approved member a bearer token belongs to, or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (
        await session.execute(
            select(ApiToken, Member)
            .join(Member, Member.id == ApiToken.member_id)
            .where(ApiToken.token_sha256 == _token_digest(token))
        )
    ).first()
    if row is None:
        return None
    api_token, member = row
    if member.status != MemberStatus.APPROVED:
        return None
    now = now or utcnow()
    api_token.last_used_at = now
    member.last_active_at = now
    return member
