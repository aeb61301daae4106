"""Exchange proofs verify from public documents only: activities fetched over HTTP and the
actors' documents, no database."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from node.clearing.activities import hours_value, verify_exchange

from .conftest import MakeMember

AS2 = {"Accept": "application/activity+json"}


async def _public_history(client: httpx.AsyncClient) -> tuple[list[dict[str, Any]], list[Any]]:
    page = (await client.get("/ledger/activities?page=true", headers=AS2)).json()
    activities = [
        (await client.get(item["id"], headers=AS2)).json()
        for item in reversed(page["orderedItems"])
    ]
    actors = {a["actor"] for a in activities}
    documents = [(await client.get(uri, headers=AS2)).json() for uri in actors]
    return activities, documents


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_history_verifies_from_public_documents(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    _, alice = await make_member("alice")
    _, bob = await make_member("bob")
    created = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "bob", "minutes": 150, "description": "Cours de compta"},
        headers=_auth(alice),
    )
    key = created.json()["key"]
    await client.post(
        f"/api/v1/exchanges/{key}/contest", json={"comment": "2 h"}, headers=_auth(bob)
    )
    await client.post(f"/api/v1/exchanges/{key}/amend", json={"minutes": 120}, headers=_auth(alice))
    await client.post(f"/api/v1/exchanges/{key}/accept", headers=_auth(bob))

    activities, actors = await _public_history(client)
    assert [a["type"] for a in activities] == ["Offer", "TentativeReject", "Update", "Accept"]
    result = verify_exchange(activities, actors)
    assert result.ok, result.problems
    assert result.state == "posted" and result.terms is not None
    assert result.terms["minutes"] == 120

    forged = copy.deepcopy(activities)
    forged[-1]["result"]["minutes"] = 1200  # a tampered acceptance
    assert not verify_exchange(forged, actors).ok
    # an acceptance signed by the declarer herself is not an agreement
    replayed = [*activities[:-1], {**activities[0], "type": "Accept"}]
    assert not verify_exchange(replayed, actors).ok
    # without the actors' keys nothing verifies
    assert not verify_exchange(activities, []).ok


def test_hours_are_exact_for_other_software() -> None:
    assert hours_value(120) == 2
    assert hours_value(90) == "1.5"
    assert hours_value(20) == "0.333333"
