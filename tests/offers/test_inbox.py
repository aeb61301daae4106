"""Offers from the archipelago: a Proposal is kept from a followed author or chamber, never
from someone else than its author, and forgotten on Delete."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.inbox import InboxContext, InboxDispatcher, InboxIgnored
from node.activitypub.models import Follow, FollowState, StoredActivity
from node.db import read_only, session_scope
from node.offers import register_offer_handlers
from node.offers.models import Offer
from tests.offers.test_as2 import GAND, to_proposal

GAND_CHAMBER = f"{GAND}/actors/gand"
PIET = f"{GAND}/actors/piet"
LOTTE = f"{GAND}/actors/lotte"


async def deliver(app: Starlette, actor: str, activity: dict[str, Any]) -> None:
    dispatcher = InboxDispatcher()
    register_offer_handlers(dispatcher)
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
        for handler in dispatcher.handlers_for(activity["type"]):
            await handler(ctx)


async def remote_offers(app: Starlette) -> list[Offer]:
    async with read_only(app.state.node.sessionmaker) as session:
        return list((await session.execute(select(Offer).where(Offer.local.is_(False)))).scalars())


async def follow(app: Starlette, followee: str) -> None:
    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        session.add(
            Follow(
                follower_uri=node.federation.urls("lille").id,
                followee_uri=followee,
                follow_activity_id=f"https://lille.test/f/{len(followee)}",
                state=FollowState.ACCEPTED,
            )
        )


async def test_a_proposal_from_a_followed_author_is_kept(app: Starlette) -> None:
    await deliver(app, PIET, {"type": "Create", "object": to_proposal()})
    assert await remote_offers(app) == []  # nobody here follows Piet or Gand
    await follow(app, PIET)
    await deliver(app, PIET, {"type": "Create", "object": to_proposal()})
    (offer,) = await remote_offers(app)
    assert (offer.uri, offer.kind, offer.title, offer.minutes) == (
        f"{GAND}/offers/o1",
        "offer",
        "Traduction NL-FR",
        90,
    )
    assert offer.host == "gand.example" and offer.author_uri == PIET
    assert offer.tags == ["traduction", "nl"] and offer.is_open
    await deliver(app, PIET, {"type": "Update", "object": to_proposal(title="Traduction FR-NL")})
    (offer,) = await remote_offers(app)
    assert offer.title == "Traduction FR-NL"
    await deliver(app, PIET, {"type": "Delete", "object": f"{GAND}/offers/o1"})
    assert await remote_offers(app) == []


async def test_a_proposal_whose_author_is_not_the_signer_is_refused(app: Starlette) -> None:
    await follow(app, LOTTE)
    await follow(app, PIET)
    with pytest.raises(InboxIgnored, match="author"):
        await deliver(app, LOTTE, {"type": "Create", "object": to_proposal()})
    with pytest.raises(InboxIgnored, match="origin"):
        await deliver(
            app,
            "https://evil.example/actors/eve",
            {"type": "Create", "object": to_proposal(author="https://evil.example/actors/eve")},
        )
    assert await remote_offers(app) == []


async def test_a_chamber_announces_its_members_offers_and_their_deletion(app: Starlette) -> None:
    await follow(app, GAND_CHAMBER)
    await deliver(app, GAND_CHAMBER, {"type": "Announce", "object": to_proposal()})
    (offer,) = await remote_offers(app)
    assert offer.author_uri == PIET
    # Another origin's announce of the same object is not taken.
    await deliver(
        app,
        "https://other.example/actors/other",
        {"type": "Announce", "object": to_proposal(title="Changed")},
    )
    assert (await remote_offers(app))[0].title == "Traduction NL-FR"
    await deliver(
        app,
        GAND_CHAMBER,
        {
            "type": "Announce",
            "object": {
                "id": f"{PIET}/activities/9",
                "type": "Delete",
                "actor": PIET,
                "object": {"id": f"{GAND}/offers/o1", "type": "Tombstone"},
            },
        },
    )
    assert await remote_offers(app) == []


async def test_a_delete_from_another_origin_is_ignored(app: Starlette) -> None:
    await follow(app, PIET)
    await deliver(app, PIET, {"type": "Create", "object": to_proposal()})
    await deliver(
        app, "https://evil.example/actors/eve", {"type": "Delete", "object": f"{GAND}/offers/o1"}
    )
    assert len(await remote_offers(app)) == 1
