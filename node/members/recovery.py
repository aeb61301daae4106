"""Single-use account links: password reset and email address check.

A link carries a random token; only its SHA-256 is stored (``AccountToken``), with an expiry
(``RESET_LIFETIME``: one hour) and ``used_at`` once consumed. With SMTP configured a member
asks for a reset link by username or verified address and gets it by mail; without SMTP an
administrator makes the same link (admin page, ``archipel member reset-password``) and hands
it over. Asking never says whether an account exists.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.config import Settings
from node.db import utcnow
from node.i18n import translations
from node.mail import Mail, enqueue_mail, normalize_address
from node.members.errors import InvalidMemberInput, MemberNotFound
from node.members.models import AccountToken, AccountTokenPurpose, Member, MemberStatus
from node.members.passwords import MIN_PASSWORD_LENGTH
from node.members.service import revoke_tokens

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "RESET_LIFETIME",
    "VERIFY_LIFETIME",
    "check_new_password",
    "find_token",
    "make_reset_link",
    "request_reset",
    "reset_password",
    "set_email",
    "verify_email",
]

RESET_LIFETIME = timedelta(hours=1)
VERIFY_LIFETIME = timedelta(days=2)
#: A member gets at most one reset mail in this time, however often someone asks.
RESET_INTERVAL = timedelta(minutes=2)
MAX_PASSWORD_LENGTH = 1024
_EXPIRED = "this link expired or was already used: ask for a new one"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _language(settings: Settings, member: Member) -> str:
    return member.language or settings.language


async def _issue(
    session: AsyncSession,
    member: Member,
    purpose: str,
    lifetime: timedelta,
    now: datetime,
    *,
    email: str = "",
) -> str:
    """A new token; the member's earlier unused tokens of this purpose stop working."""
    await session.execute(
        update(AccountToken)
        .where(
            AccountToken.member_id == member.id,
            AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    session.add(
        AccountToken(
            member_id=member.id,
            purpose=purpose,
            token_sha256=_digest(token),
            email=email,
            created_at=now,
            expires_at=now + lifetime,
        )
    )
    await session.flush()
    return token


def _reset_url(settings: Settings, token: str) -> str:
    return settings.absolute(f"/account/reset/{token}")


async def make_reset_link(
    session: AsyncSession, settings: Settings, member: Member, *, now: datetime | None = None
) -> str:
    """A reset link for ``member`` (valid one hour, once), to hand over by other means."""
    if member.status in (MemberStatus.REFUSED,):
        raise InvalidMemberInput("username", f"{member.username} was refused: no password to reset")
    token = await _issue(
        session, member, AccountTokenPurpose.RESET, RESET_LIFETIME, now or utcnow()
    )
    return _reset_url(settings, token)


async def request_reset(
    session: AsyncSession, settings: Settings, identifier: str, *, now: datetime | None = None
) -> int:
    """Mail a reset link to each member named ``identifier`` (a username, or a verified
    address). Returns how many mails were queued; the page never shows it."""
    if not settings.smtp_configured:
        return 0
    now = now or utcnow()
    text = identifier.strip()[:320]
    address = normalize_address(text)
    named = [Member.username == text.lower()]
    if address is not None:
        named.append(Member.email == address)
    recently = now - RESET_INTERVAL
    members = (
        (
            await session.execute(
                select(Member).where(
                    or_(*named),
                    Member.email.is_not(None),
                    Member.email_verified_at.is_not(None),
                    Member.status != MemberStatus.REFUSED,
                    ~select(AccountToken.id)
                    .where(
                        AccountToken.member_id == Member.id,
                        AccountToken.purpose == AccountTokenPurpose.RESET,
                        AccountToken.created_at > recently,
                    )
                    .exists(),
                )
            )
        )
        .scalars()
        .all()
    )
    for member in members:
        assert member.email is not None
        token = await _issue(session, member, AccountTokenPurpose.RESET, RESET_LIFETIME, now)
        _ = translations(_language(settings, member)).gettext
        body = _(
            "Hello %(name)s,\n\nSomeone (probably you) asked to reset the password of the account"
            " %(username)s on %(chamber)s. To choose a new password, open this link within an"
            " hour (it works once):\n\n%(link)s\n\nIf you did not ask, ignore this message:"
            " your password stays as it is.\n"
        ) % {
            "name": member.display_name,
            "username": member.username,
            "chamber": settings.name,
            "link": _reset_url(settings, token),
        }
        subject = _("Reset your password on %(chamber)s") % {"chamber": settings.name}
        await enqueue_mail(session, settings, Mail(member.email, subject, body))
    return len(members)


async def find_token(
    session: AsyncSession,
    token: str,
    purpose: str,
    *,
    now: datetime | None = None,
    lock: bool = False,
) -> AccountToken | None:
    """The unused, unexpired token of this purpose, or None."""
    if not 20 <= len(token) <= 100:
        return None
    query = select(AccountToken).where(
        AccountToken.token_sha256 == _digest(token), AccountToken.purpose == purpose
    )
    if lock:
        query = query.with_for_update()
    found = (await session.execute(query)).scalar_one_or_none()
    if found is None or found.used_at is not None or found.expires_at <= (now or utcnow()):
        return None
    return found


def check_new_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidMemberInput("password", f"at least {MIN_PASSWORD_LENGTH} characters, please")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidMemberInput("password", f"at most {MAX_PASSWORD_LENGTH} characters")


async def reset_password(
    session: AsyncSession, token: str, password_hash: str, *, now: datetime | None = None
) -> Member:
    """Consume the reset ``token`` and store the new password's hash (computed by the caller
    with ``hash_password_async`` before this transaction). The token is locked, so two
    concurrent uses cannot both pass."""
    now = now or utcnow()
    found = await find_token(session, token, AccountTokenPurpose.RESET, now=now, lock=True)
    if found is None:
        raise InvalidMemberInput("token", _EXPIRED)
    member = await session.get(Member, found.member_id)
    if member is None:
        raise MemberNotFound("this account no longer exists")
    found.used_at = now
    member.password_hash = password_hash
    await revoke_tokens(session, member, now=now)  # whoever had the password had them too
    await session.flush()
    return member


async def set_email(
    session: AsyncSession,
    settings: Settings,
    member: Member,
    text: str,
    *,
    now: datetime | None = None,
) -> bool:
    """Set (or with an empty ``text``, remove) the member's address. A new address is
    unverified; with SMTP configured a verification link is mailed to it (returns True)."""
    now = now or utcnow()
    if not text.strip():
        member.email, member.email_verified_at = None, None
        await session.flush()
        return False
    address = normalize_address(text)
    if address is None:
        raise InvalidMemberInput("email", "one email address, such as marie@example.org")
    if address == member.email and member.email_verified_at is not None:
        return False
    member.email, member.email_verified_at = address, None
    await session.flush()
    if not settings.smtp_configured:
        return False
    token = await _issue(
        session, member, AccountTokenPurpose.VERIFY, VERIFY_LIFETIME, now, email=address
    )
    _ = translations(_language(settings, member)).gettext
    body = _(
        "Hello %(name)s,\n\nTo confirm that %(email)s is your address on %(chamber)s, open this"
        " link:\n\n%(link)s\n\nIf you did not give this address, ignore this message.\n"
    ) % {
        "name": member.display_name,
        "email": address,
        "chamber": settings.name,
        "link": settings.absolute(f"/account/email/verify/{token}"),
    }
    subject = _("Confirm your address on %(chamber)s") % {"chamber": settings.name}
    await enqueue_mail(session, settings, Mail(address, subject, body))
    return True


async def verify_email(session: AsyncSession, token: str, *, now: datetime | None = None) -> Member:
    """Consume a verification ``token``: the address it was sent to becomes verified (unless
    the member changed it since)."""
    now = now or utcnow()
    found = await find_token(session, token, AccountTokenPurpose.VERIFY, now=now, lock=True)
    if found is None:
        raise InvalidMemberInput("token", _EXPIRED)
    member = await session.get(Member, found.member_id)
    if member is None:
        raise MemberNotFound("this account no longer exists")
    found.used_at = now
    if member.email != found.email:
        raise InvalidMemberInput("token", "your address changed since this link was sent")
    member.email_verified_at = now
    await session.flush()
    return member
