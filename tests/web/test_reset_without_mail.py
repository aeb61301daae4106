"""Without SMTP, an administrator hands out the reset link: from the admin page or with
``archipel member reset-password`` (the URL is the last word of the last line)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.cli import main
from node.config import Settings, write_settings
from node.db import read_only
from node.jobs import Job
from node.members.models import AuditEntry, MemberRole
from tests.web._members import add_member, csrf_of, sign_in

NEW_PASSWORD = "a brand new passphrase"


async def _use(client: httpx.AsyncClient, link: str) -> httpx.Response:
    assert link.startswith("https://lille.test/account/reset/")
    page = await client.get(link)
    assert page.status_code == 200, page.text
    return await client.post(
        link,
        data={
            "password": NEW_PASSWORD,
            "password_confirm": NEW_PASSWORD,
            "csrf_token": csrf_of(page.text),
        },
    )


async def test_cli_prints_a_working_link(
    app: Starlette,
    client: httpx.AsyncClient,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    token = await add_member(app, "marie", token=True)
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/api/v1/notifications", headers=bearer)).status_code == 200
    write_settings(settings)  # the CLI reads the same chamber (and database)
    data = str(settings.data_dir)
    code = await asyncio.to_thread(main, ["member", "reset-password", "--data-dir", data, "marie"])
    assert code == 0
    link = capsys.readouterr().out.strip().splitlines()[-1].split()[-1]
    assert (await _use(client, link)).status_code == 200
    assert (await sign_in(client, "marie", NEW_PASSWORD)).status_code == 303
    revoked = await client.get("/api/v1/notifications", headers=bearer)
    assert revoked.status_code == 401  # a reset revokes the member's API tokens
    async with read_only(app.state.node.sessionmaker) as session:
        actions = (await session.execute(select(AuditEntry.action, AuditEntry.by))).all()
    assert ("member.reset_link", "operator") in [tuple(a) for a in actions]
    unknown = await asyncio.to_thread(
        main, ["member", "reset-password", "--data-dir", data, "nobody"]
    )
    assert unknown == 1


async def test_admin_page_makes_the_link_and_asking_says_to_ask_an_admin(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    await add_member(app, "marie")
    asking = await client.get("/account/reset")
    assert "administrateurs" in asking.text and 'name="identifier"' not in asking.text
    page = await client.get("/login")
    asked = await client.post(
        "/account/reset", data={"identifier": "marie", "csrf_token": csrf_of(page.text)}
    )
    assert asked.status_code == 200 and "administrateurs" in asked.text
    async with read_only(app.state.node.sessionmaker) as session:
        assert (await session.execute(select(Job))).first() is None  # no mail without SMTP

    admin = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with admin:
        assert (await sign_in(admin, "ada")).status_code == 303
        panel = await admin.get("/admin")
        assert 'action="/admin/members/marie/reset-link"' in panel.text
        made = await admin.post(
            "/admin/members/marie/reset-link", data={"csrf_token": csrf_of(panel.text)}
        )
        assert made.status_code == 200
        link = made.text.split('id="reset-link">', 1)[1].split("<", 1)[0]
        refused = await client.post(  # a member who is not an administrator cannot
            "/admin/members/marie/reset-link", data={"csrf_token": csrf_of(page.text)}
        )
        assert refused.status_code in (303, 403)
    assert (await _use(client, link)).status_code == 200
    assert (await sign_in(client, "marie", NEW_PASSWORD)).status_code == 303
    short = await client.get(link)
    assert short.status_code == 410  # used once
