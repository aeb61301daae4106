"""Email through the chamber's SMTP server (``smtp_*`` settings), always from a durable job.

A request never talks to the SMTP server: it adds a ``mail.send`` job in its own transaction
(``enqueue_mail``), and the worker sends it with aiosmtplib. A slow or unreachable server
makes the job retry with the usual backoff, so nothing is lost. The message is sealed with
the node secret in the job row (it may hold a single-use link), and the row forgets it once
sent.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formataddr, make_msgid

import aiosmtplib
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.config import Settings
from node.db import session_scope
from node.jobs import Done, Fail, Handler, Job, Outcome, Retry, enqueue
from node.secretbox import SecretBox, SecretBoxError

__all__ = [
    "MAIL_JOB",
    "MAX_ADDRESS_LENGTH",
    "Mail",
    "enqueue_mail",
    "mail_box",
    "mail_job",
    "normalize_address",
    "send_mail",
]

log = logging.getLogger(__name__)

MAIL_JOB = "mail.send"
MAX_ADDRESS_LENGTH = 320
#: Seconds to connect or wait for the server before the job retries.
SMTP_TIMEOUT = 30.0


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    body: str


def normalize_address(text: str) -> str | None:
    """The address in a canonical form (trimmed, domain in lowercase), or None if it is not
    one address (no display name, no list, no spaces)."""
    address = text.strip()
    local, at, domain = address.rpartition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(address) > MAX_ADDRESS_LENGTH
        or any(c.isspace() or c in '<>(),;:"[]\\' for c in address)
        or domain.startswith(".")
        or domain.endswith(".")
    ):
        return None
    return f"{local}@{domain.lower()}"


def mail_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.secret_key, purpose=b"archipel/mail/v1")


async def enqueue_mail(session: AsyncSession, settings: Settings, mail: Mail) -> Job:
    """Add the message to the outgoing queue, in the caller's transaction."""
    sealed = mail_box(settings).seal(
        json.dumps({"to": mail.to, "subject": mail.subject, "body": mail.body}).encode()
    )
    return await enqueue(session, MAIL_JOB, {"sealed": sealed})


def _message(settings: Settings, mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = formataddr((settings.name, settings.smtp_from))
    message["To"] = mail.to
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain=settings.host.split(":")[0])
    message.set_content(mail.body)
    return message


async def send_mail(settings: Settings, mail: Mail) -> None:
    """Send one message now (the job's work); raises on any SMTP or network failure."""
    implicit_tls = settings.smtp_port == 465
    await aiosmtplib.send(
        _message(settings, mail),
        hostname=settings.smtp_host,
        port=settings.smtp_port,
        username=settings.smtp_username or None,
        password=settings.smtp_password or None,
        use_tls=implicit_tls,
        start_tls=settings.smtp_starttls and not implicit_tls,
        timeout=SMTP_TIMEOUT,
    )


def mail_job(settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]) -> Handler:
    """The ``mail.send`` handler: send, then forget the message (only its subject stays)."""
    box = mail_box(settings)

    async def handle(job: Job) -> Outcome:
        if not settings.smtp_configured:
            return Fail("no SMTP server is configured (smtp_host in archipel.toml)")
        if "sent" in job.payload:
            return Done()  # sent before a crash, not yet marked done
        try:
            fields = json.loads(box.open(str(job.payload.get("sealed", ""))))
            mail = Mail(to=fields["to"], subject=fields["subject"], body=fields["body"])
        except (SecretBoxError, ValueError, KeyError, TypeError):
            return Fail("the message cannot be opened with this node's secret")
        try:
            await send_mail(settings, mail)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            if isinstance(exc, aiosmtplib.SMTPResponseException) and 500 <= exc.code < 600:
                return Fail(f"the SMTP server refused the message: {exc.code} {exc.message}")
            return Retry(f"{type(exc).__name__}: {exc}")
        async with session_scope(sessionmaker) as session:
            await session.execute(
                update(Job).where(Job.id == job.id).values(payload={"sent": mail.subject[:200]})
            )
        log.info("mail job %s sent", job.id)
        return Done()

    return handle
