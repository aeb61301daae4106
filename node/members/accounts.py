"""A person's own account: registration with the charter, sign-in (throttled), password
and profile changes."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.models import LocalActor
from node.db import utcnow
from node.i18n import SUPPORTED_LANGUAGES
from node.members.charter import ensure_charter
from node.members.errors import (
    InvalidMemberInput,
    LoginRefused,
    LoginThrottled,
    MemberNotFound,
)
from node.members.models import LoginFailure, Member, MemberStatus
from node.members.passwords import MIN_PASSWORD_LENGTH, hash_password, verify_password
from node.members.service import create_member, get_member, revoke_tokens
from node.secretbox import SecretBox

__all__ = [
    "LOGIN_WINDOW",
    "MAX_FAILURES_PER_ADDRESS",
    "MAX_FAILURES_PER_USERNAME",
    "change_password",
    "check_login_allowed",
    "clear_login_failures",
    "ensure_may_sign_in",
    "login_keys",
    "record_login_failure",
    "register_member",
    "update_profile",
    "verify_login",
]

LOGIN_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_USERNAME = 5
MAX_FAILURES_PER_ADDRESS = 20
MAX_PASSWORD_LENGTH = 1024
MAX_BIO_LENGTH = 5000


@cache
def _dummy_hash() -> str:
    """Checked for unknown usernames, so that they cost the same time as wrong passwords."""
    return hash_password("not a real password, only here to spend the same time")


async def register_member(
    session: AsyncSession,
    box: SecretBox,
    *,
    chamber_username: str,
    username: str,
    password: str,
    display_name: str = "",
    accepted_charter_version: int | None,
    language: str | None = None,
    now: datetime | None = None,
) -> Member:
    """A pending member who accepted the charter in force (an older version is refused:
    the text they read is no longer the chamber's)."""
    now = now or utcnow()
    charter = await ensure_charter(session, now=now)
    if accepted_charter_version is None:
        raise InvalidMemberInput("charter", "please read and accept the chamber's charter")
    if accepted_charter_version != charter.version:
        raise InvalidMemberInput(
            "charter",
            f"the charter changed (now version {charter.version}): please read it again",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidMemberInput("password", f"at most {MAX_PASSWORD_LENGTH} characters")
    if language is not None and language not in SUPPORTED_LANGUAGES:
        raise InvalidMemberInput("language", f"one of {', '.join(SUPPORTED_LANGUAGES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidMemberInput("password", f"at least {MIN_PASSWORD_LENGTH} characters, please")
    member = await create_member(
        session,
        box,
        username=username,
        chamber_username=chamber_username,
        password=password,
        display_name=display_name,
        status=MemberStatus.PENDING,
        now=now,
    )
    member.charter_version = charter.version
    member.language = language
    await session.flush()
    return member


def login_keys(username: str, address: str | None) -> tuple[str, str | None]:
    user_key = "user:" + username.strip().lower()[:100]
    return user_key, ("addr:" + address[:100]) if address else None


async def check_login_allowed(
    session: AsyncSession, username: str, address: str | None, *, now: datetime | None = None
) -> None:
    """LoginThrottled after too many recent failures for this username or this address."""
    now = now or utcnow()
    since = now - LOGIN_WINDOW
    user_key, address_key = login_keys(username, address)
    for key, limit in (
        (user_key, MAX_FAILURES_PER_USERNAME),
        (address_key, MAX_FAILURES_PER_ADDRESS),
    ):
        if key is None:
            continue
        count, oldest = (
            await session.execute(
                select(func.count(LoginFailure.id), func.min(LoginFailure.at)).where(
                    LoginFailure.key == key, LoginFailure.at > since
                )
            )
        ).one()
        if count >= limit and oldest is not None:
            if oldest.tzinfo is None:  # SQLite aggregates lose the column type
                oldest = oldest.replace(tzinfo=now.tzinfo)
            retry_after = int((oldest + LOGIN_WINDOW - now).total_seconds()) + 1
            raise LoginThrottled(max(retry_after, 1))


async def record_login_failure(
    session: AsyncSession, username: str, address: str | None, *, now: datetime | None = None
) -> None:
    now = now or utcnow()
    for key in login_keys(username, address):
        if key is not None:
            session.add(LoginFailure(key=key, at=now))
    await session.execute(delete(LoginFailure).where(LoginFailure.at < now - LOGIN_WINDOW))


async def clear_login_failures(session: AsyncSession, username: str) -> None:
    user_key, _ = login_keys(username, None)
    await session.execute(delete(LoginFailure).where(LoginFailure.key == user_key))


async def verify_login(session: AsyncSession, username: str, password: str) -> Member | None:
    """The member if the password is right (whatever their status), else None. Unknown
    usernames cost the same time as wrong passwords."""
    try:
        member = await get_member(session, username.strip())
    except MemberNotFound:
        verify_password(_dummy_hash(), password[:MAX_PASSWORD_LENGTH])
        return None
    if not verify_password(member.password_hash, password[:MAX_PASSWORD_LENGTH]):
        return None
    return member


def ensure_may_sign_in(member: Member) -> None:
    """LoginRefused unless approved: pending, refused (with the reason) or suspended."""
    if member.status != MemberStatus.APPROVED:
        raise LoginRefused(member.status, member.status_reason)


async def change_password(session: AsyncSession, member: Member, current: str, new: str) -> None:
    """Also revokes every API token of the member (whoever knew the old password may
    have made one)."""
    if not verify_password(member.password_hash, current[:MAX_PASSWORD_LENGTH]):
        raise InvalidMemberInput("current_password", "the current password is not right")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise InvalidMemberInput(
            "new_password", f"at least {MIN_PASSWORD_LENGTH} characters, please"
        )
    if len(new) > MAX_PASSWORD_LENGTH:
        raise InvalidMemberInput("new_password", f"at most {MAX_PASSWORD_LENGTH} characters")
    member.password_hash = hash_password(new)
    await revoke_tokens(session, member)
    await session.flush()


_UNSET = object()


async def update_profile(
    session: AsyncSession,
    member: Member,
    *,
    display_name: str | None = None,
    bio: str | None = None,
    avatar_url: str | None = None,
    language: str | None | object = _UNSET,
    manually_approves_followers: bool | None = None,
) -> Member:
    """Change what is given (None: unchanged; ``language=None`` follows the browser)."""
    if display_name is not None:
        display_name = display_name.strip()
        if not 1 <= len(display_name) <= 100:
            raise InvalidMemberInput("display_name", "1 to 100 characters")
        member.display_name = display_name
    if bio is not None:
        if len(bio) > MAX_BIO_LENGTH:
            raise InvalidMemberInput("bio", f"at most {MAX_BIO_LENGTH} characters")
        member.bio = bio.replace("\r\n", "\n").strip()
    if avatar_url is not None:
        avatar_url = avatar_url.strip()
        if avatar_url:
            parts = urlsplit(avatar_url)
            if parts.scheme != "https" or not parts.hostname or len(avatar_url) > 2048:
                raise InvalidMemberInput("avatar_url", "an https:// address of an image, please")
        member.avatar_url = avatar_url or None
    if language is not _UNSET:
        if language not in (None, *SUPPORTED_LANGUAGES):
            raise InvalidMemberInput("language", f"one of {', '.join(SUPPORTED_LANGUAGES)}")
        member.language = language  # type: ignore[assignment]
    if manually_approves_followers is not None:
        actor = await session.get(LocalActor, member.actor_id)
        assert actor is not None
        actor.manually_approves_followers = manually_approves_followers
    await session.flush()
    return member
