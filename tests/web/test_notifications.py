"""Notifications: made by the domains in the event's transaction, read through the page and
``/api/v1/notifications``, rendered in the reader's language."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from node.activitypub.models import LocalActor
from node.db import session_scope
from node.members.models import ClearingOverride, MemberRole, MemberStatus
from node.members.service import get_member
from tests.activitypub._remote import (
    BOB,
    FakeRemote,
    activity_body,
    actor_document,
    signed_post,
)
from tests.bricks._helpers import BRICK
from tests.web._members import add_member, csrf_of, sign_in


def bearer(token: str | None) -> dict[str, str]:
    assert token
    return {"Authorization": f"Bearer {token}"}


async def _grant(app: Starlette, *usernames: str) -> None:
    async with session_scope(app.state.node.sessionmaker) as session:
        for username in usernames:
            member = await get_member(session, username)
            member.clearing_override = ClearingOverride.GRANTED


async def _notes(client: httpx.AsyncClient, token: str | None, **headers: str) -> dict:
    response = await client.get("/api/v1/notifications", headers={**bearer(token), **headers})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_member_declared_an_exchange_sees_exchange_proposed(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    alice = await add_member(app, "alice", token=True)
    bob = await add_member(app, "bob", token=True)
    await _grant(app, "alice", "bob")
    assert await _notes(client, bob) == {"items": [], "unread": 0}
    declared = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "@bob@lille.test", "minutes": 90, "description": "Atelier vélo"},
        headers=bearer(alice),
    )
    assert declared.status_code == 201, declared.text
    key = declared.json()["key"]
    got = await _notes(client, bob)
    [item] = got["items"]
    assert got["unread"] == 1
    assert set(item) == {"id", "type", "created_at", "read", "url", "summary"}
    assert item["type"] == "exchange.proposed" and item["read"] is False
    assert item["url"] == f"https://lille.test/exchanges/{key}"
    assert "1 h 30" in item["summary"] and "attend votre validation" in item["summary"]
    english = await _notes(client, bob, **{"Accept-Language": "en"})
    assert "waits for your validation" in english["items"][0]["summary"]
    assert (await _notes(client, alice))["items"] == []  # the declarer is not told

    accepted = await client.post(f"/api/v1/exchanges/{key}/accept", headers=bearer(bob))
    assert accepted.status_code == 200, accepted.text
    assert [i["type"] for i in (await _notes(client, alice))["items"]] == ["exchange.accepted"]

    second = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "@bob@lille.test", "minutes": 30, "description": "Cours"},
        headers=bearer(alice),
    )
    other = second.json()["key"]
    contest = await client.post(
        f"/api/v1/exchanges/{other}/contest", json={"comment": "30 min?"}, headers=bearer(bob)
    )
    assert contest.status_code == 200, contest.text
    refuse = await client.post(f"/api/v1/exchanges/{other}/refuse", headers=bearer(bob))
    assert refuse.status_code == 200, refuse.text
    types = [i["type"] for i in (await _notes(client, alice))["items"]]
    assert types == ["exchange.refused", "exchange.contested", "exchange.accepted"]


async def test_approval_review_unread_count_and_mark_read(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    await add_member(app, "marie", status=MemberStatus.PENDING)
    admin = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with admin:
        assert (await sign_in(admin, "ada")).status_code == 303
        page = await admin.get("/admin")
        approved = await admin.post(
            "/admin/members/marie", data={"action": "approve", "csrf_token": csrf_of(page.text)}
        )
        assert approved.status_code == 303
    paul = await add_member(app, "paul", token=True)
    assert (await sign_in(client, "marie")).status_code == 303
    account = await client.get("/account")
    assert '<a href="/notifications">Notifications <span class="badge">1' in account.text

    csrf = csrf_of(account.text)
    created = await client.post("/api/v1/bricks", json=BRICK, headers={"X-CSRF-Token": csrf})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    reviewed = await client.post(
        f"/api/v1/bricks/{key}/reviews", json={"rating": 4}, headers=bearer(paul)
    )
    assert reviewed.status_code == 201, reviewed.text

    got = (await client.get("/api/v1/notifications")).json()  # the session works too
    # Her first brick met the chamber's rule: her clearing access opened.
    types = [i["type"] for i in got["items"]]
    assert types == ["brick.reviewed", "clearing.opened", "registration.approved"]
    assert got["unread"] == 3 and "4/5" in got["items"][0]["summary"]
    assert "approuvée" in got["items"][2]["summary"]
    page = await client.get("/notifications")
    assert "Le jardin partagé" in page.text and f"/bricks/{key}" in page.text

    review_id = got["items"][0]["id"]
    no_csrf = await client.post("/api/v1/notifications/read", json={"ids": [review_id]})
    assert no_csrf.status_code == 403
    marked = await client.post(
        "/api/v1/notifications/read", json={"ids": [review_id]}, headers={"X-CSRF-Token": csrf}
    )
    assert marked.json() == {"marked": 1, "unread": 2}
    bad = await client.post(
        "/api/v1/notifications/read", json={"ids": ["x"]}, headers={"X-CSRF-Token": csrf}
    )
    assert bad.status_code == 422 and "ids" in bad.json()["error"]
    others = await client.post(  # paul cannot mark marie's
        "/api/v1/notifications/read", json={}, headers=bearer(paul)
    )
    assert others.json() == {"marked": 0, "unread": 0}
    everything = await client.post("/notifications", data={"csrf_token": csrf})
    assert everything.status_code == 303
    got = (await client.get("/api/v1/notifications")).json()
    assert got["unread"] == 0 and all(i["read"] for i in got["items"])
    assert 'class="badge"' not in (await client.get("/account")).text


@pytest.fixture
def remote() -> FakeRemote:
    fake = FakeRemote()
    fake.add(actor_document(BOB))
    return fake


@pytest.fixture
def federation_transport(remote: FakeRemote) -> httpx.AsyncBaseTransport:
    """The app of every test here sends to the fake remote server."""
    return remote.transport()


async def test_a_follow_request_reaches_the_member_through_the_runtime_hook(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    marie = await add_member(app, "marie", token=True)
    async with session_scope(app.state.node.sessionmaker) as session:
        member = await get_member(session, "marie")
        actor = await session.get(LocalActor, member.actor_id)
        assert actor is not None
        actor.manually_approves_followers = True
    follow = {
        "id": f"{BOB}/follows/1",
        "type": "Follow",
        "actor": BOB,
        "object": "https://lille.test/actors/marie",
    }
    response = await signed_post(client, activity_body(follow), path="/actors/marie/inbox")
    assert response.status_code == 202, response.text
    again = await signed_post(client, activity_body(follow), path="/actors/marie/inbox")
    assert again.status_code in (200, 202)
    [item] = (await _notes(client, marie))["items"]
    assert item["type"] == "follow.request"
    assert item["url"] == "https://lille.test/account/follow-requests"
    assert "bob@remote.test" in item["summary"]


async def test_the_api_needs_a_member(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/notifications")).status_code == 401
    refused = await client.post("/api/v1/notifications/read", json={})
    assert refused.status_code == 401 and "error" in refused.json()


async def test_notification_answers_are_as_documented(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    from tests.bricks.test_openapi import Documented, validate_spec

    spec = (await client.get("/api/v1/openapi.json")).json()
    validate_spec(spec)
    doc = Documented(spec)
    marie = await add_member(app, "marie", token=True)
    async with session_scope(app.state.node.sessionmaker) as session:
        from node.members.notifications import notify

        await notify(session, (await get_member(session, "marie")).id, "clearing.opened", "/")
    listing, read = "/api/v1/notifications", "/api/v1/notifications/read"
    doc.check(listing, "get", await client.get(listing))
    doc.check(listing, "get", await client.get(listing, headers=bearer(marie)))
    doc.check(read, "post", await client.post(read, content=b"[", headers=bearer(marie)))
    doc.check(read, "post", await client.post(read, json={"ids": [True]}, headers=bearer(marie)))
    # Found by schemathesis: an id past PostgreSQL's integer was a 500.
    too_big = await client.post(read, json={"ids": [2**31]}, headers=bearer(marie))
    assert too_big.status_code == 422, too_big.text
    doc.check(read, "post", too_big)
    doc.check(read, "post", await client.post(read, json={"ids": [1]}, headers=bearer(marie)))
    doc.check(read, "post", await client.post(read, headers=bearer(marie)))
    doc.check(read, "post", await client.post(read, json={}))
    doc.check(read, "post", await client.post(read, json={}, headers={"X-CSRF-Token": "x"}))
