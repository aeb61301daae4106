"""Registration, sign-in, account and administration pages, refusal paths included."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from node.members.models import MemberRole, MemberStatus
from node.members.throttle import PAIR
from tests.web._members import PASSWORD, add_member, csrf_of, sign_in


async def _register(client: httpx.AsyncClient, username: str, **extra: str) -> httpx.Response:
    page = await client.get("/register")
    assert page.status_code == 200
    data = {
        "username": username,
        "display_name": username.title(),
        "password": PASSWORD,
        "password_confirm": PASSWORD,
        "charter_version": "1",
        "accept_charter": "yes",
        "csrf_token": csrf_of(page.text),
        **extra,
    }
    return await client.post("/register", data=data)


async def test_register_then_pending_then_approved(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    response = await _register(client, "marie")
    assert response.status_code == 201
    assert "en attente" in response.text  # French is the chamber's default
    refused = await sign_in(client, "marie")
    assert refused.status_code == 403 and "en attente" in refused.text
    assert (await client.get("/account")).status_code == 303  # no session was given

    await add_member(app, "ada", role=MemberRole.ADMIN)
    admin = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with admin:
        assert (await sign_in(admin, "ada")).status_code == 303
        page = await admin.get("/admin")
        assert "marie" in page.text
        done = await admin.post(
            "/admin/members/marie", data={"action": "approve", "csrf_token": csrf_of(page.text)}
        )
        assert done.status_code == 303
        audit = await admin.get("/admin/audit")
        assert "inscription approuvée" in audit.text and "ada" in audit.text
        assert "member.approve" not in audit.text  # a label, not the internal code
    assert (await sign_in(client, "marie")).status_code == 303
    account = await client.get("/account", headers={"Accept-Language": "en"})
    assert "1 more published brick" in account.text  # no setting: Accept-Language decides
    assert "1 brique publiée de plus" in (await client.get("/account")).text


async def test_a_refused_registration_keeps_what_was_typed(client: httpx.AsyncClient) -> None:
    mismatch = await _register(client, "marie", password_confirm="something else entirely")
    assert mismatch.status_code == 422
    text = mismatch.text
    assert 'value="marie"' in text and 'value="Marie"' in text
    assert 'value="yes" required checked' in text  # the charter box stays ticked
    assert 'id="password_confirm-error"' in text and 'aria-invalid="true"' in text
    assert "Les mots de passe ne correspondent pas." in text
    taken = await _register(client, "lille")  # the chamber's own name is reserved
    assert taken.status_code == 422 and 'id="username-error"' in taken.text
    assert "Choisissez un autre nom d’utilisateur" in taken.text


async def test_registration_refusals(client: httpx.AsyncClient) -> None:
    no_charter = await _register(client, "marie", accept_charter="")
    assert no_charter.status_code == 422
    old_charter = await _register(client, "marie", charter_version="0")
    assert old_charter.status_code == 422
    mismatch = await _register(client, "marie", password_confirm="something else")
    assert mismatch.status_code == 422
    reserved = await _register(client, "admin")
    assert reserved.status_code == 422
    assert (await _register(client, "marie")).status_code == 201
    assert (await _register(client, "marie")).status_code == 409


async def test_every_form_needs_its_csrf_token(app: Starlette, client: httpx.AsyncClient) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    await client.get("/login")
    for path, data in [
        ("/login", {"username": "ada", "password": PASSWORD}),
        ("/register", {"username": "x"}),
    ]:
        response = await client.post(path, data=data, headers={"Accept": "text/html"})
        assert response.status_code == 403, path
    assert (await sign_in(client, "ada")).status_code == 303
    for path, data in [
        ("/logout", {}),
        ("/account/profile", {"display_name": "Ada"}),
        ("/account/password", {"current_password": PASSWORD, "new_password": "x" * 12}),
        ("/account/follow-requests", {"decision": "accept", "follower": "https://x.example/a"}),
        ("/admin/members/ada", {"action": "demote"}),
        ("/admin/charter", {"text": "hello"}),
        ("/admin/blocks", {"host": "spam.example"}),
        ("/admin/remote-content", {"actor": "https://x.example/a", "reason": "spam"}),
    ]:
        response = await client.post(path, data={**data, "csrf_token": "forged"})
        assert response.status_code == 403, path


async def test_suspended_and_refused_members_cannot_sign_in(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN, token=False)
    await add_member(app, "bob")
    await add_member(app, "paul", status=MemberStatus.PENDING)
    assert (await sign_in(client, "ada")).status_code == 303
    page = await client.get("/admin")
    token = csrf_of(page.text)
    await client.post(
        "/admin/members/bob",
        data={"action": "suspend", "reason": "spam", "csrf_token": token, "confirm": "yes"},
    )
    await client.post(
        "/admin/members/paul", data={"action": "refuse", "reason": "not local", "csrf_token": token}
    )
    missing_reason = await client.post(
        "/admin/members/bob",
        data={"action": "refuse", "csrf_token": token},
        headers={"Accept": "text/html"},
    )
    assert missing_reason.status_code in (409, 422)
    last_admin = await client.post(
        "/admin/members/ada",
        data={"action": "demote", "csrf_token": token},
        headers={"Accept": "text/html"},
    )
    assert last_admin.status_code == 409
    other = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with other:
        suspended = await sign_in(other, "bob")
        assert suspended.status_code == 403 and "spam" in suspended.text
        refused = await sign_in(other, "paul")
        assert refused.status_code == 403 and "not local" in refused.text


async def test_member_pages_are_for_admins_only(app: Starlette, client: httpx.AsyncClient) -> None:
    await add_member(app, "bob")
    assert (await client.get("/admin")).status_code == 303
    await sign_in(client, "bob")
    assert (await client.get("/admin", headers={"Accept": "text/html"})).status_code == 403


async def test_sign_in_is_throttled(app: Starlette, client: httpx.AsyncClient) -> None:
    await add_member(app, "bob")
    for _ in range(PAIR.free):
        assert (await sign_in(client, "bob", "wrong password")).status_code == 401
    throttled = await sign_in(client, "bob")
    assert throttled.status_code == 429 and "Retry-After" in throttled.headers


async def test_logout_and_password_change(app: Starlette, client: httpx.AsyncClient) -> None:
    await add_member(app, "bob")
    await sign_in(client, "bob")
    page = await client.get("/account/password")
    token = csrf_of(page.text)
    wrong = await client.post(
        "/account/password",
        data={
            "current_password": "nope nope nope",
            "new_password": "a brand new one",
            "new_password_confirm": "a brand new one",
            "csrf_token": token,
        },
    )
    assert wrong.status_code == 422
    assert 'name="current_password" type="password" aria-invalid="true"' in wrong.text
    assert "Le mot de passe actuel n’est pas le bon." in wrong.text
    ok = await client.post(
        "/account/password",
        data={
            "current_password": PASSWORD,
            "new_password": "a brand new one",
            "new_password_confirm": "a brand new one",
            "csrf_token": token,
        },
    )
    assert ok.status_code == 200
    assert (await client.post("/logout", data={"csrf_token": token})).status_code == 303
    assert (await client.get("/account")).status_code == 303
    assert (await sign_in(client, "bob")).status_code == 401
    assert (await sign_in(client, "bob", "a brand new one")).status_code == 303


async def test_language_follows_the_member_setting(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "bob")
    await sign_in(client, "bob")
    page = await client.get("/account")
    assert "Mon compte" in page.text
    english = await client.get("/account", headers={"Accept-Language": "en"})
    assert "My account" in english.text
    saved = await client.post(
        "/account/profile",
        data={"display_name": "Bob", "language": "fr", "csrf_token": csrf_of(page.text)},
    )
    assert saved.status_code == 303
    page = await client.get("/account", headers={"Accept-Language": "en"})
    assert "Mon compte" in page.text  # the member's setting wins over Accept-Language


async def test_profile_page_shows_contributions(app: Starlette, client: httpx.AsyncClient) -> None:
    from decimal import Decimal

    from node.members.contributions import BrickLink, BrickStats, ClearingStats

    async def bricks(session, member):  # type: ignore[no-untyped-def]
        return BrickStats(
            published=2,
            recent=(BrickLink("Four solaire", "/bricks/1"),),
            rating_average=4.5,
            rating_count=3,
        )

    async def clearing(session, member):  # type: ignore[no-untyped-def]
        return ClearingStats(exchanges=7, balance=Decimal("-12.50"))

    app.state.node.contributions.register_bricks(bricks)
    app.state.node.contributions.register_clearing(clearing)
    await add_member(app, "bob")
    page = await client.get("/@bob", headers={"Accept": "text/html", "Accept-Language": "en"})
    assert "2 published bricks" in page.text and "Four solaire" in page.text
    assert "4.5 out of 5" in page.text and "7 exchanges" in page.text and "-12 h 30" in page.text
    actor = await client.get("/actors/bob", headers={"Accept": "application/activity+json"})
    document = actor.json()
    assert document["ratingAverage"] == 4.5 and document["ratingCount"] == 3
    names = {item["name"]: item["value"] for item in document["attachment"]}
    assert names["Published bricks"] == "2" and names["Clearing balance"] == "-12.50"


async def test_a_refused_profile_keeps_what_was_typed(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    page = await client.get("/account")
    refused = await client.post(
        "/account/profile",
        data={
            "csrf_token": csrf_of(page.text),
            "display_name": "Marie D.",
            "bio": "Jardinière à Fives.",
            "avatar_url": "ftp://example.org/me.png",
        },
    )
    assert refused.status_code == 422
    text = refused.text
    assert 'value="Marie D."' in text and "Jardinière à Fives." in text
    assert 'value="ftp://example.org/me.png"' in text and 'id="avatar_url-error"' in text
    assert "Donnez l’adresse https:// d’une image" in text
    saved = await client.post(
        "/account/profile",
        data={"csrf_token": csrf_of(page.text), "display_name": "Marie D.", "bio": ""},
    )
    assert saved.status_code == 303
    assert "Votre profil est enregistré." in (await client.get("/account")).text
