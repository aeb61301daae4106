"""Administration pages: the clearing-access rule set from /admin (stored, logged, applied),
the founding administrator under the same rule, a confirmation before suspending, the
members list searched and paged, success messages; the member's next step on /account."""

from __future__ import annotations

import html
import re

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.db import read_only
from node.members.models import AuditEntry, Member, MemberRole, MemberStatus
from node.web.admin import MEMBERS_PER_PAGE
from tests.bricks._helpers import BRICK, bearer
from tests.web._members import add_member, csrf_of, sign_in

EN = {"Accept-Language": "en"}


def other_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))


async def test_the_founding_administrator_opens_access_with_one_brick(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """As `archipel init` makes them: approved administrator, approved now."""
    token = await add_member(app, "ada", role=MemberRole.ADMIN, token=True)
    assert token
    me = (await client.get("/api/v1/members/me", headers={**bearer(token), **EN})).json()
    assert me["clearing_access"]["missing"] == ["1 more published brick"]
    created = await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))
    assert created.status_code == 201
    me = (await client.get("/api/v1/members/me", headers=bearer(token))).json()
    assert me["clearing_access"]["allowed"] is True


async def test_the_account_page_says_what_to_do_next(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    page = await client.get("/account", headers=EN)
    assert "Publish one brick to open your access:" in page.text
    assert '<a href="/bricks/new">Publish a brick →</a>' in page.text
    french = await client.get("/account")
    assert "Publiez une brique pour ouvrir votre accès" in french.text


async def test_administrators_set_the_rule_logged_and_applied(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    await add_member(app, "marie")
    async with other_client(client) as admin:
        await sign_in(admin, "ada")
        page = await admin.get("/admin", headers=EN)
        assert 'href="/admin"' in page.text  # the Administration link of the navigation
        token = csrf_of(page.text)
        refused = await admin.post(
            "/admin/clearing-rule",
            data={"csrf_token": token, "min_bricks": "-2", "min_days": "30"},
            headers={**EN, "Accept": "text/html"},
        )
        assert refused.status_code == 422
        assert 'id="rule-min_bricks-error"' in refused.text and 'value="-2"' in refused.text
        saved = await admin.post(
            "/admin/clearing-rule",
            data={"csrf_token": token, "min_bricks": "0", "min_days": "30"},
        )
        assert saved.status_code == 303
        after = await admin.get(saved.headers["location"], headers=EN)
        assert "The clearing-access rule is saved." in after.text
        assert 'value="30"' in after.text
    async with read_only(app.state.node.sessionmaker) as session:
        entries = list(
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.action == "clearing.rule")
                )
            ).scalars()
        )
    assert [(e.by, e.details["min_bricks"], e.details["min_days"]) for e in entries] == [
        ("ada", 0, 30)
    ]
    await sign_in(client, "marie")
    account = await client.get("/account", headers=EN)
    assert "1 more published brick" not in account.text
    assert "Nothing more to do: your access opens by itself on" in account.text


async def test_suspending_asks_first(app: Starlette, client: httpx.AsyncClient) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    await add_member(app, "bob")
    await sign_in(client, "ada")
    token = csrf_of((await client.get("/admin")).text)
    asked = await client.post(
        "/admin/members/bob",
        data={"action": "suspend", "reason": "spam", "csrf_token": token},
        headers=EN,
    )
    assert asked.status_code == 200
    assert 'name="confirm" value="yes"' in asked.text and 'value="spam"' in asked.text

    async def status() -> str:
        async with read_only(app.state.node.sessionmaker) as session:
            return (
                await session.execute(select(Member.status).where(Member.username == "bob"))
            ).scalar_one()

    assert await status() == MemberStatus.APPROVED
    done = await client.post(
        "/admin/members/bob",
        data={"action": "suspend", "reason": "spam", "csrf_token": token, "confirm": "yes"},
    )
    assert done.status_code == 303 and await status() == MemberStatus.SUSPENDED
    assert "The member is suspended." in (await client.get("/admin", headers=EN)).text


async def test_the_members_list_is_searched_and_paged(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    for number in range(MEMBERS_PER_PAGE + 5):
        await add_member(app, f"m{number:02d}")
    await add_member(app, "zoe_b")
    await sign_in(client, "ada")
    first = await client.get("/admin", headers=EN)
    assert "page 1 of 2" in first.text and "m23" in first.text and "zoe_b" not in first.text
    second = await client.get("/admin?page=2", headers=EN)
    assert "zoe_b" in second.text and "m00" not in second.text
    found = await client.get("/admin?q=ZOE", headers=EN)
    assert "zoe_b" in found.text and "m00" not in found.text and "1 member" in found.text
    odd = await client.get("/admin?q=%25_", headers=EN)
    assert odd.status_code == 200


async def test_a_refused_admin_form_keeps_what_was_typed(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    await sign_in(client, "ada")
    token = csrf_of((await client.get("/admin")).text)
    refused = await client.post(
        "/admin/remote-content",
        data={"csrf_token": token, "actor": "https://spam.example/u/x", "reason": ""},
        headers={"Accept": "text/html"},
    )
    assert refused.status_code == 422
    assert 'value="https://spam.example/u/x"' in refused.text
    assert 'id="remote-error"' in refused.text and "Donnez un motif" in refused.text
    charter = await client.post(
        "/admin/charter",
        data={"csrf_token": token, "text": "", "reason": "nouvelle version"},
        headers={"Accept": "text/html"},
    )
    assert charter.status_code == 422
    assert 'value="nouvelle version"' in charter.text and "Écrivez le texte" in charter.text


async def test_an_error_on_page_two_stays_on_page_two(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    for number in range(MEMBERS_PER_PAGE + 5):
        await add_member(app, f"m{number:02d}")
    await add_member(app, "zoe_b")
    await sign_in(client, "ada")
    second = await client.get("/admin?page=2", headers=EN)
    action = re.search(r'action="(/admin/members/zoe_b[^"]*)"', second.text)
    assert action is not None
    target = html.unescape(action.group(1))
    assert target == "/admin/members/zoe_b?page=2"
    form = {"csrf_token": csrf_of(second.text), "action": "grant-clearing", "reason": ""}
    refused = await client.post(target, data=form, headers=EN)
    assert refused.status_code == 422
    assert 'id="member-zoe_b-error"' in refused.text
    assert "page 2 of 2" in refused.text and "Give a reason" in refused.text
    done = await client.post(target, data={**form, "reason": "trusted"}, headers=EN)
    assert done.status_code == 303
    assert done.headers["location"] == "/admin?done=grant-clearing&page=2#member-zoe_b"
    shown = await client.get(done.headers["location"], headers=EN)
    assert "zoe_b" in shown.text and "Clearing access is granted." in shown.text
    # A search is kept the same way, through the confirmation step too.
    found = await client.get("/admin?q=zoe", headers=EN)
    asked = await client.post(
        "/admin/members/zoe_b?q=zoe",
        data={"csrf_token": csrf_of(found.text), "action": "suspend", "reason": "spam"},
        headers=EN,
    )
    assert 'action="/admin/members/zoe_b?q=zoe"' in asked.text
    assert 'href="/admin?q=zoe"' in asked.text
