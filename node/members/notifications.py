"""What a member should know: notifications, and the email that goes with each kind.

Domains call ``notify(session, member_id, type, url, params)`` in the transaction of the
event, so a notification exists exactly when the event does. A notification stores its type
and parameters, not a sentence: ``summary`` renders it in the reader's language when it is
shown. With SMTP configured and the member's address verified, a ``mail.notification`` job
sends it by mail too, unless the member turned that kind off (``Member.email_off``).

The protocol layer knows no member: follows reach us through ``follow_notifier``, which the
runtime hands to ``register_follow_handlers``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.models import LocalActor
from node.config import Settings
from node.db import session_scope, utcnow
from node.i18n import translations
from node.jobs import Done, Handler, Job, Outcome, enqueue
from node.mail import Mail, enqueue_mail
from node.members.models import Member, MemberStatus, Notification

__all__ = [
    "EMAIL_KINDS",
    "NOTIFICATION_MAIL_JOB",
    "TYPES",
    "FollowNotifier",
    "NotificationType",
    "email_switch",
    "follow_notifier",
    "handle_of",
    "list_notifications",
    "mark_read",
    "notification_mail_job",
    "notify",
    "summary",
    "unread_count",
]

NOTIFICATION_MAIL_JOB = "mail.notification"
PAGE_SIZE = 50


def N_(message: str) -> str:
    """Marks a message for extraction; translated when shown."""
    return message


class NotificationType:
    REGISTRATION_APPROVED = "registration.approved"
    REGISTRATION_REFUSED = "registration.refused"
    EXCHANGE_PROPOSED = "exchange.proposed"
    EXCHANGE_ACCEPTED = "exchange.accepted"
    EXCHANGE_CONTESTED = "exchange.contested"
    EXCHANGE_REFUSED = "exchange.refused"
    EXCHANGE_SETTLED = "exchange.settled"
    EXCHANGE_REOPENED = "exchange.reopened"
    BRICK_REVIEWED = "brick.reviewed"
    FOLLOW_NEW = "follow.new"
    FOLLOW_REQUEST = "follow.request"
    CLEARING_OPENED = "clearing.opened"


#: Each type's sentence (English source, translated when shown), with its ``params``.
TYPES: dict[str, str] = {
    NotificationType.REGISTRATION_APPROVED: N_("Your registration was approved: welcome!"),
    NotificationType.REGISTRATION_REFUSED: N_("Your registration was refused: %(reason)s"),
    NotificationType.EXCHANGE_PROPOSED: N_(
        "%(who)s declared an exchange of %(duration)s with you (“%(description)s”):"
        " it waits for your validation."
    ),
    NotificationType.EXCHANGE_ACCEPTED: N_("%(who)s accepted the exchange “%(description)s”."),
    NotificationType.EXCHANGE_CONTESTED: N_("%(who)s contested the exchange “%(description)s”."),
    NotificationType.EXCHANGE_REFUSED: N_("%(who)s refused the exchange “%(description)s”."),
    NotificationType.EXCHANGE_SETTLED: N_(
        "The exchange “%(description)s” is settled and posted to the ledger."
    ),
    NotificationType.EXCHANGE_REOPENED: N_(
        "The exchange “%(description)s” was accepted but could not be settled between the"
        " two chambers: it is open again."
    ),
    NotificationType.BRICK_REVIEWED: N_("%(who)s rated your brick “%(title)s”: %(rating)s/5."),
    NotificationType.FOLLOW_NEW: N_("%(who)s follows you."),
    NotificationType.FOLLOW_REQUEST: N_("%(who)s asks to follow you."),
    NotificationType.CLEARING_OPENED: N_("Your access to the clearing house is open."),
}

#: The kinds a member can turn off by mail, with their label on the account page.
EMAIL_KINDS: dict[str, str] = {
    NotificationType.REGISTRATION_APPROVED: N_("My registration is approved or refused"),
    NotificationType.EXCHANGE_PROPOSED: N_("An exchange waits for my validation"),
    NotificationType.EXCHANGE_ACCEPTED: N_("My exchange is accepted, contested or refused"),
    NotificationType.EXCHANGE_SETTLED: N_("My exchange is settled"),
    NotificationType.BRICK_REVIEWED: N_("Someone reviews or rates my brick"),
    NotificationType.FOLLOW_NEW: N_("A new follower or follow request"),
    NotificationType.CLEARING_OPENED: N_("My access to the clearing house opens"),
}

#: Types that share one switch of ``EMAIL_KINDS``.
_SWITCH_OF = {
    NotificationType.REGISTRATION_REFUSED: NotificationType.REGISTRATION_APPROVED,
    NotificationType.EXCHANGE_CONTESTED: NotificationType.EXCHANGE_ACCEPTED,
    NotificationType.EXCHANGE_REFUSED: NotificationType.EXCHANGE_ACCEPTED,
    NotificationType.EXCHANGE_REOPENED: NotificationType.EXCHANGE_SETTLED,
    NotificationType.FOLLOW_REQUEST: NotificationType.FOLLOW_NEW,
}


def email_switch(type_: str) -> str:
    return _SWITCH_OF.get(type_, type_)


async def notify(
    session: AsyncSession,
    member_id: int,
    type_: str,
    url: str,
    summary_params: dict[str, Any] | None = None,
    *,
    now: datetime | None = None,
) -> Notification:
    """Record a notification for the member, in the caller's transaction, and queue its
    mail when the member has a verified address and did not turn this kind off."""
    if type_ not in TYPES:
        raise ValueError(f"unknown notification type {type_!r}")
    params = {k: str(v)[:300] for k, v in (summary_params or {}).items()}
    note = Notification(
        member_id=member_id,
        type=type_,
        params=params,
        url=url[:2048],
        created_at=now or utcnow(),
    )
    session.add(note)
    await session.flush()
    member = await session.get(Member, member_id)
    if (
        member is not None
        and member.email
        and member.email_verified_at is not None
        and email_switch(type_) not in (member.email_off or [])
    ):
        await enqueue(session, NOTIFICATION_MAIL_JOB, {"notification": note.id})
    return note


def summary(note: Notification, language: str) -> str:
    """The notification's sentence in ``language``."""
    text = translations(language).gettext(TYPES.get(note.type, "%(type)s"))
    try:
        return text % {"type": note.type, **note.params}
    except (KeyError, ValueError, TypeError):
        return text


async def list_notifications(
    session: AsyncSession, member: Member, *, limit: int = PAGE_SIZE
) -> list[Notification]:
    query = (
        select(Notification)
        .where(Notification.member_id == member.id)
        .order_by(Notification.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())


async def unread_count(session: AsyncSession, member_id: int) -> int:
    query = select(func.count(Notification.id)).where(
        Notification.member_id == member_id, Notification.read_at.is_(None)
    )
    return int((await session.execute(query)).scalar_one())


async def mark_read(
    session: AsyncSession,
    member: Member,
    ids: Sequence[int] | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """Mark the member's notifications ``ids`` read (all of them when None or empty);
    others' ids are ignored. Returns how many changed."""
    query = update(Notification).where(
        Notification.member_id == member.id, Notification.read_at.is_(None)
    )
    if ids:
        query = query.where(Notification.id.in_(list(ids)))
    result = await session.execute(
        query.values(read_at=now or utcnow()).execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def notification_mail_job(
    settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> Handler:
    """Turns a notification into a ``mail.send`` job in the member's language (at send time
    the member's address and choices are read again)."""

    async def handle(job: Job) -> Outcome:
        async with session_scope(sessionmaker) as session:
            note = await session.get(Notification, int(job.payload.get("notification", 0)))
            member = await session.get(Member, note.member_id) if note else None
            if (
                note is None
                or member is None
                or not member.email
                or member.email_verified_at is None
                or email_switch(note.type) in (member.email_off or [])
                or not settings.smtp_configured
            ):
                return Done()  # nothing to send any more
            language = member.language or settings.language
            _ = translations(language).gettext
            link = settings.absolute(note.url) if note.url.startswith("/") else note.url
            body = _(
                "Hello %(name)s,\n\n%(summary)s\n\n%(link)s\n\nYour notifications: %(page)s\n"
                "You can choose which notifications come by mail on your account page:"
                " %(account)s\n"
            ) % {
                "name": member.display_name,
                "summary": summary(note, language),
                "link": link,
                "page": settings.absolute("/notifications"),
                "account": settings.absolute("/account"),
            }
            subject = f"{settings.name}: {summary(note, language)}"[:200]
            await enqueue_mail(session, settings, Mail(member.email, subject, body))
        return Done()

    return handle


#: ``(session, local actor, follower URI, pending)``: a follow reached a local actor.
FollowNotifier = Callable[[AsyncSession, LocalActor, str, bool], Awaitable[None]]


def follow_notifier() -> FollowNotifier:
    """The runtime's hook for ``register_follow_handlers``: a member followed (or asked)."""

    async def on_follow(
        session: AsyncSession, actor: LocalActor, follower: str, pending: bool
    ) -> None:
        member = (
            await session.execute(select(Member).where(Member.actor_id == actor.id))
        ).scalar_one_or_none()
        if member is None or member.status != MemberStatus.APPROVED:
            return
        type_ = NotificationType.FOLLOW_REQUEST if pending else NotificationType.FOLLOW_NEW
        url = "/account/follow-requests" if pending else f"/@{member.username}"
        await notify(session, member.id, type_, url, {"who": handle_of(follower)})

    return on_follow


def handle_of(actor_uri: str) -> str:
    """``name@host`` from an actor URI, for a sentence (the URI itself if it has no path)."""
    parts = urlsplit(actor_uri)
    name = parts.path.rstrip("/").rsplit("/", 1)[-1].lstrip("@")
    return f"{name}@{parts.netloc}" if name and parts.netloc else actor_uri
