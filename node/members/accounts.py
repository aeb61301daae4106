"""A person's own account: registration with the charter, sign-in (throttled by the rules of
``node.members.throttle``), password and profile changes."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.models import LocalActor
from node.db import insert_for, read_only, session_scope, utcnow
from node.i18n import SUPPORTED_LANGUAGES
from node.members import throttle
from node.members.charter import ensure_charter
from node.members.errors import (
    InvalidMemberInput,
    LoginRefused,
    LoginThrottled,
    MemberNotFound,
)
from node.members.models import LoginThrottle, Member, MemberStatus
from node.members.passwords import (
    MIN_PASSWORD_LENGTH,
    hash_password_async,
    verify_password_async,
)
from node.members.service import create_member, get_member, revoke_tokens, validate_username
from node.members.throttle import Rule
from node.secretbox import SecretBox

__all__ = [
    "STALE_COUNTERS_PER_ATTEMPT",
    "attempt_sign_in",
    "change_password",
    "ensure_may_sign_in",
    "find_member",
    "login_keys",
    "password_matches",
    "register_member",
    "release_login_attempt",
    "reserve_login_attempt",
    "update_profile",
    "verify_login",
]

MAX_PASSWORD_LENGTH = 1024
MAX_BIO_LENGTH = 5000
#: Expired counters removed by each attempt (a bounded clean-up, no background task).
STALE_COUNTERS_PER_ATTEMPT = 20


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
    if accepted_charter_version is None:
        raise InvalidMemberInput("charter", "please read and accept the chamber's charter")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidMemberInput("password", f"at most {MAX_PASSWORD_LENGTH} characters")
    if language is not None and language not in SUPPORTED_LANGUAGES:
        raise InvalidMemberInput("language", f"one of {', '.join(SUPPORTED_LANGUAGES)}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidMemberInput("password", f"at least {MIN_PASSWORD_LENGTH} characters, please")
    validate_username(username, chamber_username=chamber_username)
    password_hash = await hash_password_async(password)  # before the transaction begins
    charter = await ensure_charter(session, now=now)
    if accepted_charter_version != charter.version:
        raise InvalidMemberInput(
            "charter",
            f"the charter changed (now version {charter.version}): please read it again",
        )
    member = await create_member(
        session,
        box,
        username=username,
        chamber_username=chamber_username,
        password_hash=password_hash,
        display_name=display_name,
        status=MemberStatus.PENDING,
        now=now,
    )
    member.charter_version = charter.version
    member.language = language
    await session.flush()
    return member


def login_keys(username: str, address: str | None) -> dict[str, Rule]:
    """The counters an attempt goes under, by key (sorted: rows are locked in that order)."""
    user = username.strip().lower()[:100]
    where = (address or "unknown")[:100]
    keys = {
        f"addr:{where}": throttle.ADDRESS,
        f"pair:{user}|{where}": throttle.PAIR,
        f"user:{user}": throttle.ACCOUNT,
    }
    return dict(sorted(keys.items()))


async def reserve_login_attempt(
    session: AsyncSession, username: str, address: str | None, *, now: datetime | None = None
) -> None:
    """Count this attempt under its keys before the password is checked, or LoginThrottled
    (nothing counted). The rows are locked (``FOR UPDATE``; SQLite writes one at a time), so
    concurrent attempts are decided one after the other. Commit before checking the password."""
    now = now or utcnow()
    rules = login_keys(username, address)
    await session.execute(
        insert_for(session, LoginThrottle)
        .values([{"key": key, "count": 0, "window_start": now} for key in rules])
        .on_conflict_do_nothing(index_elements=[LoginThrottle.key])
    )
    rows = (
        (
            await session.execute(
                select(LoginThrottle)
                .where(LoginThrottle.key.in_(rules))
                .order_by(LoginThrottle.key)
                .with_for_update()
                .execution_options(populate_existing=True)
            )
        )
        .scalars()
        .all()
    )
    counters = {
        row.key: throttle.Counter(row.count, row.window_start, row.not_before) for row in rows
    }
    waits = [
        wait
        for key, rule in rules.items()
        if (wait := throttle.refusal(counters[key], rule, now)) is not None
    ]
    if waits:
        raise LoginThrottled(throttle.retry_after_seconds(max(waits)))
    for row in rows:
        after = throttle.counted(counters[row.key], rules[row.key], now)
        row.count, row.window_start, row.not_before = (
            after.count,
            after.window_start,
            after.not_before,
        )
    await session.flush()
    await _forget_stale_counters(session, now, keep=list(rules))


async def _forget_stale_counters(session: AsyncSession, now: datetime, *, keep: list[str]) -> None:
    """Remove a few counters whose window and delay are over (skipping rows that concurrent
    attempts hold), so that the table holds about one window of keys."""
    stale = (
        select(LoginThrottle.key)
        .where(
            LoginThrottle.window_start < now - throttle.WINDOW,
            or_(LoginThrottle.not_before.is_(None), LoginThrottle.not_before < now),
            LoginThrottle.key.not_in(keep),
        )
        .limit(STALE_COUNTERS_PER_ATTEMPT)
        .with_for_update(skip_locked=True)
    )
    await session.execute(
        delete(LoginThrottle)
        .where(LoginThrottle.key.in_(stale.scalar_subquery()))
        .execution_options(synchronize_session=False)
    )


async def release_login_attempt(session: AsyncSession, username: str, address: str | None) -> None:
    """The password was right: the pair starts again, the address and the account get this
    attempt back (a pending delay still holds)."""
    for key, rule in login_keys(username, address).items():
        if rule is throttle.PAIR:
            await session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))
        else:
            await session.execute(
                update(LoginThrottle)
                .where(LoginThrottle.key == key, LoginThrottle.count > 0)
                .values(count=LoginThrottle.count - 1)
            )


_dummy: dict[str, str] = {}


async def _dummy_hash() -> str:
    """Checked for unknown usernames, so that they cost the same time as wrong passwords."""
    if "hash" not in _dummy:
        _dummy["hash"] = await hash_password_async("not a real password, only spends time")
    return _dummy["hash"]


async def password_matches(member: Member | None, password: str) -> bool:
    """Argon2 off the event loop; an unknown member (None) costs one check all the same."""
    password = password[:MAX_PASSWORD_LENGTH]
    if member is None:
        await verify_password_async(await _dummy_hash(), password)
        return False
    return await verify_password_async(member.password_hash, password)


async def find_member(session: AsyncSession, username: str) -> Member | None:
    try:
        return await get_member(session, username.strip())
    except MemberNotFound:
        return None


async def verify_login(session: AsyncSession, username: str, password: str) -> Member | None:
    """The member if the password is right (whatever their status), else None. Unknown
    usernames cost the same time as wrong passwords. Not throttled: see ``attempt_sign_in``."""
    member = await find_member(session, username)
    return member if await password_matches(member, password) else None


async def attempt_sign_in(
    sessionmaker: async_sessionmaker[AsyncSession],
    username: str,
    password: str,
    address: str | None,
) -> Member | None:
    """A throttled sign-in: the member if the password is right (whatever their status),
    None if not, LoginThrottled (nothing checked) after too many attempts. The attempt is
    counted and committed before Argon2 runs, and no connection is held while it runs."""
    async with session_scope(sessionmaker) as session:
        await reserve_login_attempt(session, username, address)
    async with read_only(sessionmaker) as session:
        member = await find_member(session, username)
    if not await password_matches(member, password) or member is None:
        return None
    async with session_scope(sessionmaker) as session:
        await release_login_attempt(session, username, address)
    return member


def ensure_may_sign_in(member: Member) -> None:
    """LoginRefused unless approved: pending, refused (with the reason) or suspended."""
    if member.status != MemberStatus.APPROVED:
        raise LoginRefused(member.status, member.status_reason)


async def change_password(session: AsyncSession, member: Member, current: str, new: str) -> None:
    """Check the current password, store the new one's hash and revoke every API token of
    the member (whoever knew the old password may have made one). Argon2 runs before the
    session is used, so a ``member`` not in ``session`` (e.g. the signed-in member) holds no
    transaction open meanwhile; it is then loaded into ``session`` to be changed."""
    if not await verify_password_async(member.password_hash, current[:MAX_PASSWORD_LENGTH]):
        raise InvalidMemberInput("current_password", "the current password is not right")
    if len(new) < MIN_PASSWORD_LENGTH:
        raise InvalidMemberInput(
            "new_password", f"at least {MIN_PASSWORD_LENGTH} characters, please"
        )
    if len(new) > MAX_PASSWORD_LENGTH:
        raise InvalidMemberInput("new_password", f"at most {MAX_PASSWORD_LENGTH} characters")
    password_hash = await hash_password_async(new)
    stored = member if member in session else await session.get(Member, member.id)
    if stored is None:
        raise MemberNotFound(member.username)
    stored.password_hash = password_hash
    await revoke_tokens(session, stored)
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
    directory_listed: bool | None = None,
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
    if directory_listed is not None:
        member.directory_listed = directory_listed
    await session.flush()
    return member
