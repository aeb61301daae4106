"""The inbox end to end (ASGI): what is accepted, every refusal, and that refusals store nothing.

``remote.test`` is a MockTransport serving bob's actor document. The ``app`` fixture is
overridden here with one that runs no background worker, so jobs stay as enqueued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpcore
import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.models import (
    DomainBlock,
    Follow,
    FollowState,
    FollowStates,
    RemoteActor,
    StoredActivity,
)
from node.activitypub.signatures import sha256_digest_header
from node.activitypub.transport import GuardedTransport
from node.config import Settings
from node.db import read_only, session_scope, utcnow
from node.jobs import Job
from node.process_store import moves_of
from tests.activitypub._keys import OTHER_KEY
from tests.activitypub._remote import (
    BOB,
    BOB_INBOX,
    CAROL,
    LILLE,
    FakeRemote,
    activity_body,
    actor_document,
    count,
    signed_post,
)
from tests.harness.chambers import quiet_app


@asynccontextmanager
async def app_and_client(
    settings: Settings, transport: httpx.AsyncBaseTransport
) -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    """An app whose federation sends through ``transport``, and a client of it."""
    async with (
        quiet_app(settings, transport=transport) as app,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.url) as client,
    ):
        yield app, client


def follow_activity(n: int = 1, **changes: Any) -> dict[str, Any]:
    return {"id": f"{BOB}/follows/{n}", "type": "Follow", "actor": BOB, "object": LILLE, **changes}


async def assert_nothing_stored(app: Starlette) -> None:
    assert await count(app, StoredActivity) == 0
    assert await count(app, Follow) == 0
    assert await count(app, Job) == 0


def assert_refused(response: httpx.Response, status: int, reason: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert body.get("reason") == reason


async def test_follow_is_accepted_and_answered(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    response = await signed_post(client, activity_body(follow_activity()))
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "accepted", "reason": "accepted"}

    async with read_only(app.state.node.sessionmaker) as session:
        follows = list((await session.execute(select(Follow))).scalars())
        jobs = list((await session.execute(select(Job))).scalars())
        stored = list((await session.execute(select(StoredActivity))).scalars())
        moves = await moves_of(session, FollowStates, f"{BOB} {LILLE}")
    assert [(f.follower_uri, f.followee_uri, f.state) for f in follows] == [
        (BOB, LILLE, FollowState.ACCEPTED)
    ]
    assert follows[0].follow_activity_id == f"{BOB}/follows/1"
    # Asked and accepted through the follow's graph, each move recorded with who made it.
    assert [(m.before, m.after, m.by) for m in moves] == [
        (None, FollowState.PENDING, BOB),
        (FollowState.PENDING, FollowState.ACCEPTED, LILLE),
    ]
    assert [(j.kind, j.payload["inbox"], j.host, j.state) for j in jobs] == [
        ("deliver", BOB_INBOX, "remote.test", "pending")
    ]
    by_direction = {s.direction: s for s in stored}
    assert by_direction["in"].activity_id == f"{BOB}/follows/1"
    accept = by_direction["out"].document
    assert accept["type"] == "Accept" and accept["object"]["id"] == f"{BOB}/follows/1"
    assert jobs[0].activity_pk == by_direction["out"].id
    # bob's document was fetched (signed GET) to get his key
    assert [(r.method, str(r.url)) for r in remote.requests] == [("GET", BOB)]


async def test_no_signature(app: Starlette, client: httpx.AsyncClient, remote: FakeRemote) -> None:
    response = await client.post(
        "/actors/lille/inbox",
        content=activity_body(follow_activity()),
        headers={"Content-Type": "application/activity+json"},
    )
    assert_refused(response, 401, "noSignature")
    await assert_nothing_stored(app)
    assert remote.requests == []


async def test_tampered_body_fails_the_digest(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    signed = activity_body(follow_activity())
    tampered = activity_body(follow_activity(object=f"{LILLE}x"))
    response = await signed_post(client, signed, send_body=tampered)
    assert_refused(response, 401, "digestMismatch")
    await assert_nothing_stored(app)


async def test_tampered_body_with_matching_digest_fails_the_signature(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    signed = activity_body(follow_activity())
    tampered = activity_body(follow_activity(n=2))
    response = await signed_post(
        client, signed, send_body=tampered, replace={"Digest": sha256_digest_header(tampered)}
    )
    assert_refused(response, 401, "invalidSignature")
    await assert_nothing_stored(app)


async def test_wrong_digest_header(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    body = activity_body(follow_activity())
    response = await signed_post(
        client, body, replace={"Digest": sha256_digest_header(b"something else")}
    )
    assert_refused(response, 401, "digestMismatch")
    await assert_nothing_stored(app)


async def test_signed_with_another_key_refetches_once_then_refuses(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    response = await signed_post(client, activity_body(follow_activity()), key=OTHER_KEY)
    assert_refused(response, 401, "invalidSignature")
    await assert_nothing_stored(app)
    # first fetch, then one refresh for a possibly rotated key; no more
    assert [(r.method, str(r.url)) for r in remote.requests] == [("GET", BOB), ("GET", BOB)]


async def test_stale_date(app: Starlette, client: httpx.AsyncClient, remote: FakeRemote) -> None:
    response = await signed_post(
        client, activity_body(follow_activity()), now=utcnow() - timedelta(hours=13)
    )
    assert_refused(response, 401, "staleDate")
    await assert_nothing_stored(app)


async def test_actor_is_not_the_signer(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    activity = follow_activity(actor=CAROL, id=f"{CAROL}/follows/1")
    response = await signed_post(client, activity_body(activity))  # bob's key
    assert_refused(response, 403, "actorMismatch")
    await assert_nothing_stored(app)


async def test_create_of_an_object_from_another_host(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    activity = {
        "id": f"{BOB}/activities/1",
        "type": "Create",
        "actor": BOB,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": "https://elsewhere.test/notes/1",
            "type": "Note",
            "attributedTo": BOB,
            "content": "not mine",
        },
    }
    response = await signed_post(client, activity_body(activity))
    assert_refused(response, 403, "originMismatch")
    await assert_nothing_stored(app)


async def test_oversize_body(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote, settings: Settings
) -> None:
    activity = follow_activity(summary="x" * (settings.max_body_bytes + 1))
    response = await signed_post(client, activity_body(activity))
    assert response.status_code == 413, response.text
    await assert_nothing_stored(app)
    assert remote.requests == []


async def test_oversize_body_error_is_json(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote, settings: Settings
) -> None:
    activity = follow_activity(summary="x" * (settings.max_body_bytes + 1))
    response = await signed_post(client, activity_body(activity))
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == 413 and "larger than this node accepts" in body["error"]


async def test_oversize_body_without_content_length_is_refused(
    app: Starlette, client: httpx.AsyncClient, settings: Settings
) -> None:
    """A chunked body that lies about nothing but keeps coming is cut at the limit."""

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(settings.max_body_bytes // 1000 + 2):
            yield b"x" * 1000

    response = await client.post(
        "/actors/lille/inbox",
        content=chunks(),
        headers={"Content-Type": "application/activity+json"},
    )
    assert response.status_code == 413
    assert response.json()["status"] == 413


async def test_malformed_json(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    response = await signed_post(client, b'{"id": "https://remote.test/x", "type": ')
    assert_refused(response, 400, "invalidJson")
    response = await signed_post(client, b'["not", "an", "object"]')
    assert_refused(response, 400, "invalidJson")
    await assert_nothing_stored(app)
    assert remote.requests == []


@pytest.mark.parametrize("missing", ["id", "type", "actor"])
async def test_missing_fields(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote, missing: str
) -> None:
    activity = follow_activity()
    del activity[missing]
    response = await signed_post(client, activity_body(activity))
    assert_refused(response, 400, "missingField")
    assert missing in response.json()["error"]
    await assert_nothing_stored(app)
    assert remote.requests == []


async def test_unsupported_content_type(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    response = await signed_post(
        client, activity_body(follow_activity()), content_type="text/plain"
    )
    assert_refused(response, 415, None)
    await assert_nothing_stored(app)
    assert remote.requests == []


async def test_replayed_activity_is_a_duplicate(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    body = activity_body(follow_activity())
    first = await signed_post(client, body)
    assert first.status_code == 202, first.text
    jobs_after_first = await count(app, Job)
    second = await client.post(
        "/actors/lille/inbox", content=body, headers=dict(first.request.headers)
    )
    assert second.status_code == 202, second.text
    assert second.json() == {"status": "already received", "reason": "duplicate"}
    assert await count(app, StoredActivity, StoredActivity.direction == "in") == 1
    assert await count(app, Follow) == 1
    assert await count(app, Job) == jobs_after_first == 1


async def test_blocked_domain(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    async with session_scope(app.state.node.sessionmaker) as session:
        session.add(DomainBlock(host="remote.test", reason="test"))
    response = await signed_post(client, activity_body(follow_activity()))
    assert_refused(response, 403, "blockedDomain")
    await assert_nothing_stored(app)
    assert remote.requests == []  # refused before any key fetch


async def test_unknown_activity_type_is_ignored(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    activity = {"id": f"{BOB}/things/1", "type": "Frobnicate", "actor": BOB, "object": LILLE}
    response = await signed_post(client, activity_body(activity))
    assert response.status_code == 202, response.text
    assert response.json() == {
        "status": "Frobnicate activities are ignored here",
        "reason": "unknownType",
    }
    await assert_nothing_stored(app)


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """The guard's inner backend: would open sockets; here it only records that it was asked."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.connects.append((host, port))
        raise httpcore.ConnectError("the test backend opens no socket")

    async def sleep(self, seconds: float) -> None:
        return None


async def test_key_fetch_to_a_private_address_is_refused(settings: Settings) -> None:
    backend = _RecordingBackend()
    guarded = GuardedTransport(allow_private_addresses=False, network_backend=backend)
    async with app_and_client(settings, guarded) as (app, client):
        # let the http:// URL reach the address guard itself
        app.state.node.federation.allow_http = True
        response = await signed_post(
            client, activity_body(follow_activity()), key_id="http://127.0.0.1:1/key"
        )
        assert_refused(response, 401, "keyFetchError")
        assert "127.0.0.1" in response.json()["error"], response.text
        assert backend.connects == []
        await assert_nothing_stored(app)


async def test_shared_inbox_accepts_too(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    response = await signed_post(client, activity_body(follow_activity()), path="/inbox")
    assert response.status_code == 202, response.text
    assert await count(app, Follow, Follow.follower_uri == BOB) == 1


async def test_concurrent_first_deliveries_from_an_unknown_actor_all_succeed(
    settings: Settings,
) -> None:
    """Eight first POSTs from an actor not cached yet, all fetching its document at once:
    storing it must be an upsert, or all but one lose with a duplicate key (401 or 500)."""
    import asyncio
    import json

    fetched = 0
    document = actor_document(BOB)

    async def slow_remote(request: httpx.Request) -> httpx.Response:
        nonlocal fetched
        fetched += 1
        await asyncio.sleep(0.05)  # every POST has fetched before any stores: the race
        return httpx.Response(
            200, headers={"Content-Type": "application/activity+json"}, content=json.dumps(document)
        )

    async with app_and_client(settings, httpx.MockTransport(slow_remote)) as (app, client):
        responses = await asyncio.gather(
            *(
                signed_post(
                    client,
                    activity_body(
                        {
                            "id": f"{BOB}/things/{n}",
                            "type": "Frobnicate",
                            "actor": BOB,
                            "object": LILLE,
                        }
                    ),
                )
                for n in range(8)
            )
        )
        assert [r.status_code for r in responses] == [202] * 8, [r.text for r in responses]
        assert fetched >= 2  # the fetches did overlap
        assert await count(app, RemoteActor, RemoteActor.uri == BOB) == 1
