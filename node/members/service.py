"""Creating members and looking them up; API tokens (named, may expire, revocable)."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.actors import create_local_actor, get_local_actor
from node.db import utcnow
from node.members.errors import (
    InvalidMemberInput,
    MemberNotFound,
    TokenNotFound,
    TokenRefused,
    UsernameTaken,
)
from node.members.models import (
    ApiToken,
    Member,
    MemberRole,
    MemberStates,
    MemberStatus,
    TokenState,
    member_subject,
)
from node.members.passwords import MIN_PASSWORD_LENGTH, hash_password_async
from node.process_store import start
from node.secretbox import SecretBox

__all__ = [
    "MAX_TOKEN_NAME_LENGTH",
    "RESERVED_USERNAMES",
    "authenticate_token",
    "check_token",
    "count_members",
    "create_member",
    "create_token",
    "get_member",
    "list_tokens",
    "revoke_token",
    "revoke_tokens",
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
MAX_TOKEN_NAME_LENGTH = 100


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
    if status not in MemberStatus.NEW:
        raise InvalidMemberInput("status", f"one of {', '.join(MemberStatus.NEW)}")
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
        role=role,
        actor_id=actor.id,
        actor=actor,
        created_at=now,
        approved_at=now if status == MemberStatus.APPROVED else None,
    )
    start(session, MemberStates, member, status, subject=member_subject(member), now=now)
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


def _check_token_name(name: str) -> str:
    name = name.strip()
    if not 1 <= len(name) <= MAX_TOKEN_NAME_LENGTH:
        raise InvalidMemberInput("name", f"1 to {MAX_TOKEN_NAME_LENGTH} characters")
    if any(not char.isprintable() for char in name):
        raise InvalidMemberInput("name", "letters, digits, spaces and punctuation only")
    return name


async def _unrevoked(session: AsyncSession, member: Member) -> dict[str, ApiToken]:
    rows = await session.execute(
        select(ApiToken).where(ApiToken.member_id == member.id, ApiToken.revoked_at.is_(None))
    )
    return {token.name: token for token in rows.scalars()}


async def create_token(
    session: AsyncSession,
    member: Member,
    name: str = "",
    *,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> str:
    """Return a new bearer token; only its digest is stored, so show it once.

    ``name`` must be free among the member's tokens not revoked (an expired one of that
    name is revoked to make room); without a name, ``token``, ``token-2``, ... is chosen.
    ``expires_at`` None: the token does not expire."""
    now = now or utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidMemberInput("expires_at", "a moment in the future, please")
    existing = await _unrevoked(session, member)
    if name.strip():
        name = _check_token_name(name)
        clash = existing.get(name)
        if clash is not None:
            if clash.state(now) != TokenState.EXPIRED:
                raise InvalidMemberInput(
                    "name", f"you already have a token named {name!r}: choose another name"
                )
            clash.revoked_at = now
            await session.flush()
    else:
        name = next(
            candidate
            for candidate in ("token", *(f"token-{n}" for n in range(2, len(existing) + 3)))
            if candidate not in existing
        )
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiToken(
            member_id=member.id,
            token_sha256=_token_digest(token),
            name=name,
            created_at=now,
            expires_at=expires_at,
        )
    )
    await session.flush()
    return token


async def list_tokens(session: AsyncSession, member: Member) -> list[ApiToken]:
    """The member's tokens, revoked ones included, oldest first."""
    rows = await session.execute(
        select(ApiToken).where(ApiToken.member_id == member.id).order_by(ApiToken.id)
    )
    return list(rows.scalars())


async def revoke_token(
    session: AsyncSession, member: Member, name: str, *, now: datetime | None = None
) -> ApiToken:
    """Revoke the member's token of that name (expired ones too); TokenNotFound if none."""
    token = (await _unrevoked(session, member)).get(name.strip())
    if token is None:
        raise TokenNotFound(f"{member.username} has no token named {name.strip()!r} to revoke")
    token.revoked_at = now or utcnow()
    await session.flush()
    return token


async def revoke_tokens(
    session: AsyncSession, member: Member, *, now: datetime | None = None
) -> int:
    """Revoke every token of the member not revoked yet; how many."""
    result = await session.execute(
        update(ApiToken)
        .where(ApiToken.member_id == member.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def check_token(session: AsyncSession, token: str, *, now: datetime | None = None) -> Member:
    """The approved member a bearer token belongs to; TokenRefused saying why not."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        raise TokenRefused(f"this is not a token of this node (they start with {TOKEN_PREFIX})")
    row = (
        await session.execute(
            select(ApiToken, Member)
            .join(Member, Member.id == ApiToken.member_id)
            .where(ApiToken.token_sha256 == _token_digest(token))
        )
    ).first()
    if row is None:
        raise TokenRefused("this token is unknown to this node")
    api_token, member = row
    now = now or utcnow()
    state = api_token.state(now)
    if state == TokenState.REVOKED:
        raise TokenRefused(
            f"this token ({api_token.name!r}) was revoked: create a new one"
            " (a password change or a suspension revokes every token)"
        )
    if state == TokenState.EXPIRED:
        raise TokenRefused(f"this token ({api_token.name!r}) has expired: create a new one")
    if member.status != MemberStatus.APPROVED:
        raise TokenRefused(f"this token's member is {member.status}, not approved")
    api_token.last_used_at = now
    member.last_active_at = now
    return member


async def authenticate_token(
    session: AsyncSession, token: str, *, now: datetime | None = None
) -> Member | None:
    """The approved member a bearer token belongs to, or None (``check_token`` says why)."""
    try:
        return await check_token(session, token, now=now)
    except TokenRefused:
        return None
