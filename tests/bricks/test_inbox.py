"""Incoming bricks, replies and likes, through the handlers the inbox dispatches to."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.inbox import InboxContext, InboxDispatcher, InboxIgnored
from node.activitypub.models import Follow, FollowState, StoredActivity
from node.bricks.inbox import register_brick_handlers
from node.bricks.models import Brick, BrickReview
from node.db import read_only, session_scope
from node.runtime import register_deletion_handler
from tests.bricks._helpers import BRICK, add_member, bearer
from tests.bricks.test_as2 import to_article

GAND = "https://gand.example"
GAND_CHAMBER = f"{GAND}/actors/gand"
PIET = f"{GAND}/actors/piet"


def gand_article(**changes: Any) -> dict[str, Any]:
    obj = to_article()
    obj.update(
        id=f"{GAND}/bricks/b1",
        url=f"{GAND}/bricks/b1",
        attributedTo=[PIET],
        chamber=GAND_CHAMBER,
    )
    obj.update(changes)
    return obj


async def deliver(app: Starlette, actor: str, activity: dict[str, Any]) -> None:
    dispatcher = InboxDispatcher()
    register_brick_handlers(dispatcher)
    register_deletion_handler(dispatcher)
    node = app.state.node
    activity = {"id": f"{actor}/activities/{len(str(activity))}", "actor": actor, **activity}
    async with session_scope(node.sessionmaker) as session:
        stored = StoredActivity(
            activity_id=activity["id"],
            direction="in",
            actor_uri=actor,
            activity_type=activity["type"],
            document=activity,
        )
        ctx = InboxContext(node.federation, session, activity, actor, None, stored)
        handler = dispatcher.handler_for(await dispatcher.route_of(session, activity))
        if handler is not None:
            try:
                await handler(ctx)
            except InboxIgnored:  # nothing kept, as the inbox does
                await session.rollback()


async def remote_bricks(app: Starlette) -> list[Brick]:
    async with read_only(app.state.node.sessionmaker) as session:
        return list((await session.execute(select(Brick).where(Brick.local.is_(False)))).scalars())


async def follow_gand(app: Starlette, state: str = FollowState.ACCEPTED) -> None:
    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        session.add(
            Follow(
                follower_uri=node.federation.urls("lille").id,
                followee_uri=GAND_CHAMBER,
                follow_activity_id="https://lille.test/f/1",
                state=state,
            )
        )


async def test_nothing_is_kept_from_actors_nobody_follows(app: Starlette) -> None:
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": gand_article()})
    await deliver(app, PIET, {"type": "Create", "object": gand_article()})
    assert await remote_bricks(app) == []


async def test_what_a_followed_actor_sends_before_its_accept_is_kept(app: Starlette) -> None:
    """Our Follow is pending: its Accept and the chamber's next Announce travel separately, and
    the Announce may come first."""
    await follow_gand(app, FollowState.PENDING)
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": gand_article()})
    assert [brick.uri for brick in await remote_bricks(app)] == [f"{GAND}/bricks/b1"]


async def test_nothing_is_kept_from_an_actor_that_refused_our_follow(app: Starlette) -> None:
    await follow_gand(app, FollowState.REJECTED)
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": gand_article()})
    assert await remote_bricks(app) == []


async def test_announced_brick_update_and_delete(app: Starlette) -> None:
    await follow_gand(app)
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": gand_article()})
    [brick] = await remote_bricks(app)
    assert brick.title == "Le jardin partagé" and brick.tag_names == ["jardin", "quartier"]
    assert brick.authors[0].actor_uri == PIET and brick.host == "gand.example"
    assert brick.rating_count == 2 and brick.files and brick.links

    update = {
        "type": "Update",
        "actor": PIET,
        "id": f"{PIET}/u1",
        "object": gand_article(name="Neuf", version=4),
    }
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": update})
    [brick] = await remote_bricks(app)
    assert brick.title == "Neuf" and brick.version == 4

    # another origin cannot touch it
    await deliver(
        app,
        "https://evil.example/actors/x",
        {"type": "Update", "object": gand_article(name="Volé")},
    )
    await deliver(
        app, "https://evil.example/actors/x", {"type": "Delete", "object": f"{GAND}/bricks/b1"}
    )
    [brick] = await remote_bricks(app)
    assert brick.title == "Neuf"

    delete = {
        "type": "Delete",
        "actor": PIET,
        "id": f"{PIET}/d1",
        "object": {"id": f"{GAND}/bricks/b1", "type": "Tombstone"},
    }
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": delete})
    assert await remote_bricks(app) == []


async def test_non_bricks_are_left_alone(app: Starlette) -> None:
    await follow_gand(app)
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": gand_article(category=None)})
    assert await remote_bricks(app) == []


async def test_replies_rate_and_likes_count(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "marie")
    created = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))).json()
    note = {
        "id": f"{PIET}/notes/1",
        "type": "Note",
        "attributedTo": PIET,
        "inReplyTo": created["id"],
        "content": "<p>Utile à Gand<script>x</script></p>",
        "rating": 5,
    }
    await deliver(app, PIET, {"type": "Create", "object": note})
    # A second reply from the same actor replaces the first and keeps its rating.
    await deliver(
        app, PIET, {"type": "Create", "object": {**note, "id": f"{PIET}/n2", "rating": None}}
    )
    await deliver(app, PIET, {"type": "Like", "id": f"{PIET}/likes/1", "object": created["id"]})
    got = (await client.get(f"/api/v1/bricks/{created['key']}")).json()
    assert got["rating_average"] == 5.0 and got["rating_count"] == 1 and got["likes"] == 1
    assert [r["comment"] for r in got["reviews"]] == ["<p>Utile à Gand</p>"]
    profile = await client.get("/@marie", headers={"Accept": "application/activity+json"})
    assert profile.json()["ratingAverage"] == 5.0

    await deliver(app, PIET, {"type": "Undo", "object": {"type": "Like", "id": f"{PIET}/likes/1"}})
    await deliver(app, PIET, {"type": "Delete", "object": f"{PIET}/n2"})
    got = (await client.get(f"/api/v1/bricks/{created['key']}")).json()
    assert got["likes"] == 0 and got["rating_count"] == 0
    async with read_only(app.state.node.sessionmaker) as session:
        assert list((await session.execute(select(BrickReview))).scalars()) == []


async def test_a_remote_actor_rating_again_counts_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await add_member(app, "marie")
    created = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))).json()
    for number, rating in enumerate((2, 4, 5), start=1):
        note = {
            "id": f"{PIET}/notes/{number}",
            "type": "Note",
            "attributedTo": PIET,
            "inReplyTo": created["id"],
            "content": f"<p>Avis {number}</p>",
            "rating": rating,
        }
        await deliver(app, PIET, {"type": "Create", "object": note})
    got = (await client.get(f"/api/v1/bricks/{created['key']}")).json()
    assert got["rating_count"] == 1 and got["rating_average"] == 5.0
    assert [r["comment"] for r in got["reviews"]] == ["<p>Avis 3</p>"]
