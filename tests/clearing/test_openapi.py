"""The clearing paths of /api/v1/openapi.json answer as documented."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate
from starlette.applications import Starlette

from tests.bricks.test_openapi import Documented
from tests.clearing.conftest import MakeMember


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_clearing_operations_answer_as_documented(
    app: Starlette, client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    validate(spec)
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
