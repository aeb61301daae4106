"""Remote changes reach our copies (issue 16, findings 3 to 5), through signed POSTs.

A remote ``Delete`` from the owner removes what we kept (the inbox API no longer serves it),
one from anybody else changes nothing; an ``Update`` replaces the copy; an actor's ``Update``
refreshes our cached actor and the names our bricks show; arrays of objects, a single string
in ``to`` and an ``attributedTo`` object are taken as the spec allows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.models import Follow, FollowState, RemoteActor
from node.bricks.models import Brick
from node.config import Settings
from node.db import read_only, session_scope
from tests.activitypub._keys import OTHER_KEY
from tests.activitypub._remote import (
    BOB,
    CAROL,
    LILLE,
    FakeRemote,
    activity_body,
    actor_document,
    signed_post,
)
from tests.bricks._helpers import add_member, bearer
from tests.bricks.test_as2 import to_article
from tests.harness.chambers import quiet_app

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
NOTE = f"{BOB}/notes/1"


@pytest.fixture
async def node(settings: Settings) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    remote = FakeRemote()
    remote.add(actor_document(BOB))
    remote.add(actor_document(CAROL))
    async with (
        quiet_app(settings, transport=remote.transport()) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.url) as client,
    ):
        async with session_scope(app.state.node.sessionmaker) as session:
            session.add(
                Follow(
                    follower_uri=LILLE,
                    followee_uri=BOB,
                    follow_activity_id=f"{LILLE}/follows/1",
                    state=FollowState.ACCEPTED,
                )
            )
        yield app, client


async def post(client: httpx.AsyncClient, actor: str, n: int, **activity: Any) -> None:
    body = activity_body({"id": f"{actor}/activities/{n}", "actor": actor, **activity})
    response = await signed_post(client, body, key_id=f"{actor}#main-key")
    assert response.status_code == 202, response.text
    assert response.json()["reason"] == "accepted", response.text


def note(content: str) -> dict[str, Any]:
    return {"id": NOTE, "type": "Note", "attributedTo": BOB, "content": content, "to": PUBLIC}


async def inbox_items(app: Starlette, client: httpx.AsyncClient) -> list[dict[str, Any]]:
    token = getattr(app.state, "test_token", None) or await add_member(app, "reader")
    app.state.test_token = token
    answer = await client.get("/api/v1/inbox", headers=bearer(token))
    assert answer.status_code == 200
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def contents(items: list[dict[str, Any]]) -> list[str]:
    return [
        item["activity"]["object"]["content"]
        for item in items
        if isinstance(item["activity"].get("object"), dict)
        and "content" in item["activity"]["object"]
    ]


async def test_the_owners_update_and_delete_change_our_copy_nobody_elses(
    node: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, client = node
    await post(client, BOB, 1, type="Create", object=note("Bonjour"), to=PUBLIC)
    assert contents(await inbox_items(app, client)) == ["Bonjour"]

    await post(client, BOB, 2, type="Update", object=note("Bonsoir"), to=PUBLIC)
    assert contents(await inbox_items(app, client)) == ["Bonsoir", "Bonsoir"]

    # Carol is on the same host but does not own the note: her Delete changes nothing.
    await post(client, CAROL, 3, type="Delete", object=NOTE)
    assert "Bonsoir" in contents(await inbox_items(app, client))

    await post(client, BOB, 4, type="Delete", object={"id": NOTE, "type": "Tombstone"})
    items = await inbox_items(app, client)
    assert contents(items) == []
    assert [(item["type"], item["actor"]) for item in items] == [("Delete", BOB)]


async def test_a_create_of_several_objects_is_taken_item_by_item(
    node: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, client = node

    def brick(n: int) -> dict[str, Any]:
        article = to_article()
        article.update(
            id=f"https://remote.test/bricks/{n}",
            url=f"https://remote.test/bricks/{n}",
            name=f"Brique {n}",
            attributedTo={"id": BOB, "type": "Person"},  # an object, not a URL
            chamber=None,
        )
        return article

    await post(client, BOB, 1, type="Create", object=[brick(1), brick(2)], to=PUBLIC, cc=LILLE)
    async with read_only(app.state.node.sessionmaker) as session:
        titles = sorted((await session.execute(select(Brick.title))).scalars())
    assert titles == ["Brique 1", "Brique 2"]

    await post(client, BOB, 2, type="Delete", object=[brick(1)["id"], brick(2)["id"]])
    async with read_only(app.state.node.sessionmaker) as session:
        assert list((await session.execute(select(Brick.title))).scalars()) == []


async def test_an_actors_update_refreshes_our_copy_and_the_names_we_show(
    node: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, client = node
    article = to_article()
    article.update(
        id="https://remote.test/bricks/1", url="https://remote.test/bricks/1", attributedTo=[BOB]
    )
    await post(client, BOB, 1, type="Create", object=article, to=[PUBLIC])
    page = await client.get("/bricks", headers={"Accept": "text/html"})
    assert '<a href="/@bob@remote.test">bob</a>' in page.text  # (node.web.people)

    renamed = {
        **actor_document(BOB, OTHER_KEY),
        "name": "Robert",
        "icon": {"type": "Image", "url": "https://remote.test/robert.png"},
    }
    await post(client, BOB, 2, type="Update", object=renamed, to=[PUBLIC])
    async with read_only(app.state.node.sessionmaker) as session:
        cached = (
            await session.execute(select(RemoteActor).where(RemoteActor.uri == BOB))
        ).scalar_one()
    assert cached.document["name"] == "Robert"
    assert cached.rsa_public_pem == renamed["publicKey"]["publicKeyPem"]  # the new key
    page = await client.get("/bricks", headers={"Accept": "text/html"})
    assert '<a href="/@bob@remote.test">Robert</a>' in page.text
    assert '<a href="/@bob@remote.test">bob</a>' not in page.text


async def test_after_the_owners_delete_the_brick_is_gone_from_our_pages_too(
    node: tuple[Starlette, httpx.AsyncClient],
) -> None:
    """Issue 16 done-when: after a remote ``Delete`` the object is gone from the API and from
    every page that showed it (its page, the catalogue, its tag)."""
    app, client = node
    article = to_article()
    article.update(
        id="https://remote.test/bricks/7",
        url="https://remote.test/bricks/7",
        name="La grainothèque du Rabot",
        attributedTo=[BOB],
        chamber=None,
    )
    await post(client, BOB, 1, type="Create", object=article, to=[PUBLIC])
    async with read_only(app.state.node.sessionmaker) as session:
        key = (await session.execute(select(Brick.key))).scalar_one()
    html = {"Accept": "text/html"}
    pages = ["/bricks", f"/bricks/{key}", "/tags/jardin"]

    async def showing() -> list[str]:
        shown = []
        for path in pages:
            page = await client.get(path, headers=html)
            if "La grainothèque du Rabot" in page.text:
                shown.append(path)
        return shown

    assert await showing() == pages
    assert (await client.get(f"/api/v1/bricks/{key}")).status_code == 200

    # Carol is on the same host but is not an author: her Update and Delete change nothing.
    forged = {**article, "name": "Brique détournée", "attributedTo": [CAROL]}
    await post(client, CAROL, 2, type="Update", object=forged, to=[PUBLIC], cc=[LILLE])
    await post(client, CAROL, 4, type="Delete", object=article["id"])
    assert await showing() == pages
    assert "Brique détournée" not in (await client.get("/bricks", headers=html)).text

    await post(client, BOB, 5, type="Delete", object={"id": article["id"], "type": "Tombstone"})
    assert await showing() == []
    gone = await client.get(f"/bricks/{key}", headers=html)
    assert gone.status_code == 404 and "<html" in gone.text.lower()
    answer = await client.get(f"/api/v1/bricks/{key}")
    assert answer.status_code == 404 and "error" in answer.json()
    listing = await client.get("/api/v1/bricks", params={"scope": "federated"})
    assert listing.json()["items"] == []
