"""Offers and needs through the JSON API, on SQLite and PostgreSQL: publish, find (scope,
words, tags), close (federated as Delete), and an exchange declared from an offer."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.models import StoredActivity
from node.clearing.ledger.models import Exchange
from node.db import read_only
from node.offers.models import Offer, OfferStates
from node.process_store import moves_of
from tests.bricks._helpers import add_member, bearer
from tests.bricks.test_delivery_records import LILLE, follows, sent
from tests.offers._helpers import NEED, OFFER, grant_clearing


async def _sent(app: Starlette) -> list[StoredActivity]:
    async with read_only(app.state.node.sessionmaker) as session:
        rows = await session.execute(
            select(StoredActivity)
            .where(StoredActivity.direction == "out")
            .order_by(StoredActivity.id)
        )
        return list(rows.scalars())


async def test_publish_find_and_close(app: Starlette, client: httpx.AsyncClient) -> None:
    marie = await add_member(app, "marie", display_name="Marie Dupont")
    paul = await add_member(app, "paul")
    made = await client.post("/api/v1/offers", json=OFFER, headers=bearer(marie))
    assert made.status_code == 201, made.text
    body = made.json()
    assert set(body) == {"id", "url", "key"}
    assert body["id"] == f"https://lille.test/offers/{body['key']}" == body["url"]
    need = await client.post("/api/v1/offers", json=NEED, headers=bearer(paul))
    assert need.status_code == 201, need.text

    listed = (await client.get("/api/v1/offers", params={"scope": "local"})).json()
    assert [i["title"] for i in listed["items"]] == [NEED["title"], OFFER["title"]]
    item = listed["items"][1]
    assert item["kind"] == "offer" and item["id"] == body["id"] and item["url"] == body["url"]
    assert item["author"]["name"] == "Marie Dupont"
    assert item["author"]["id"] == "https://lille.test/actors/marie"
    assert item["chamber"]["host"] == "lille.test"
    assert item["tags"] == ["traduction", "néerlandais"] and item["minutes"] == 90
    assert (await client.get("/api/v1/offers", params={"scope": "federated"})).json()["items"] == []

    def titles(page: httpx.Response) -> list[str]:
        assert page.status_code == 200, page.text
        return [i["title"] for i in page.json()["items"]]

    assert titles(await client.get("/api/v1/offers", params={"q": "TRADUIS courr"})) == [
        OFFER["title"]
    ]
    # Accented words match whatever their case, on SQLite too.
    assert titles(await client.get("/api/v1/offers", params={"q": "NÉERLANDAIS"})) == [
        OFFER["title"]
    ]
    assert titles(await client.get("/api/v1/offers", params={"tag": "#Écriture"})) == [
        NEED["title"]
    ]
    assert titles(await client.get("/api/v1/offers", params={"tag": "tradu"})) == []
    assert titles(await client.get("/api/v1/offers", params={"q": "100%"})) == []
    assert titles(await client.get("/api/v1/offers", params={"kind": "need"})) == [NEED["title"]]
    first = await client.get("/api/v1/offers", params={"limit": 1})
    assert titles(first) == [NEED["title"]] and first.json()["next_cursor"] is not None
    after = first.json()["next_cursor"]
    assert titles(await client.get("/api/v1/offers", params={"after": after})) == [OFFER["title"]]

    key = body["key"]
    assert (
        await client.post(f"/api/v1/offers/{key}/close", headers=bearer(paul))
    ).status_code == 403
    closed = await client.post(f"/api/v1/offers/{key}/close", headers=bearer(marie))
    assert closed.status_code == 200 and closed.json()["state"] == "closed"
    assert titles(await client.get("/api/v1/offers")) == [NEED["title"]]
    assert (await client.get(f"/api/v1/offers/{key}")).json()["state"] == "closed"
    again = await client.post(f"/api/v1/offers/{key}/close", headers=bearer(marie))
    assert again.status_code == 200
    async with read_only(app.state.node.sessionmaker) as session:
        moves = await moves_of(session, OfferStates, body["id"])
    # Opened and closed once through the offer's graph (the second close changed nothing).
    assert [(m.before, m.after) for m in moves] == [(None, "open"), ("open", "closed")]
    assert (
        await client.post("/api/v1/offers/nope/close", headers=bearer(marie))
    ).status_code == 404


async def test_publishing_sends_a_proposal_and_closing_a_delete(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie")
    key = (await client.post("/api/v1/offers", json=OFFER, headers=bearer(marie))).json()["key"]
    uri = f"https://lille.test/offers/{key}"
    create, announce = await _sent(app)
    assert create.activity_type == "Create" and create.actor_uri.endswith("/actors/marie")
    proposal = create.document["object"]
    assert "Proposal" in proposal["type"] and proposal["purpose"] == "offer"
    assert proposal["publishes"]["resourceQuantity"] == {
        "hasUnit": "hour",
        "hasNumericalValue": "1.5",
    }
    assert "https://lille.test/actors/lille/followers" in create.document["cc"]
    assert {"purpose": "vf:purpose"}.items() <= create.document["@context"][-1].items()
    assert announce.activity_type == "Announce" and announce.document["object"]["id"] == uri
    # The offer's page answers its Proposal to an ActivityPub client.
    as2 = await client.get(f"/offers/{key}", headers={"Accept": "application/activity+json"})
    assert as2.json()["id"] == uri and as2.json()["name"] == OFFER["title"]

    await client.post(f"/api/v1/offers/{key}/close", headers=bearer(marie))
    await client.post(f"/api/v1/offers/{key}/close", headers=bearer(marie))  # nothing new
    sent = await _sent(app)
    assert [s.activity_type for s in sent] == ["Create", "Announce", "Delete", "Undo"]
    delete = sent[2].document
    assert delete["object"] == {
        "id": uri,
        "type": "Tombstone",
        "formerType": "Proposal",
        "deleted": delete["object"]["deleted"],
    }
    assert sent[2].actor_uri.endswith("/actors/marie")
    # The chamber undoes its boost (it announces no Delete: Mastodon takes boosts of posts).
    assert sent[3].actor_uri.endswith("/actors/lille")
    assert sent[3].document["object"]["id"] == announce.document["id"]
    gone = await client.get(f"/offers/{key}", headers={"Accept": "application/activity+json"})
    assert gone.status_code == 410 and gone.json()["type"] == "Tombstone"


async def test_bad_input_is_named(app: Starlette, client: httpx.AsyncClient) -> None:
    marie = await add_member(app, "marie")
    bad = {"kind": "gift", "title": "x", "description": "", "tags": ["a/b"], "minutes": 0}
    answer = await client.post(
        "/api/v1/offers", json={**bad, "bricks": ["javascript:1"]}, headers=bearer(marie)
    )
    assert answer.status_code == 422
    assert set(answer.json()["errors"]) == {
        "kind",
        "title",
        "description",
        "tags",
        "minutes",
        "bricks",
    }
    assert (await client.post("/api/v1/offers", json=OFFER)).status_code == 401
    scope = await client.get("/api/v1/offers", params={"scope": "galaxy"})
    assert scope.status_code == 400 and scope.json()["field"] == "scope"
    limit = await client.get("/api/v1/offers", params={"limit": "1000"})
    assert limit.status_code == 400 and limit.json()["field"] == "limit"
    async with read_only(app.state.node.sessionmaker) as session:
        assert (await session.execute(select(Offer))).first() is None


async def test_an_exchange_declared_from_an_offer_records_it(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie")
    paul = await add_member(app, "paul")
    zoe = await add_member(app, "zoe")
    for name in ("marie", "paul", "zoe"):
        await grant_clearing(app, name)
    offer = (await client.post("/api/v1/offers", json=OFFER, headers=bearer(marie))).json()
    wrong = await client.post(
        "/api/v1/exchanges",
        json={"provider": "zoe", "minutes": 90, "description": "x", "offer": offer["key"]},
        headers=bearer(paul),
    )
    assert wrong.status_code == 422 and wrong.json()["field"] == "offer"
    unknown = await client.post(
        "/api/v1/exchanges",
        json={"provider": "marie", "minutes": 90, "description": "x", "offer": "nope"},
        headers=bearer(paul),
    )
    assert unknown.status_code == 422 and unknown.json()["field"] == "offer"
    made = await client.post(
        "/api/v1/exchanges",
        json={
            "provider": "marie",
            "minutes": 90,
            "description": "Traduction",
            "offer": offer["id"],
        },
        headers=bearer(paul),
    )
    assert made.status_code == 201, made.text
    assert made.json()["offer"] == offer["id"]
    async with read_only(app.state.node.sessionmaker) as session:
        (stored,) = (await session.execute(select(Exchange))).scalars()
    assert stored.offer_uri == offer["id"]
    assert zoe  # a member who is not the author


async def test_closing_reaches_whoever_got_the_offer_through_the_chamber(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """A follower of the chamber only got the offer through its boost: the author's Delete
    reaches it too (the outbox's delivery records), and the boost is undone there."""
    await follows(app, "https://gand.test/users/anne", LILLE, "https://gand.test/inbox")
    marie = await add_member(app, "marie")
    key = (await client.post("/api/v1/offers", json=OFFER, headers=bearer(marie))).json()["key"]
    await client.post(f"/api/v1/offers/{key}/close", headers=bearer(marie))
    assert [(actor, kind, inboxes) for actor, kind, _, inboxes in await sent(app)] == [
        ("marie", "Create", []),
        ("lille", "Announce", ["https://gand.test/inbox"]),
        ("marie", "Delete", ["https://gand.test/inbox"]),
        ("lille", "Undo", ["https://gand.test/inbox"]),
    ]
