"""The clearing and partner paths of /api/v1/openapi.json answer as documented."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from node.config import Settings
from node.members.models import MemberRole
from tests.bricks.test_openapi import Documented, validate_spec
from tests.clearing._chambers import two_chambers
from tests.clearing.conftest import MakeMember
from tests.harness.plugin import OpenArchipelago


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_clearing_operations_answer_as_documented(
    app: Starlette, client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    validate_spec(spec)
    doc = Documented(spec)
    _, marie = await make_member("marie")
    _, paul = await make_member("paul")
    _, newcomer = await make_member("zoe", access=False)

    base = "/api/v1/exchanges"
    declaration = {"beneficiary": "paul", "minutes": 90, "description": "Réparer un vélo"}
    doc.check(base, "post", await client.post(base, json=declaration))
    doc.check(base, "post", await client.post(base, json=declaration, headers=bearer(newcomer)))
    bad = {**declaration, "minutes": 1.5}
    doc.check(base, "post", await client.post(base, json=bad, headers=bearer(marie)))
    created = await client.post(base, json=declaration, headers=bearer(marie))
    doc.check(base, "post", created)
    assert created.status_code == 201, created.text
    key = created.json()["key"]

    doc.check(base, "get", await client.get(base, headers=bearer(paul)))
    doc.check(base, "get", await client.get(base, headers=bearer(newcomer)))
    one = f"{base}/{{key}}"
    doc.check(one, "get", await client.get(f"{base}/{key}", headers=bearer(paul)))
    doc.check(one, "get", await client.get(f"{base}/nope", headers=bearer(paul)))

    action = f"{base}/{{key}}/{{action}}"
    doc.check(action, "post", await client.post(f"{base}/{key}/accept", headers=bearer(marie)))
    accepted = await client.post(f"{base}/{key}/accept", headers=bearer(paul))
    doc.check(action, "post", accepted)
    assert accepted.json()["state"] == "posted"
    doc.check(action, "post", await client.post(f"{base}/{key}/accept", headers=bearer(paul)))
    doc.check(action, "post", await client.post(f"{base}/{key}/dance", headers=bearer(paul)))

    me = "/api/v1/accounts/me"
    account = await client.get(me, headers=bearer(marie))
    doc.check(me, "get", account)
    assert account.json()["balance_minutes"] == 90
    doc.check(me, "get", await client.get(me, headers=bearer(newcomer)))
    summary = await client.get("/api/v1/ledger/summary")
    doc.check("/api/v1/ledger/summary", "get", summary)
    assert summary.json()["sum_minutes"] == 0

    statuses = {status for path, _method, status in doc.checked if path.startswith(base)}
    assert {"201", "401", "403", "422", "200", "404", "409"} <= statuses


async def test_partner_operations_answer_as_documented(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings, credit_line=600) as (lille, _gand):
        client = lille.client
        spec = (await client.get("/api/v1/openapi.json")).json()
        validate_spec(spec)
        doc = Documented(spec)
        admin = await lille.member("ada", role=MemberRole.ADMIN)
        member = await lille.member("marie")
        base = "/api/v1/partners"

        listed = await client.get(base)
        doc.check(base, "get", listed)
        [partner] = listed.json()["items"]
        assert partner["chamber"] == "https://gand.test/actors/gand"
        assert (partner["credit_line_minutes"], partner["balance_minutes"]) == (600, 0)

        addition = {"chamber": "@gand@gand.test", "credit_line_minutes": 900, "reason": "x"}
        doc.check(base, "post", await client.post(base, json=addition))
        doc.check(base, "post", await client.post(base, json=addition, headers=bearer(member)))
        doc.check(base, "post", await client.post(base, content=b"[", headers=bearer(admin)))
        for bad in ({"chamber": ""}, {**addition, "credit_line_minutes": -1}):
            doc.check(base, "post", await client.post(base, json=bad, headers=bearer(admin)))
        unreachable = {**addition, "chamber": "@chamber@roubaix.test"}
        refused = await client.post(base, json=unreachable, headers=bearer(admin))
        doc.check(base, "post", refused)
        assert refused.status_code == 422
        added = await client.post(base, json=addition, headers=bearer(admin))
        doc.check(base, "post", added)
        assert added.status_code == 201 and added.json()["credit_line_minutes"] == 900

        change = {"credit_line_minutes": 300, "reason": "less"}
        query = {"chamber": partner["chamber"]}
        doc.check(base, "patch", await client.patch(base, params=query, json=change))
        changed = await client.patch(base, params=query, json=change, headers=bearer(admin))
        doc.check(base, "patch", changed)
        assert changed.json()["credit_line"] == "5 h 00"
        stranger = {"chamber": "https://roubaix.test/actors/roubaix"}
        unknown = await client.patch(base, params=stranger, json=change, headers=bearer(admin))
        doc.check(base, "patch", unknown)
        assert unknown.status_code == 404
        negative = {**change, "credit_line_minutes": -5}
        for body, token in ((negative, admin), (change, member)):
            answer = await client.patch(base, params=query, json=body, headers=bearer(token))
            doc.check(base, "patch", answer)
        not_json = await client.patch(base, params=query, content=b"1", headers=bearer(admin))
        doc.check(base, "patch", not_json)

    statuses = {(method, status) for path, method, status in doc.checked if path == base}
    assert {("get", "200"), ("post", "201"), ("patch", "200")} <= statuses
    assert {"400", "401", "403", "404", "422"} <= {status for _m, status in statuses}
