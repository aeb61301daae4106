"""Password reset and address checks by email, and notification mail, through a real SMTP
server on loopback (aiosmtpd): nothing is mocked between the job and the server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.config import Settings
from node.db import read_only, session_scope, utcnow
from node.jobs import Job, JobState, Worker
from node.mail import MAIL_JOB
from node.members.models import Member, MemberStatus, Notification
from node.members.service import get_member
from node.runtime import job_handlers
from tests.harness.chambers import quiet_app
from tests.web._members import add_member, csrf_of, sign_in
from tests.web._smtp import SmtpServer, body_of, free_port, link_in, run_jobs

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(settings: Settings, smtp: SmtpServer) -> Settings:
    return replace(
        settings,
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_from="chambre@lille.test",
        smtp_starttls=False,
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    async with quiet_app(settings) as application:  # the test runs the jobs itself
        yield application


async def _give_address(app: Starlette, username: str, *, verified: bool = True) -> str:
    address = f"{username}@example.org"
    async with session_scope(app.state.node.sessionmaker) as session:
        member = await get_member(session, username)
        member.email = address
        member.email_verified_at = utcnow() if verified else None
    return address


async def _ask_reset(client: httpx.AsyncClient, identifier: str) -> httpx.Response:
    page = await client.get("/account/reset")
    return await client.post(
        "/account/reset", data={"identifier": identifier, "csrf_token": csrf_of(page.text)}
    )


async def _set_password(client: httpx.AsyncClient, link: str, password: str) -> httpx.Response:
    page = await client.get(link)
    assert page.status_code == 200, page.text
    return await client.post(
        link,
        data={
            "password": password,
            "password_confirm": password,
            "csrf_token": csrf_of(page.text),
        },
    )


async def test_reset_by_email_end_to_end(
    app: Starlette, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    await add_member(app, "marie")
    address = await _give_address(app, "marie")
    login = await client.get("/login")
    assert 'href="/account/reset"' in login.text

    asked = await _ask_reset(client, "marie")
    unknown = await _ask_reset(client, "nobody")
    assert asked.status_code == unknown.status_code == 200
    assert asked.text.count("If an account matches") == unknown.text.count("If an account")
    assert "Si un compte correspond" in asked.text  # the chamber's language
    assert smtp.inbox.messages == []  # nothing is sent inside the request
    await run_jobs(app)
    [mail] = smtp.inbox.messages
    assert mail["To"] == address and "chambre@lille.test" in mail["From"]
    link = link_in(mail)
    assert "/account/reset/" in link
    token = link.rsplit("/", 1)[-1]
    async with read_only(app.state.node.sessionmaker) as session:
        job = (await session.execute(select(Job).where(Job.kind == MAIL_JOB))).scalar_one()
    assert token not in str(job.payload)  # sealed, then forgotten once sent

    done = await _set_password(client, link, NEW_PASSWORD)
    assert done.status_code == 200 and "nouveau mot de passe" in done.text
    assert (await sign_in(client, "marie")).status_code == 401  # the old one is gone
    assert (await sign_in(client, "marie", NEW_PASSWORD)).status_code == 303
    assert (await client.get("/account")).status_code == 200

    await _ask_reset(client, "marie@example.org")  # by address, but asked a moment ago
    await run_jobs(app)
    assert len(smtp.inbox.messages) == 1  # at most one reset mail per member every 2 min


async def test_reset_link_expires_after_an_hour_and_works_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    from node.members.errors import InvalidMemberInput
    from node.members.models import AccountTokenPurpose
    from node.members.passwords import hash_password_async
    from node.members.recovery import find_token, make_reset_link, reset_password

    await add_member(app, "marie")
    node = app.state.node
    start = utcnow()
    async with session_scope(node.sessionmaker) as session:
        member = await get_member(session, "marie")
        link = await make_reset_link(session, node.settings, member, now=start)
    token = link.rsplit("/", 1)[-1]
    async with read_only(node.sessionmaker) as session:
        later = start + timedelta(minutes=59)
        assert await find_token(session, token, AccountTokenPurpose.RESET, now=later)
        late = start + timedelta(minutes=61)
        assert await find_token(session, token, AccountTokenPurpose.RESET, now=late) is None
    password_hash = await hash_password_async(NEW_PASSWORD)
    with pytest.raises(InvalidMemberInput):
        async with session_scope(node.sessionmaker) as session:
            await reset_password(session, token, password_hash, now=start + timedelta(hours=2))

    assert (await _set_password(client, link, NEW_PASSWORD)).status_code == 200
    again = await client.get(link)
    assert again.status_code == 410 and "déjà servi" in again.text
    page = await client.get("/account/reset")
    reused = await client.post(
        link,
        data={"password": "x" * 20, "password_confirm": "x" * 20, "csrf_token": csrf_of(page.text)},
    )
    assert reused.status_code == 410
    assert (await sign_in(client, "marie", "x" * 20)).status_code == 401
    assert (await sign_in(client, "marie", NEW_PASSWORD)).status_code == 303


async def test_address_is_verified_by_link_and_unverified_gets_no_mail(
    app: Starlette, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    await add_member(app, "marie")
    assert (await sign_in(client, "marie")).status_code == 303
    page = await client.get("/account")
    saved = await client.post(
        "/account/email",
        data={"email": " Marie@Example.ORG ", "csrf_token": csrf_of(page.text)},
    )
    assert saved.status_code == 303 and saved.headers["location"] == "/account?email=sent"
    assert "pas encore confirmée" in (await client.get("/account")).text
    await _ask_reset(client, "marie")  # unverified: no reset mail, only the verification
    await run_jobs(app)
    [check] = smtp.inbox.messages
    assert check["To"] == "Marie@example.org"
    link = link_in(check)
    assert "/account/email/verify/" in link
    confirmed = await client.get(link)
    assert confirmed.status_code == 200 and "Marie@example.org" in confirmed.text
    assert (await client.get(link)).status_code == 410  # once
    async with read_only(app.state.node.sessionmaker) as session:
        member = await get_member(session, "marie")
    assert member.email_verified_at is not None

    bad = await client.post(
        "/account/email", data={"email": "not an address", "csrf_token": csrf_of(page.text)}
    )
    assert bad.status_code == 422
    # The account page again, the address as typed and the error by its field.
    assert 'value="not an address"' in bad.text
    assert 'aria-describedby="email-error"' in bad.text and 'id="email-error"' in bad.text


async def test_notification_mail_and_a_kind_turned_off(
    app: Starlette, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    from node.members.governance import approve_member

    await add_member(app, "paul", status=MemberStatus.PENDING)
    await _give_address(app, "paul")
    async with session_scope(app.state.node.sessionmaker) as session:
        await approve_member(session, None, await get_member(session, "paul"))
    await run_jobs(app)
    [welcome] = smtp.inbox.to("paul@example.org")
    assert "approuvée" in body_of(welcome) and "https://lille.test/account" in body_of(welcome)

    # marie turns exchange proposals off; an exchange declared to her sends no mail
    await add_member(app, "marie", token=False)
    await _give_address(app, "marie")
    assert (await sign_in(client, "marie")).status_code == 303
    page = await client.get("/account")
    assert 'value="exchange.proposed" checked' in page.text
    kept = ["registration.approved", "brick.reviewed"]
    choices = await client.post(
        "/account/mail-choices", data={"on": kept, "csrf_token": csrf_of(page.text)}
    )
    assert choices.status_code == 303
    async with session_scope(app.state.node.sessionmaker) as session:
        marie = await get_member(session, "marie")
        assert "exchange.proposed" in marie.email_off and "brick.reviewed" not in marie.email_off
        from node.members.notifications import notify

        await notify(session, marie.id, "exchange.proposed", "/exchanges/x", {"who": "paul"})
        await notify(session, marie.id, "brick.reviewed", "/bricks/x", {"who": "paul"})
    await run_jobs(app)
    mails = smtp.inbox.to("marie@example.org")
    assert len(mails) == 1 and "/bricks/x" in body_of(mails[0])
    async with read_only(app.state.node.sessionmaker) as session:
        rows = (await session.execute(select(Notification.type))).scalars().all()
    assert sorted(rows) == ["brick.reviewed", "exchange.proposed", "registration.approved"]


async def test_smtp_down_the_job_retries_and_nothing_is_lost(
    app: Starlette, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    await add_member(app, "marie")
    address = await _give_address(app, "marie")
    smtp.stop()
    await _ask_reset(client, "marie")
    await run_jobs(app)
    node = app.state.node
    async with read_only(node.sessionmaker) as session:
        job = (await session.execute(select(Job).where(Job.kind == MAIL_JOB))).scalar_one()
    assert job.state == JobState.PENDING and job.attempts == 1 and job.last_error
    assert smtp.inbox.messages == []

    smtp.start()
    later = Worker(
        node.sessionmaker,
        job_handlers(node.federation, node.settings, node.services),
        clock=lambda: utcnow() + timedelta(hours=1),
    )
    assert await later.run_until_idle() == 1
    [mail] = smtp.inbox.messages
    assert mail["To"] == address and "/account/reset/" in link_in(mail)
    async with read_only(node.sessionmaker) as session:
        job = (await session.execute(select(Job).where(Job.kind == MAIL_JOB))).scalar_one()
        member = (await session.execute(select(Member))).scalars().first()
    assert job.state == JobState.DONE and job.attempts == 2 and member is not None


async def test_an_address_given_at_registration_hears_of_the_approval(
    app: Starlette, client: httpx.AsyncClient, smtp: SmtpServer
) -> None:
    from node.members.governance import approve_member

    page = await client.get("/register")
    form = {
        "csrf_token": csrf_of(page.text),
        "charter_version": "1",
        "username": "lea",
        "display_name": "Léa",
        "email": "lea@example",
        "password": "correct horse battery",
        "password_confirm": "correct horse battery",
        "accept_charter": "yes",
    }
    refused = await client.post("/register", data=form)
    assert refused.status_code == 422
    assert 'value="lea@example"' in refused.text and 'id="email-error"' in refused.text
    assert 'aria-describedby="email-help email-error"' in refused.text
    assert "Donnez une adresse électronique" in refused.text
    registered = await client.post("/register", data={**form, "email": "Lea@Example.org"})
    assert registered.status_code == 201, registered.text
    async with read_only(app.state.node.sessionmaker) as session:
        lea = await get_member(session, "lea")
    assert lea.email == "Lea@example.org" and lea.email_verified_at is None
    await run_jobs(app)
    [check] = smtp.inbox.to("Lea@example.org")
    assert (await client.get(link_in(check))).status_code == 200
    async with session_scope(app.state.node.sessionmaker) as session:
        await approve_member(session, None, await get_member(session, "lea"))
    await run_jobs(app)
    mails = smtp.inbox.to("Lea@example.org")
    assert len(mails) == 2 and "approuvée" in body_of(mails[1])
