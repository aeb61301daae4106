"""Actors are living documents (issue 16, finding 3): a profile change, a pinned brick or the
chamber's new icon is sent to the followers as ``Update`` of the whole actor document."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.models import StoredActivity
from node.db import read_only
from node.jobs import Job
from node.members.models import MemberRole
from tests.bricks._helpers import BRICK, bearer
from tests.bricks.test_delivery_records import follows
from tests.web._members import add_member, csrf_of, sign_in

AS2 = {"Accept": "application/activity+json"}
LILLE = "https://lille.test/actors/lille"
MARIE = "https://lille.test/actors/marie"
BOB = "https://liege.test/users/bob"
ANNE = "https://gand.test/users/anne"


async def actor_updates(app: Starlette, actor: str) -> list[tuple[dict[str, object], list[str]]]:
    """The Update(actor) documents sent by ``actor``, with the inboxes they go to."""
    async with read_only(app.state.node.sessionmaker) as session:
        rows = list(
            (
                await session.execute(
                    select(StoredActivity)
                    .where(
                        StoredActivity.actor_uri == actor,
                        StoredActivity.activity_type == "Update",
                        StoredActivity.object_id == actor,
                    )
                    .order_by(StoredActivity.id)
                )
            ).scalars()
        )
        found = []
        for row in rows:
            inboxes = (
                await session.execute(select(Job.payload).where(Job.activity_pk == row.id))
            ).scalars()
            found.append((row.document["object"], sorted(p["inbox"] for p in inboxes)))
    return found


async def test_a_new_display_name_is_sent_to_the_followers(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await add_member(app, "marie", token=True)
    assert token is not None
    await follows(app, BOB, MARIE, None)
    changed = await client.patch(
        "/api/v1/members/me",
        json={"display_name": "Marie Curie", "header_url": "https://img.test/header.png"},
        headers=bearer(token),
    )
    assert changed.status_code == 200, changed.text
    # The same again changes nothing: nothing is sent.
    await client.patch(
        "/api/v1/members/me", json={"display_name": "Marie Curie"}, headers=bearer(token)
    )
    [(document, inboxes)] = await actor_updates(app, MARIE)
    assert document["name"] == "Marie Curie" and document["type"] == "Person"
    assert document["image"] == {"type": "Image", "url": "https://img.test/header.png"}
    assert document["publicKey"]["owner"] == MARIE  # the whole document, keys included
    assert inboxes == [f"{BOB}/inbox"]
    served = (await client.get("/actors/marie", headers=AS2)).json()
    assert served["name"] == "Marie Curie" and served["image"] == document["image"]

    # The account page does the same.
    await sign_in(client, "marie")
    page = await client.get("/account")
    saved = await client.post(
        "/account/profile",
        data={"display_name": "Marie S.", "bio": "", "csrf_token": csrf_of(page.text)},
    )
    assert saved.status_code == 303
    names = [document["name"] for document, _ in await actor_updates(app, MARIE)]
    assert names == ["Marie Curie", "Marie S."]


async def test_pinned_bricks_are_featured_and_the_chamber_has_an_icon(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await add_member(app, "marie", token=True)
    admin = await add_member(app, "alice", role=MemberRole.ADMIN, token=True)
    assert token is not None and admin is not None
    await follows(app, ANNE, LILLE, "https://gand.test/inbox")
    key = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))).json()["key"]
    brick = f"https://lille.test/bricks/{key}"

    assert (
        await client.post(f"/api/v1/bricks/{key}/pin", headers=bearer(token))
    ).status_code == 204
    refused = await client.post(f"/api/v1/bricks/{key}/pin?as=chamber", headers=bearer(token))
    assert refused.status_code == 403  # only administrators pin for the chamber
    pinned = await client.post(f"/api/v1/bricks/{key}/pin?as=chamber", headers=bearer(admin))
    assert pinned.status_code == 204

    marie = (await client.get("/actors/marie", headers=AS2)).json()
    featured = await client.get(marie["featured"], headers=AS2)
    assert featured.status_code == 200
    assert featured.json()["type"] == "OrderedCollection"
    assert featured.json()["orderedItems"] == [brick]
    chamber_featured = (await client.get(f"{LILLE}/collections/featured", headers=AS2)).json()
    assert chamber_featured["orderedItems"] == [brick]
    [(group, inboxes)] = await actor_updates(app, LILLE)
    assert group["type"] == "Group" and inboxes == ["https://gand.test/inbox"]

    # Administrators set the chamber's icon on /admin; its followers get the new document.
    await sign_in(client, "alice")
    page = await client.get("/admin")
    bad = await client.post(
        "/admin/icon", data={"icon_url": "ftp://x", "csrf_token": csrf_of(page.text)}
    )
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text
    saved = await client.post(
        "/admin/icon",
        data={"icon_url": "https://img.test/lille.png", "csrf_token": csrf_of(page.text)},
    )
    assert saved.status_code == 303
    chamber = (await client.get("/actors/lille", headers=AS2)).json()
    assert chamber["icon"] == {"type": "Image", "url": "https://img.test/lille.png"}
    updates = await actor_updates(app, LILLE)
    assert updates[-1][0]["icon"] == chamber["icon"]

    # Unpinning, and deleting a pinned brick, empties the collection.
    await client.delete(f"/api/v1/bricks/{key}/pin", headers=bearer(token))
    assert (await client.get(marie["featured"], headers=AS2)).json()["orderedItems"] == []
    await client.delete(f"/api/v1/bricks/{key}", headers=bearer(token))
    assert (await client.get(f"{LILLE}/collections/featured", headers=AS2)).json()[
        "orderedItems"
    ] == []
