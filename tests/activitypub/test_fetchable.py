"""Everything we send can be fetched (issue 16, finding 2), and is read as Mastodon reads it
(finding 7).

The walk: every activity in the outboxes of the chamber and of the members, and every object
of ours inside them, is fetched with a signed GET, as a remote server does; each answers with
an AS2 content type and its own URL as ``id``, a deleted object with 410 and a ``Tombstone``.

The Mastodon rules are those of its ActivityPub code, cited by file for each check.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from node.activitypub.actors import get_local_actor
from node.activitypub.notes import publish_note
from node.activitypub.signatures import sign_cavage
from node.db import session_scope, utcnow
from tests.activitypub._keys import ACTOR_KEY
from tests.bricks._helpers import BRICK, add_member, bearer

BASE = "https://lille.test"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
# app/helpers/jsonld_helper.rb (fetch_resource_without_id_validation) asks for these.
MASTODON_ACCEPT = 'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"'


async def signed_get(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """A GET signed as a remote actor would sign it (Mastodon's authorized fetch)."""
    headers = {"Accept": MASTODON_ACCEPT}
    headers.update(
        sign_cavage(
            "GET", url, headers, b"", ACTOR_KEY, "https://remote.test/users/bob#main-key", utcnow()
        )
    )
    return await client.get(url, headers=headers)


def assert_as2(response: httpx.Response, url: str) -> dict[str, Any]:
    assert response.status_code == 200, (url, response.status_code, response.text[:200])
    # app/helpers/jsonld_helper.rb (expected_type?): an AS2 media type, or Mastodon drops it.
    assert response.headers["content-type"].split(";")[0] in (
        "application/activity+json",
        "application/ld+json",
    )
    document: dict[str, Any] = response.json()
    # app/helpers/jsonld_helper.rb (fetch_resource): the id must be the URL it was fetched at.
    assert document["id"] == url
    return document


async def publish_news(app: Starlette, text: str) -> str:
    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        actor = await get_local_actor(session, "lille")
        assert actor is not None
        stored = await publish_note(node.federation, session, actor, text)
    return str(stored.document["object"]["id"])


async def a_chamber_with_everything(app: Starlette, client: httpx.AsyncClient) -> dict[str, str]:
    marie = await add_member(app, "marie", display_name="Marie")
    paul = await add_member(app, "paul")
    kept = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(marie))).json()
    await client.patch(
        f"/api/v1/bricks/{kept['key']}", json={"title": "Autre"}, headers=bearer(marie)
    )
    gone = (
        await client.post("/api/v1/bricks", json={**BRICK, "title": "Brève"}, headers=bearer(marie))
    ).json()
    await client.delete(f"/api/v1/bricks/{gone['key']}", headers=bearer(marie))
    review = await client.post(
        f"/api/v1/bricks/{kept['key']}/reviews",
        json={"rating": 4, "comment": "Utile"},
        headers=bearer(paul),
    )
    await client.post(f"/api/v1/bricks/{kept['key']}/pin", headers=bearer(marie))
    return {
        "brick": f"{BASE}/bricks/{kept['key']}",
        "gone": f"{BASE}/bricks/{gone['key']}",
        "review": review.json()["id"],
        "note": await publish_news(app, "Assemblée jeudi.\n\nVenez nombreux."),
    }


async def outbox_items(client: httpx.AsyncClient, actor: str) -> list[dict[str, Any]]:
    document = assert_as2(await signed_get(client, actor), actor)
    collection = assert_as2(await signed_get(client, document["outbox"]), document["outbox"])
    items: list[dict[str, Any]] = []
    page_url: str | None = collection["first"]
    while page_url:
        page = (await signed_get(client, page_url)).json()
        items += page["orderedItems"]
        page_url = page.get("next")
    assert len(items) == collection["totalItems"]
    return items


async def test_every_id_in_our_outboxes_resolves(app: Starlette, client: httpx.AsyncClient) -> None:
    ids = await a_chamber_with_everything(app, client)
    fetched: dict[str, int] = {}
    for actor in (f"{BASE}/actors/lille", f"{BASE}/actors/marie", f"{BASE}/actors/paul"):
        for activity in await outbox_items(client, actor):
            assert_as2(await signed_get(client, activity["id"]), activity["id"])
            fetched[activity["id"]] = 200
            inner = activity["object"]
            inner_id = inner["id"] if isinstance(inner, dict) else inner
            if not inner_id.startswith(BASE):
                continue
            response = await signed_get(client, inner_id)
            if response.status_code == 410:
                # app/lib/activitypub/activity/delete.rb: a Tombstone is how a deletion reads.
                assert response.headers["content-type"].startswith("application/activity+json")
                assert response.json()["type"] == "Tombstone" and response.json()["id"] == inner_id
            else:
                assert_as2(response, inner_id)
            fetched[inner_id] = response.status_code
    assert fetched[ids["brick"]] == 200 and fetched[ids["review"]] == 200
    assert fetched[ids["note"]] == 200  # chamber news answered 404 before
    assert fetched[ids["gone"]] == 410


async def test_what_we_serve_passes_mastodons_rules(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    ids = await a_chamber_with_everything(app, client)
    for username in ("lille", "marie"):
        url = f"{BASE}/actors/{username}"
        actor = assert_as2(await signed_get(client, url), url)
        # app/services/activitypub/process_account_service.rb: an inbox, a preferredUsername,
        # and (app/services/activitypub/fetch_remote_key_service.rb) a key owned by the actor.
        assert actor["inbox"].startswith(BASE) and actor["preferredUsername"] == username
        assert actor["publicKey"]["owner"] == url
        assert actor["publicKey"]["id"].startswith(url)
        assert actor["endpoints"]["sharedInbox"] == f"{BASE}/inbox"
        # process_account_service.rb (url, icon/image via ActivityPub::Parser::MediaAttachmentParser
        # image_url): a string url; featured through FetchFeaturedCollectionService.
        assert isinstance(actor["url"], str)
        featured = assert_as2(await signed_get(client, actor["featured"]), actor["featured"])
        assert featured["type"] in ("OrderedCollection", "Collection")
    marie = (await signed_get(client, f"{BASE}/actors/marie")).json()
    assert (await signed_get(client, marie["featured"])).json()["orderedItems"] == [ids["brick"]]

    for key in ("brick", "review", "note"):
        obj = assert_as2(await signed_get(client, ids[key]), ids[key])
        # app/lib/activitypub/parser/status_parser.rb: attributedTo names the account (the
        # first actor), fetched and on the object's host (create.rb, invalid_origin?).
        attributed = obj["attributedTo"]
        first = attributed[0] if isinstance(attributed, list) else attributed
        first = first["id"] if isinstance(first, dict) else first
        assert first.startswith(f"{BASE}/actors/")
        author = await signed_get(client, first)
        assert author.status_code == 200 and author.json()["type"] in ("Person", "Group")
        # status_parser.rb (visibility): Public in to makes it public.
        to = obj["to"] if isinstance(obj["to"], list) else [obj["to"]]
        assert PUBLIC in to
        assert obj["type"] in ("Article", "Note") and isinstance(obj.get("content"), str)
        # status_parser.rb (url): a string or a Link; our pages for Articles.
        if obj["type"] == "Article":
            assert obj["url"] == ids["brick"] and obj["name"]
            # app/lib/activitypub/activity/create.rb (process_hashtag): a Hashtag with a name
            # and an href.
            hashtags = [t for t in obj["tag"] if t["type"] == "Hashtag"]
            assert hashtags and all(
                t["name"].startswith("#") and t["href"].startswith(BASE) for t in hashtags
            )
        if key == "review":
            assert obj["inReplyTo"] == ids["brick"]

    # app/services/activitypub/fetch_resource_service.rb: a 410 means gone; delete.rb reads
    # the Tombstone.
    gone = await signed_get(client, ids["gone"])
    assert gone.status_code == 410 and gone.json()["type"] == "Tombstone"
