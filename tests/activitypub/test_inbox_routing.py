"""Typed inbox routing: one handler per (activity type, object type), one place for "ignored".

Before, every handler of an activity type ran on every activity of that type and each
checked the object itself: any of them could veto the others (the timeline ignored a reply
to one of our bricks that a stranger did not address to anybody), and an activity that no
handler cared about was stored and answered "accepted".
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.inbox import ACTOR, ANY, InboxContext, InboxDispatcher
from node.activitypub.models import StoredActivity
from node.bricks.models import BrickReview
from node.db import read_only, session_scope
from tests.activitypub._remote import (
    BOB,
    LILLE,
    FakeRemote,
    activity_body,
    count,
    signed_post,
)
from tests.bricks._helpers import BRICK, add_member, bearer


async def _nothing(ctx: InboxContext) -> None:
    return None


async def _other(ctx: InboxContext) -> None:
    return None


def test_one_handler_per_pair() -> None:
    dispatcher = InboxDispatcher()
    dispatcher.register("Undo", "Like", _nothing)
    with pytest.raises(ValueError, match="Undo of Like already has a handler"):
        dispatcher.register("Undo", "Like", _other)


def test_the_most_precise_registration_wins() -> None:
    dispatcher = InboxDispatcher()
    dispatcher.register("Undo", ANY, _nothing)
    dispatcher.register("Undo", ("Offer", "Settlement"), _other)
    assert dispatcher.handler_for(("Undo", "Offer", "Settlement")) is _other
    assert dispatcher.handler_for(("Undo", "Offer", "EconomicEvent")) is _nothing
    assert dispatcher.handler_for(("Undo",)) is _nothing
    assert dispatcher.handler_for(("Like", "Article")) is None


async def test_a_bare_object_routes_on_the_stored_activity_it_names(app: Starlette) -> None:
    dispatcher = InboxDispatcher()
    like = {"id": f"{BOB}/likes/1", "type": "Like", "actor": BOB, "object": f"{LILLE}/b/1"}
    offer = {
        "id": f"{LILLE}/offers/1",
        "type": "Offer",
        "actor": LILLE,
        "object": {"id": f"{LILLE}/settlements/1", "type": "Settlement"},
    }
    async with session_scope(app.state.node.sessionmaker) as session:
        for document, direction in ((like, "in"), (offer, "out")):
            session.add(
                StoredActivity(
                    activity_id=document["id"],
                    direction=direction,
                    actor_uri=document["actor"],
                    activity_type=document["type"],
                    document=document,
                )
            )
    async with read_only(app.state.node.sessionmaker) as session:

        async def route(activity: dict[str, Any]) -> tuple[str, ...]:
            return await dispatcher.route_of(session, {"actor": BOB, **activity})

        assert await route({"type": "Undo", "object": like["id"]}) == ("Undo", "Like")
        assert await route({"type": "Accept", "object": offer["id"]}) == (
            "Accept",
            "Offer",
            "Settlement",
        )
        assert await route(
            {"type": "Undo", "object": {"type": "Accept", "object": offer["id"]}}
        ) == (
            "Undo",
            "Accept",
            "Offer",
            "Settlement",
        )
        assert await route({"type": "Delete", "object": BOB}) == ("Delete", ACTOR)
        assert await route({"type": "Update", "object": {"id": BOB, "type": "Person"}}) == (
            "Update",
            ACTOR,
        )
        assert await route({"type": "Follow", "object": LILLE}) == ("Follow",)
        assert await route({"type": "Create", "object": {"type": "Note"}}) == ("Create", "Note")


async def test_an_answer_to_nothing_we_know_is_ignored_and_not_stored(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    activity = {
        "id": f"{BOB}/accepts/1",
        "type": "Accept",
        "actor": BOB,
        "object": f"{BOB}/something/we/never/saw",
    }
    response = await signed_post(client, activity_body(activity))
    assert response.status_code == 202, response.text
    assert response.json() == {
        "status": "Accept of this object is ignored here",
        "reason": "unhandledObject",
    }
    assert await count(app, StoredActivity) == 0


async def test_no_other_domain_vetoes_a_reply_to_one_of_our_bricks(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    """A stranger's reply to a brick of ours is the bricks' business, whoever it addresses."""
    token = await add_member(app, "marie")
    created = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))).json()
    note = {
        "id": f"{BOB}/notes/1",
        "type": "Note",
        "attributedTo": BOB,
        "inReplyTo": created["id"],
        "content": "<p>useful</p>",
        "rating": 4,
    }
    activity = {"id": f"{BOB}/creates/1", "type": "Create", "actor": BOB, "object": note}
    response = await signed_post(client, activity_body(activity))
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted", "reason": "accepted"}
    async with read_only(app.state.node.sessionmaker) as session:
        reviews = list((await session.execute(select(BrickReview))).scalars())
    assert [(r.author_uri, r.rating) for r in reviews] == [(BOB, 4)]


async def test_a_hostile_object_id_routes_nowhere(app: Starlette) -> None:
    dispatcher = InboxDispatcher()
    async with read_only(app.state.node.sessionmaker) as session:
        for uri in (f"{BOB}/\x00", f"{BOB}/{'x' * 3000}"):
            activity = {"type": "Undo", "actor": BOB, "object": uri}
            assert await dispatcher.route_of(session, activity) == ("Undo",)


async def test_each_item_of_an_array_routes_on_its_own(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """A ``Create`` of several objects: each reaches its own handler, an item nothing is
    registered for is skipped, and the activity is ignored only when no item routes."""
    seen: list[str] = []

    async def notes(ctx: InboxContext) -> None:
        seen.append(ctx.object["id"])

    dispatcher = InboxDispatcher()
    dispatcher.register("Create", "Note", notes)
    app.state.node.dispatcher = dispatcher
    note = {"id": f"{BOB}/notes/1", "type": "Note", "attributedTo": BOB}
    poll = {"id": f"{BOB}/polls/1", "type": "Question", "attributedTo": BOB}

    both = {"id": f"{BOB}/creates/1", "type": "Create", "actor": BOB, "object": [poll, note]}
    response = await signed_post(client, activity_body(both))
    assert response.status_code == 202, response.text
    assert response.json()["reason"] == "accepted"
    assert seen == [note["id"]]
    assert await count(app, StoredActivity) == 1

    only_poll = {"id": f"{BOB}/creates/2", "type": "Create", "actor": BOB, "object": [poll]}
    response = await signed_post(client, activity_body(only_poll))
    assert response.json()["reason"] == "unhandledObject"
    assert await count(app, StoredActivity) == 1
