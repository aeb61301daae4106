"""Updates and deletes go where the object went (issue 16, finding 1).

A follower of the chamber only gets the brick through the chamber's boost: the author's
``Update`` and ``Delete`` must reach it too, from the author (Mastodon takes boosts of posts
only, so no ``Announce(Update)``), once per shared inbox, and the boost is undone after the
delete. A note that went to a mentioned actor is updated there too.
"""

from __future__ import annotations

from collections import defaultdict

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.models import Delivery, Follow, FollowState, RemoteActor, StoredActivity
from node.db import read_only, session_scope, utcnow
from node.jobs import Job
from tests.activitypub._remote import actor_document
from tests.bricks._helpers import BRICK, add_member, bearer

LILLE = "https://lille.test/actors/lille"
MARIE = "https://lille.test/actors/marie"
# Two actors of one host follow the chamber only: one shared inbox for both.
ANNE = "https://gand.test/users/anne"
LUC = "https://gand.test/users/luc"
GAND_SHARED = "https://gand.test/inbox"
# One actor follows the author only.
BOB = "https://liege.test/users/bob"


async def follows(app: Starlette, follower: str, followee: str, shared: str | None) -> None:
    document = actor_document(follower, shared_inbox=shared)
    now = utcnow()
    async with session_scope(app.state.node.sessionmaker) as session:
        known = await session.execute(select(RemoteActor.id).where(RemoteActor.uri == follower))
        if known.first() is None:
            session.add(
                RemoteActor(
                    uri=follower,
                    host=follower.split("/")[2],
                    inbox=document["inbox"],
                    shared_inbox=shared,
                    rsa_key_id=document["publicKey"]["id"],
                    rsa_public_pem=document["publicKey"]["publicKeyPem"],
                    document=document,
                    fetched_at=now,
                )
            )
        session.add(
            Follow(
                follower_uri=follower,
                followee_uri=followee,
                follow_activity_id=f"{follower}/follows/{followee.rsplit('/', 1)[-1]}",
                state=FollowState.ACCEPTED,
                created_at=now,
                updated_at=now,
            )
        )


async def sent(app: Starlette) -> list[tuple[str, str, str, list[str]]]:
    """(actor, type, type of the object, inboxes) of every activity sent, in order."""
    async with read_only(app.state.node.sessionmaker) as session:
        activities = list(
            (
                await session.execute(
                    select(StoredActivity)
                    .where(StoredActivity.direction == "out")
                    .order_by(StoredActivity.id)
                )
            ).scalars()
        )
        jobs = list((await session.execute(select(Job).where(Job.kind == "deliver"))).scalars())
    inboxes: dict[int, list[str]] = defaultdict(list)
    for job in jobs:
        assert job.activity_pk is not None
        inboxes[job.activity_pk].append(job.payload["inbox"])
    return [
        (
            a.actor_uri.rsplit("/", 1)[-1],
            a.activity_type,
            str(a.document["object"].get("type")),
            sorted(inboxes[a.id]),
        )
        for a in activities
    ]


async def test_update_and_delete_reach_every_inbox_the_brick_went_to(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie", display_name="Marie")
    await follows(app, ANNE, LILLE, GAND_SHARED)
    await follows(app, LUC, LILLE, GAND_SHARED)
    await follows(app, BOB, MARIE, None)

    created = await client.post("/api/v1/bricks", json=BRICK, headers=bearer(marie))
    key = created.json()["key"]
    await client.patch(f"/api/v1/bricks/{key}", json={"title": "Autre"}, headers=bearer(marie))
    assert (await client.delete(f"/api/v1/bricks/{key}", headers=bearer(marie))).status_code == 204

    everyone = sorted([GAND_SHARED, f"{BOB}/inbox"])
    assert await sent(app) == [
        ("marie", "Create", "Article", [f"{BOB}/inbox"]),
        ("lille", "Announce", "Article", [GAND_SHARED]),
        ("marie", "Update", "Article", everyone),
        ("marie", "Delete", "Tombstone", everyone),
        ("lille", "Undo", "Announce", everyone),
    ]
    async with read_only(app.state.node.sessionmaker) as session:
        recorded = sorted(
            (
                await session.execute(
                    select(Delivery.inbox).where(Delivery.object_id.like("%/bricks/%"))
                )
            )
            .scalars()
            .all()
        )
    assert recorded == everyone

    # The deleted brick answers 410 Gone with a Tombstone to fediverse servers.
    gone = await client.get(f"/bricks/{key}", headers={"Accept": "application/activity+json"})
    assert gone.status_code == 410
    assert gone.headers["content-type"].startswith("application/activity+json")
    assert gone.json()["type"] == "Tombstone" and gone.json()["formerType"] == "Article"
    assert gone.json()["id"] == f"https://lille.test/bricks/{key}"


async def test_a_review_edit_reaches_the_inboxes_of_the_first_review(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie")
    paul = await add_member(app, "paul")
    key = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(marie))).json()["key"]
    await follows(app, BOB, "https://lille.test/actors/paul", None)
    await client.post(f"/api/v1/bricks/{key}/reviews", json={"rating": 3}, headers=bearer(paul))
    # Bob stops following Paul; the edited review still reaches the inbox that got it.
    async with session_scope(app.state.node.sessionmaker) as session:
        follow = (
            await session.execute(select(Follow).where(Follow.follower_uri == BOB))
        ).scalar_one()
        await session.delete(follow)
    await client.post(f"/api/v1/bricks/{key}/reviews", json={"rating": 5}, headers=bearer(paul))
    reviews = [row for row in await sent(app) if row[0] == "paul"]
    assert reviews == [
        ("paul", "Create", "Note", [f"{BOB}/inbox"]),
        ("paul", "Update", "Note", [f"{BOB}/inbox"]),
    ]
