"""A signed exchange activity is evidence: nobody's later ``Update`` rewrites it (issue 13).

Alice (Lille) declares an exchange with Bob (Gand); Gand keeps her signed ``Offer`` as the
first step of its copy's history. Alice then sends an ``Update`` of an object with the
exchange's id which is not an amendment (a ``Note``, which the timeline handles): Gand must
keep the signed ``Offer`` as it was signed, and the exchange as it was."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from node.activitypub.models import StoredActivity
from node.activitypub.outbox import publish
from node.clearing.exchanges.activities import verify_exchange
from node.config import Settings
from node.db import read_only, session_scope
from tests.clearing._chambers import (
    ClearingChamber,
    actor_documents,
    bearer,
    exchange_document,
    two_chambers,
)
from tests.harness.plugin import OpenArchipelago


async def _declared(lille: ClearingChamber, gand: ClearingChamber) -> tuple[str, str, str]:
    """Alice declares 1 h for Bob; Gand has its copy. Returns (exchange URI, key at Gand,
    Bob's token)."""
    alice = await lille.member("alice")
    bob = await gand.member("bob")
    declared = await lille.client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "@bob@gand.test", "minutes": 60, "description": "Un atelier"},
        headers=bearer(alice),
    )
    assert declared.status_code == 201, declared.text
    await lille.deliver()
    [copy] = (await gand.client.get("/api/v1/exchanges", headers=bearer(bob))).json()["items"]
    document = await exchange_document(gand, copy["key"])
    return document["id"], copy["key"], bob


async def _send_as_alice(lille: ClearingChamber, activity: dict[str, Any]) -> None:
    async with session_scope(lille.node.sessionmaker) as session:
        actor = await lille.local_actor("alice")
        await publish(
            lille.federation, session, actor, activity, inboxes=["https://gand.test/inbox"]
        )
    await lille.deliver()


async def test_an_update_of_the_exchange_keeps_its_signed_offer(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        uri, key, bob = await _declared(lille, gand)
        before = await exchange_document(gand, key)
        alice_uri = before["history"][0]["actor"]
        await _send_as_alice(
            lille,
            {
                "type": "Update",
                "to": ["https://gand.test/users/bob"],
                "object": {
                    "id": uri,
                    "type": "Note",
                    "attributedTo": alice_uri,
                    "content": "rewritten",
                    "minutes": 6000,
                },
            },
        )
        after = await exchange_document(gand, key)
        assert after["history"] == before["history"]  # the signed Offer, untouched
        assert (after["state"], after["minutes"], after["version"]) == ("proposed", 60, 1)
        async with read_only(gand.node.sessionmaker) as session:
            offer = (
                await session.execute(
                    select(StoredActivity).where(
                        StoredActivity.activity_id == before["history"][0]["id"]
                    )
                )
            ).scalar_one()
        assert offer.document == before["history"][0]
        actors = await actor_documents(gand, {alice_uri})
        result = verify_exchange(after["history"], actors, expected_state=after["state"])
        assert result.ok, result.problems
        shown = await gand.client.get(f"/api/v1/exchanges/{key}", headers=bearer(bob))
        assert shown.json()["minutes"] == 60


async def test_a_delete_of_the_exchange_keeps_its_signed_offer(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        uri, key, _ = await _declared(lille, gand)
        before = await exchange_document(gand, key)
        await _send_as_alice(
            lille, {"type": "Delete", "to": ["https://gand.test/users/bob"], "object": uri}
        )
        after = await exchange_document(gand, key)
        assert after["history"] == before["history"]
        assert after["state"] == "proposed"
