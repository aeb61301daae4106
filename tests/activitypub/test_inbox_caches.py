"""The inbox's in-process caches (keys, blocked hosts, recipients) never outvote the database.

Another process is played by a second engine on the same database: what it changes holds on
the very next POST, whatever this process cached.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import delete
from starlette.applications import Starlette

from node.activitypub.actors import create_local_actor
from node.activitypub.caches import KeyCache
from node.activitypub.models import DomainBlock, StoredActivity
from node.config import Settings
from node.db import make_engine, make_sessionmaker, session_scope
from node.secretbox import SecretBox
from tests.activitypub._keys import OTHER_KEY
from tests.activitypub._remote import (
    BOB,
    LILLE,
    FakeRemote,
    activity_body,
    actor_document,
    count,
    signed_post,
)

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


@pytest.fixture
async def elsewhere(settings: Settings) -> AsyncIterator[object]:
    """The sessionmaker of another process on the same database."""
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


def note(n: int, to: str = LILLE) -> bytes:
    note_id = f"{BOB}/notes/{n}"
    return activity_body(
        {
            "id": f"{note_id}/create",
            "type": "Create",
            "actor": BOB,
            "to": [to],
            "cc": [PUBLIC],
            "object": {"id": note_id, "type": "Note", "attributedTo": BOB, "content": "hi"},
        }
    )


async def test_the_key_is_fetched_once_then_refetched_once_when_it_no_longer_verifies(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    for n in (1, 2):
        response = await signed_post(client, note(n))
        assert response.json() == {"status": "accepted", "reason": "accepted"}
    assert [str(r.url) for r in remote.requests] == [BOB]
    remote.add(actor_document(BOB, OTHER_KEY))  # bob rotates his key, same key id
    rotated = await signed_post(client, note(3), key=OTHER_KEY)
    assert rotated.status_code == 202, rotated.text
    assert [str(r.url) for r in remote.requests] == [BOB, BOB]
    assert await count(app, StoredActivity, StoredActivity.direction == "in") == 3


async def test_a_block_made_by_another_process_holds_on_the_next_post(
    app: Starlette, client: httpx.AsyncClient, elsewhere: object
) -> None:
    assert (await signed_post(client, note(1))).status_code == 202  # caches warm
    async with session_scope(elsewhere) as session:  # type: ignore[arg-type]
        session.add(DomainBlock(host="remote.test", reason="spam"))
    refused = await signed_post(client, note(2))
    assert refused.status_code == 403 and refused.json()["reason"] == "blockedDomain"
    assert await count(app, StoredActivity, StoredActivity.direction == "in") == 1


async def test_an_unblock_made_by_another_process_holds_on_the_next_post(
    app: Starlette, client: httpx.AsyncClient, elsewhere: object
) -> None:
    async with session_scope(app.state.node.sessionmaker) as session:
        session.add(DomainBlock(host="remote.test", reason="spam"))
    refused = await signed_post(client, note(1))
    assert refused.status_code == 403 and refused.json()["reason"] == "blockedDomain"
    async with session_scope(elsewhere) as session:  # type: ignore[arg-type]
        await session.execute(delete(DomainBlock))
    accepted = await signed_post(client, note(2))
    assert accepted.status_code == 202, accepted.text


async def test_a_recipient_created_by_another_process_receives_at_once(
    app: Starlette, client: httpx.AsyncClient, elsewhere: object, settings: Settings
) -> None:
    path = "/actors/newcomer/inbox"
    newcomer = "https://lille.test/actors/newcomer"
    missing = await signed_post(client, note(1, newcomer), path=path)
    assert missing.status_code == 404 and missing.json()["reason"] == "noRecipient"
    async with session_scope(elsewhere) as session:  # type: ignore[arg-type]
        await create_local_actor(
            session, SecretBox(settings.secret_key), username="newcomer", actor_type="Person"
        )
    accepted = await signed_post(client, note(2, newcomer), path=path)
    assert accepted.status_code == 202, accepted.text


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_the_key_cache_is_bounded_and_expires() -> None:
    clock = Clock()
    cache = KeyCache(max_entries=2, ttl=timedelta(minutes=10), clock=clock)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    clock.now += timedelta(minutes=10)
    assert cache.get("a") is None and len(cache) == 1
