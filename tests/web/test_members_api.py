"""The JSON API of members and governance, refusal paths included."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from node.activitypub.models import Follow, FollowState, RemoteActor
from node.db import session_scope, utcnow
from node.members.models import MemberRole, MemberStatus
from tests.web._members import PASSWORD, add_member, csrf_of, sign_in


def bearer(token: str | None) -> dict[str, str]:
    assert token
    return {"Authorization": f"Bearer {token}"}


async def test_me_says_roles_and_clearing_access(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "bob", token=True)
    response = await client.get(
        "/api/v1/members/me", headers={**bearer(token), "Accept-Language": "en"}
    )
    assert response.status_code == 200
    me = response.json()
    assert me["username"] == "bob"
    assert me["actor"] == "https://lille.test/actors/bob"
    assert me["roles"] == ["member"]
    assert me["clearing_access"]["allowed"] is False
    # the default rule: one published brick, no waiting time
    assert me["clearing_access"]["missing"] == ["1 more published brick"]


async def test_registration_over_the_api(app: Starlette, client: httpx.AsyncClient) -> None:
    charter = (await client.get("/api/v1/charter")).json()
    body = {"username": "marie", "password": PASSWORD, "charter_version": charter["version"]}
    assert (
        await client.post("/api/v1/register", json={**body, "charter_version": 99})
    ).status_code == 422
    created = await client.post("/api/v1/register", json=body)
    assert created.status_code == 201 and created.json()["status"] == "pending"


async def test_unapproved_members_cannot_use_the_api(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    for status in (MemberStatus.PENDING, MemberStatus.SUSPENDED, MemberStatus.REFUSED):
        token = await add_member(app, f"m_{status}", status=status, token=True)
        response = await client.patch(
            "/api/v1/members/me", json={"bio": "hello"}, headers=bearer(token)
        )
        assert response.status_code == 401, status


async def test_admin_actions_and_refusals(app: Starlette, client: httpx.AsyncClient) -> None:
    admin = await add_member(app, "ada", role=MemberRole.ADMIN, token=True)
    plain = await add_member(app, "bob", token=True)
    await add_member(app, "marie", status=MemberStatus.PENDING)
    forbidden = await client.post(
        "/api/v1/admin/members/marie/approve", json={}, headers=bearer(plain)
    )
    assert forbidden.status_code == 403
    listing = await client.get("/api/v1/admin/members?status=pending", headers=bearer(admin))
    assert [m["username"] for m in listing.json()["members"]] == ["marie"]
    approved = await client.post(
        "/api/v1/admin/members/marie/approve", json={}, headers=bearer(admin)
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    last = await client.post("/api/v1/admin/members/ada/demote", json={}, headers=bearer(admin))
    assert last.status_code == 409 and "no administrator" in last.json()["error"]
    no_reason = await client.post(
        "/api/v1/admin/members/bob/suspend", json={}, headers=bearer(admin)
    )
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    grant = await client.post(
        "/api/v1/admin/members/bob/grant-clearing",
        json={"reason": "founder"},
        headers=bearer(admin),
    )
    assert grant.status_code == 200
    me = (await client.get("/api/v1/members/me", headers=bearer(plain))).json()
    assert me["clearing_access"] == {"allowed": True, "missing": [], "override": "granted"}
    promoted = await client.post(
        "/api/v1/admin/members/bob/promote", json={}, headers=bearer(admin)
    )
    assert promoted.json()["roles"] == ["member", "admin"]
    blocked = await client.post(
        "/api/v1/admin/domain-blocks",
        json={"host": "spam.example", "reason": "spam"},
        headers=bearer(plain),
    )
    assert blocked.json()["blocks"] == [{"host": "spam.example", "reason": "spam"}]
    charter = await client.put(
        "/api/v1/admin/charter", json={"text": "Charte v2", "reason": "typo"}, headers=bearer(admin)
    )
    assert charter.json()["version"] == 2
    audit = (await client.get("/api/v1/admin/audit", headers=bearer(plain))).json()
    assert [(e["by"], e["action"]) for e in reversed(audit["entries"])] == [
        ("ada", "member.approve"),
        ("ada", "clearing.grant"),
        ("ada", "admin.promote"),
        ("bob", "domain.block"),
        ("ada", "charter.edit"),
    ]


async def test_session_api_calls_need_the_csrf_header(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "bob")
    await sign_in(client, "bob")
    assert (await client.get("/api/v1/members/me")).status_code == 200
    refused = await client.patch("/api/v1/members/me", json={"bio": "hi"})
    assert refused.status_code == 403
    token = csrf_of((await client.get("/account")).text)
    accepted = await client.patch(
        "/api/v1/members/me", json={"bio": "hi"}, headers={"X-CSRF-Token": token}
    )
    assert accepted.status_code == 200 and accepted.json()["bio"] == "hi"


async def test_follow_requests_by_hand(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "bob", token=True)
    changed = await client.patch(
        "/api/v1/members/me", json={"manually_approves_followers": True}, headers=bearer(token)
    )
    assert changed.json()["manually_approves_followers"] is True
    actor = await client.get("/actors/bob", headers={"Accept": "application/activity+json"})
    assert actor.json()["manuallyApprovesFollowers"] is True
    carol = "https://remote.example/users/carol"
    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        session.add(
            RemoteActor(
                uri=carol,
                host="remote.example",
                inbox=carol + "/inbox",
                document={"id": carol, "preferredUsername": "carol"},
                fetched_at=utcnow(),
            )
        )
        session.add(
            Follow(
                follower_uri=carol,
                followee_uri="https://lille.test/actors/bob",
                follow_activity_id=carol + "/follows/1",
                state=FollowState.PENDING,
            )
        )
    pending = await client.get("/api/v1/members/me/follow-requests", headers=bearer(token))
    assert [p["actor"] for p in pending.json()["pending"]] == [carol]
    answered = await client.post(
        "/api/v1/members/me/follow-requests",
        json={"actor": carol, "decision": "accept"},
        headers=bearer(token),
    )
    assert answered.status_code == 200 and answered.json()["pending"] == []
    async with session_scope(node.sessionmaker) as session:
        follow = (await session.execute(Follow.__table__.select())).one()
    assert follow.state == FollowState.ACCEPTED
    unknown = await client.post(
        "/api/v1/members/me/follow-requests",
        json={"actor": "https://remote.example/users/nobody", "decision": "reject"},
        headers=bearer(token),
    )
    assert unknown.status_code == 404


async def test_password_change_over_the_api(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "bob", token=True)
    wrong = await client.post(
        "/api/v1/members/me/password",
        json={"current_password": "nope", "new_password": "a brand new one"},
        headers=bearer(token),
    )
    assert wrong.status_code == 422
    ok = await client.post(
        "/api/v1/members/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new one"},
        headers=bearer(token),
    )
    assert ok.status_code == 204
