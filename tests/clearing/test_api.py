"""The clearing house JSON API, and the seed's A/B/C example through it."""

from __future__ import annotations

import httpx

from .conftest import MakeMember


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _pay(
    client: httpx.AsyncClient, provider: str, beneficiary: str, beneficiary_token: str, minutes: int
) -> None:
    """``beneficiary`` pays ``provider``: the provider declares, the beneficiary validates."""
    response = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": f"@{beneficiary}@lille.test", "minutes": minutes, "description": "x"},
        headers=_auth(provider),
    )
    assert response.status_code == 201, response.text
    key = response.json()["key"]
    accepted = await client.post(
        f"/api/v1/exchanges/{key}/accept", headers=_auth(beneficiary_token)
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "posted"


async def test_seed_example_a_b_c(client: httpx.AsyncClient, make_member: MakeMember) -> None:
    """A, B and C open at zero; A buys 100 from B, B buys 100 from C, C buys 100 from A:
    all are back to zero and 300 have been exchanged, with no money paid in."""
    _, a = await make_member("a")
    _, b = await make_member("b")
    _, c = await make_member("c")
    for token in (a, b, c):
        me = (await client.get("/api/v1/accounts/me", headers=_auth(token))).json()
        assert me["balance_minutes"] == 0
    await _pay(client, b, "a", a, 100)  # A -> B
    assert (await client.get("/api/v1/accounts/me", headers=_auth(a))).json()[
        "balance_minutes"
    ] == -100
    await _pay(client, c, "b", b, 100)  # B -> C
    await _pay(client, a, "c", c, 100)  # C -> A
    for token in (a, b, c):
        me = (await client.get("/api/v1/accounts/me", headers=_auth(token))).json()
        assert me["balance_minutes"] == 0
        assert me["floor_minutes"] == -1200 and me["ceiling_minutes"] is None
    summary = (await client.get("/api/v1/ledger/summary")).json()
    assert summary["sum_minutes"] == 0
    assert summary["exchanges_posted"] == 3
    assert summary["volume_minutes"] == 300


async def test_declare_validation_idempotency_and_listing(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    _, alice = await make_member("alice")
    _, bob = await make_member("bob")
    body = {
        "beneficiary": "https://lille.test/actors/bob",
        "duration": "1 h 30",
        "description": "Atelier vélo",
        "bricks": ["https://lille.test/bricks/1"],
    }
    headers = {**_auth(alice), "Idempotency-Key": "abc"}
    first = await client.post("/api/v1/exchanges", json=body, headers=headers)
    again = await client.post("/api/v1/exchanges", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["key"] == again.json()["key"]
    assert again.headers["idempotent-replayed"] == "true"
    created = first.json()
    assert {k: created[k] for k in ("state", "minutes", "role")} == {
        "state": "proposed",
        "minutes": 90,
        "role": "provider",
    }
    assert created["id"] == f"https://lille.test/exchanges/{created['key']}"
    different = await client.post("/api/v1/exchanges", json={**body, "minutes": 5}, headers=headers)
    assert different.status_code == 422

    listed = (
        await client.get("/api/v1/exchanges?role=beneficiary&state=proposed", headers=_auth(bob))
    ).json()["items"]
    assert [i["key"] for i in listed] == [created["key"]]
    item = listed[0]
    assert set(item) >= {"key", "id", "state", "provider", "beneficiary", "minutes", "description"}
    assert (await client.get("/api/v1/exchanges?role=provider", headers=_auth(bob))).json()[
        "items"
    ] == []
    pending = (await client.get("/api/v1/accounts/me", headers=_auth(bob))).json()["pending"]
    assert [p["key"] for p in pending] == [created["key"]]

    contest = await client.post(
        f"/api/v1/exchanges/{created['key']}/contest",
        json={"comment": "plutôt 1 h"},
        headers=_auth(bob),
    )
    assert contest.json()["state"] == "contested"
    amend = await client.post(
        f"/api/v1/exchanges/{created['key']}/amend", json={"minutes": 60}, headers=_auth(alice)
    )
    assert amend.json()["state"] == "proposed" and amend.json()["minutes"] == 60
    wrong = await client.post(f"/api/v1/exchanges/{created['key']}/accept", headers=_auth(alice))
    assert wrong.status_code == 409
    refuse = await client.post(f"/api/v1/exchanges/{created['key']}/refuse", headers=_auth(bob))
    assert refuse.json()["state"] == "refused"


async def test_refusals(client: httpx.AsyncClient, make_member: MakeMember) -> None:
    _, alice = await make_member("alice")
    _, bob = await make_member("bob")
    _, newcomer = await make_member("newcomer", access=False)
    closed = await client.get("/api/v1/accounts/me", headers=_auth(newcomer))
    assert closed.status_code == 403
    assert closed.json()["missing"]
    remote = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "@marie@gand.test", "minutes": 60, "description": "x"},
        headers=_auth(alice),
    )
    assert remote.status_code == 422
    assert "cannot be reached" in remote.json()["error"]  # gand.test does not resolve
    to_closed = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "newcomer", "minutes": 60, "description": "x"},
        headers=_auth(alice),
    )
    assert to_closed.status_code == 422
    for bad in ({"minutes": 0}, {"minutes": 1.5}, {"minutes": "60"}, {"description": ""}):
        response = await client.post(
            "/api/v1/exchanges",
            json={"beneficiary": "bob", "minutes": 60, "description": "x", **bad},
            headers=_auth(alice),
        )
        assert response.status_code == 422, bad
    big = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "bob", "minutes": 21 * 60, "description": "x"},
        headers=_auth(alice),
    )
    breach = await client.post(f"/api/v1/exchanges/{big.json()['key']}/accept", headers=_auth(bob))
    assert breach.status_code == 409
    assert "floor" in breach.json()["error"]
    assert (await client.get("/api/v1/ledger/summary")).json()["sum_minutes"] == 0
    assert (await client.get("/api/v1/exchanges")).status_code == 401


async def test_public_pages_and_documents(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    _, alice = await make_member("alice")
    _, bob = await make_member("bob")
    await _pay(client, alice, "bob", bob, 45)
    as2 = {"Accept": "application/activity+json"}
    collection = (await client.get("/ledger?page=true", headers=as2)).json()
    exchange = collection["orderedItems"][0]
    assert exchange["type"] == "EconomicEvent" and exchange["minutes"] == 45
    assert exchange["effortQuantity"] == {"hasUnit": "om2:hour", "hasNumericalValue": "0.75"}
    document = (await client.get(exchange["id"], headers=as2)).json()
    assert document["state"] == "posted"
    activities = (await client.get("/ledger/activities?page=true")).json()["orderedItems"]
    assert [a["type"] for a in activities] == ["Accept", "Offer"]
    served = await client.get(activities[0]["id"], headers=as2)
    assert served.status_code == 200 and served.json()["proof"]
    page = await client.get("/ledger", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "alice" in page.text
    csv = await client.get("/ledger.csv")
    assert csv.status_code == 200 and "45" in csv.text
    html = await client.get(exchange["id"], headers={"Accept": "text/html"})
    assert html.status_code == 200


async def test_an_administrator_overrides_a_members_limits(
    app,
    client,
    make_member,  # type: ignore[no-untyped-def]
) -> None:
    from sqlalchemy import select

    from node.db import read_only, session_scope
    from node.members.audit import AuditEntry
    from node.members.models import MemberRole

    admin, admin_token = await make_member("anne")
    async with session_scope(app.state.node.sessionmaker) as session:
        (await session.get(type(admin), admin.id)).role = MemberRole.ADMIN  # type: ignore[union-attr]
    _, paul = await make_member("paul")
    _, marie = await make_member("marie")
    url = "/api/v1/admin/accounts/paul/limits"
    body = {"floor_minutes": -60, "ceiling_minutes": None, "reason": "new member, small start"}

    refused = await client.put(url, json=body, headers={"Authorization": f"Bearer {paul}"})
    assert refused.status_code == 403
    bad = await client.put(
        url, json={**body, "floor_minutes": 1.5}, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert bad.status_code == 422 and "floor_minutes" in bad.json()["fields"]
    positive = await client.put(
        url, json={**body, "floor_minutes": 30}, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert positive.status_code == 422
    no_reason = await client.put(
        url, json={**body, "reason": " "}, headers={"Authorization": f"Bearer {admin_token}"}
    )
    assert no_reason.status_code == 422

    done = await client.put(url, json=body, headers={"Authorization": f"Bearer {admin_token}"})
    assert done.status_code == 200, done.text
    assert done.json()["floor_minutes"] == -60
    me = await client.get("/api/v1/accounts/me", headers={"Authorization": f"Bearer {paul}"})
    assert me.json()["floor_minutes"] == -60

    # The new floor holds: 1 h 30 received would take paul below -1 h 00.
    declared = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "paul", "minutes": 90, "description": "Cours de cuisine"},
        headers={"Authorization": f"Bearer {marie}"},
    )
    key = declared.json()["key"]
    accepted = await client.post(
        f"/api/v1/exchanges/{key}/accept", headers={"Authorization": f"Bearer {paul}"}
    )
    assert accepted.status_code == 409
    assert "-1 h 00" in accepted.json()["error"]

    async with read_only(app.state.node.sessionmaker) as session:
        entries = list(
            (
                await session.execute(
                    select(AuditEntry).where(AuditEntry.action == "clearing.limit")
                )
            ).scalars()
        )
    assert [(e.target, e.reason) for e in entries] == [("paul", "new member, small start")]
