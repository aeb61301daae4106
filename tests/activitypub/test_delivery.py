"""Outgoing delivery: publish() fans out one job per inbox; deliver_job against a fake host."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.actors import get_local_actor
from node.activitypub.federation import Federation
from node.activitypub.keys import load_rsa_public_pem
from node.activitypub.models import (
    DomainBlock,
    Follow,
    FollowState,
    HostHealth,
    RemoteActor,
    StoredActivity,
)
from node.activitypub.outbox import DELIVER, DeliveryPolicy, deliver_job, publish
from node.activitypub.signatures import verify_request
from node.db import make_engine, make_sessionmaker, read_only, session_scope, utcnow
from node.jobs import Done, Fail, Job, JobState, Retry, Worker
from tests.activitypub._remote import (
    BOB,
    BOB_INBOX,
    LILLE,
    FakeRemote,
    actor_document,
    count,
)

SHARED = "https://remote.test/inbox"
DAVE = "https://other.test/users/dave"


@pytest.fixture
def remote() -> FakeRemote:
    return FakeRemote()


def federation_of(app: Starlette) -> Federation:
    federation: Federation = app.state.node.federation
    return federation


async def add_follower(
    app: Starlette, uri: str, *, shared_inbox: str | None = None, state: str = FollowState.ACCEPTED
) -> None:
    document = actor_document(uri, shared_inbox=shared_inbox)
    now = utcnow()
    async with session_scope(app.state.node.sessionmaker) as session:
        session.add(
            RemoteActor(
                uri=uri,
                host=uri.split("/")[2],
                inbox=document["inbox"],
                shared_inbox=shared_inbox,
                rsa_key_id=document["publicKey"]["id"],
                rsa_public_pem=document["publicKey"]["publicKeyPem"],
                document=document,
                fetched_at=now,
            )
        )
        session.add(
            Follow(
                follower_uri=uri,
                followee_uri=LILLE,
                follow_activity_id=f"{uri}/follows/1",
                state=state,
                created_at=now,
                updated_at=now,
            )
        )


async def publish_note(app: Starlette, **kwargs: Any) -> StoredActivity:
    federation = federation_of(app)
    async with session_scope(app.state.node.sessionmaker) as session:
        actor = await get_local_actor(session, "lille")
        assert actor is not None
        return await publish(
            federation,
            session,
            actor,
            {
                "type": "Create",
                "to": ["https://www.w3.org/ns/activitystreams#Public"],
                "object": {
                    "id": f"{LILLE}/notes/1",
                    "type": "Note",
                    "attributedTo": LILLE,
                    "content": "Bonjour",
                },
            },
            **kwargs,
        )


async def jobs(app: Starlette) -> list[Job]:
    """The delivery jobs (other kinds, e.g. periodic clearing jobs, are not ours here)."""
    async with read_only(app.state.node.sessionmaker) as session:
        query = select(Job).where(Job.kind == DELIVER).order_by(Job.id)
        return list((await session.execute(query)).scalars())


async def test_publish_makes_one_job_per_distinct_inbox(app: Starlette) -> None:
    await add_follower(app, BOB, shared_inbox=SHARED)
    await add_follower(app, "https://remote.test/users/carol", shared_inbox=SHARED)
    await add_follower(app, DAVE)
    await add_follower(app, "https://remote.test/users/eve", state=FollowState.PENDING)
    stored = await publish_note(app, to_followers=True, inboxes=[SHARED])
    found = await jobs(app)
    assert sorted(j.payload["inbox"] for j in found) == [f"{DAVE}/inbox", SHARED]
    assert {j.kind for j in found} == {DELIVER}
    assert {j.host for j in found} == {"remote.test", "other.test"}
    assert {j.activity_pk for j in found} == {stored.id}
    assert all(j.state == JobState.PENDING and j.give_up_at is not None for j in found)
    assert await count(app, StoredActivity, StoredActivity.direction == "out") == 1


async def test_publish_skips_blocked_and_local_inboxes(app: Starlette) -> None:
    await add_follower(app, BOB)
    async with session_scope(app.state.node.sessionmaker) as session:
        session.add(DomainBlock(host="remote.test"))
    await publish_note(app, to_followers=True, inboxes=["https://lille.test/inbox"])
    assert await jobs(app) == []


async def _one_job(app: Starlette, inbox: str = BOB_INBOX) -> Job:
    await publish_note(app, inboxes=[inbox])
    (job,) = await jobs(app)
    return job


async def _state(app: Starlette, job_id: int) -> Job:
    async with read_only(app.state.node.sessionmaker) as session:
        job = await session.get(Job, job_id)
    assert job is not None
    return job


async def test_delivered(app: Starlette, remote: FakeRemote) -> None:
    remote.inbox_status = [202]
    job = await _one_job(app)
    assert await deliver_job(federation_of(app))(job) == Done()  # the handler alone
    assert await app.state.node.worker.run_once() == 1  # through the worker
    after = await _state(app, job.id)
    assert after.state == JobState.DONE
    assert after.finished_at is not None and after.last_error == ""
    assert [str(r.url) for r in remote.posts] == [BOB_INBOX, BOB_INBOX]
    assert await app.state.node.worker.run_once() == 0


async def test_server_error_is_retried_later(app: Starlette, remote: FakeRemote) -> None:
    remote.inbox_status = [500]
    job = await _one_job(app)
    before = utcnow()
    assert await app.state.node.worker.run_once() == 1
    after = await _state(app, job.id)
    assert after.state == JobState.PENDING
    assert after.attempts == 1
    assert after.next_attempt_at > before
    assert after.last_error.startswith("HTTP 500")
    assert after.locked_until is None
    assert await app.state.node.worker.run_once() == 0  # not due yet
    async with read_only(app.state.node.sessionmaker) as session:
        health = await session.get(HostHealth, "remote.test")
    assert health is not None and health.consecutive_failures == 1


async def test_gone_removes_the_follower(app: Starlette, remote: FakeRemote) -> None:
    await add_follower(app, BOB)
    remote.inbox_status = [410]
    await publish_note(app, to_followers=True)
    (job,) = await jobs(app)
    assert job.payload["inbox"] == BOB_INBOX
    assert await app.state.node.worker.run_once() == 1
    after = await _state(app, job.id)
    assert after.state == JobState.FAILED
    assert "410" in after.last_error
    assert await count(app, Follow) == 0
    async with read_only(app.state.node.sessionmaker) as session:
        bob = (
            await session.execute(select(RemoteActor).where(RemoteActor.uri == BOB))
        ).scalar_one()
    assert bob.gone_at is not None


async def test_host_paused_after_repeated_failures(app: Starlette, remote: FakeRemote) -> None:
    remote.inbox_status = [503]
    job = await _one_job(app)
    handler = deliver_job(federation_of(app), retry_base=30.0)
    for attempt in range(1, DeliveryPolicy.pause_after_failures + 1):
        outcome = await handler(job)
        assert isinstance(outcome, Retry)
        assert len(remote.posts) == attempt
    async with read_only(app.state.node.sessionmaker) as session:
        health = await session.get(HostHealth, "remote.test")
    assert health is not None
    assert health.consecutive_failures == DeliveryPolicy.pause_after_failures
    assert health.paused_until is not None and health.paused_until > utcnow()

    outcome = await handler(job)
    assert isinstance(outcome, Retry) and "paused" in outcome.error
    assert outcome.delay is not None and outcome.delay > timedelta(0)
    assert len(remote.posts) == DeliveryPolicy.pause_after_failures  # no new request


async def test_an_urgent_delivery_is_not_held_by_a_paused_host(
    app: Starlette, remote: FakeRemote
) -> None:
    """A message with a deadline (``urgent_until``) is still sent to a paused host, with its
    own backoff, until then; an ordinary one waits for the pause to end."""
    remote.inbox_status = [503]
    handler = deliver_job(federation_of(app), retry_base=30.0)
    first = await _one_job(app)
    for _ in range(DeliveryPolicy.pause_after_failures):
        assert isinstance(await handler(first), Retry)
    posts = len(remote.posts)
    now = utcnow()
    await publish_note(app, inboxes=[BOB_INBOX], urgent_until=now + timedelta(hours=1))
    await publish_note(app, inboxes=[BOB_INBOX])
    await publish_note(app, inboxes=[BOB_INBOX], urgent_until=now - timedelta(seconds=1))
    urgent, ordinary, expired = (await jobs(app))[1:]
    assert urgent.payload["urgent_until"] and "urgent_until" not in ordinary.payload

    for job in (ordinary, expired):
        outcome = await handler(job)
        assert isinstance(outcome, Retry) and "paused" in outcome.error
    assert len(remote.posts) == posts  # neither was sent

    outcome = await handler(urgent)  # attempted; the host still fails: back off
    assert isinstance(outcome, Retry) and outcome.delay is None
    assert len(remote.posts) == posts + 1
    remote.inbox_status = [202]
    assert await handler(urgent) == Done()
    assert len(remote.posts) == posts + 2
    async with read_only(app.state.node.sessionmaker) as session:
        health = await session.get(HostHealth, "remote.test")
    assert health is not None and health.paused_until is None  # the host answers again


async def test_a_host_that_answers_again_gets_its_waiting_deliveries_at_once(
    app: Starlette, remote: FakeRemote
) -> None:
    """After failures, the first delivery the host answers makes the others that wait for
    their next attempt due now: the backlog does not wait out each one's backoff."""
    remote.inbox_status = [503]
    worker = app.state.node.worker
    first = await _one_job(app)
    await publish_note(app, inboxes=[BOB_INBOX])
    assert await worker.run_once() == 2  # both fail: retried in 15 s or more
    assert await worker.run_once() == 0
    remote.inbox_status = [202]
    await publish_note(app, inboxes=[BOB_INBOX])
    assert await worker.run_once() == 1  # the new one is answered: the host is back
    assert await worker.run_once() == 2  # so the two that waited go now
    assert (await _state(app, first.id)).state == JobState.DONE
    assert {j.state for j in await jobs(app)} == {JobState.DONE}
    assert len(remote.posts) == 5
    async with read_only(app.state.node.sessionmaker) as session:
        health = await session.get(HostHealth, "remote.test")
    assert health is not None and health.consecutive_failures == 0


async def test_blocked_host_fails_without_a_request(app: Starlette, remote: FakeRemote) -> None:
    job = await _one_job(app)
    async with session_scope(app.state.node.sessionmaker) as session:
        session.add(DomainBlock(host="remote.test"))
    outcome = await deliver_job(federation_of(app))(job)
    assert isinstance(outcome, Fail) and "blocked" in outcome.error
    assert remote.requests == []
    assert await app.state.node.worker.run_once() == 1
    assert (await _state(app, job.id)).state == JobState.FAILED
    assert remote.requests == []


async def test_delivery_is_signed_by_the_local_actor(app: Starlette, remote: FakeRemote) -> None:
    job = await _one_job(app)
    assert await deliver_job(federation_of(app))(job) == Done()
    (request,) = remote.posts
    async with read_only(app.state.node.sessionmaker) as session:
        actor = await get_local_actor(session, "lille")
        stored = await session.get(StoredActivity, job.activity_pk)
    assert actor is not None and stored is not None
    key_id = federation_of(app).urls("lille").rsa_key_id
    public = load_rsa_public_pem(actor.rsa_public_pem)
    asked: list[str] = []

    def resolve(kid: str) -> Any:
        asked.append(kid)
        return public if kid == key_id else None

    result = verify_request(
        "POST",
        str(request.url),
        list(request.headers.items()),
        request.content,
        resolve_key=resolve,
        now=utcnow(),
    )
    assert result.ok, result.message
    assert result.key_id == key_id
    assert request.headers["content-type"] == "application/activity+json"
    assert json.loads(request.content)["id"] == stored.activity_id


async def _fan_out_to_one_host(app: Starlette, followers: int) -> list[Job]:
    for i in range(followers):
        await add_follower(app, f"https://remote.test/users/f{i}")
    await publish_note(app, to_followers=True)
    found = await jobs(app)
    assert len(found) == followers and {j.host for j in found} == {"remote.test"}
    return found


def _workers(app: Starlette, database_url: str, n: int) -> tuple[list[Worker], list[Any]]:
    """``n`` workers on engines of their own, delivering to one host all at once."""
    handler = deliver_job(federation_of(app))
    engines = [make_engine(database_url) for _ in range(n)]
    workers = [
        Worker(make_sessionmaker(engine), {DELIVER: handler}, concurrency=8, per_host=8)
        for engine in engines
    ]
    return workers, engines


@pytest.mark.parametrize("status", [202, 503])
async def test_concurrent_first_deliveries_to_a_host_post_once_per_job(
    app: Starlette, remote: FakeRemote, database_url: str, status: int
) -> None:
    """Concurrent first deliveries to a host never know its health row yet: counting them
    must not fail on its primary key after the POST (the job would run, and POST, again).
    On PostgreSQL two workers really race; SQLite's single writer hides it."""
    remote.inbox_status = [status]
    found = await _fan_out_to_one_host(app, 16)
    workers, engines = _workers(app, database_url, 2)
    try:
        totals = await asyncio.gather(*(worker.run_until_idle() for worker in workers))
    finally:
        for engine in engines:
            await engine.dispose()
    assert sum(totals) == len(found)
    posted = Counter(str(request.url) for request in remote.posts)
    assert set(posted.values()) == {1}  # never a second POST for a job
    after = [await _state(app, job.id) for job in found]
    async with read_only(app.state.node.sessionmaker) as session:
        health = await session.get(HostHealth, "remote.test")
    if status == 202:
        assert sorted(posted) == sorted(j.payload["inbox"] for j in found)  # one POST per job
        assert {job.state for job in after} == {JobState.DONE}
        assert health is None  # nothing changed: nothing written
    else:  # every failure counted; once paused, the jobs not yet sent wait without a POST
        assert {(job.state, job.attempts) for job in after} == {(JobState.PENDING, 1)}
        sent = [job for job in after if job.payload["inbox"] in posted]
        assert {job.last_error for job in sent} == {"HTTP 503: status 503"}
        assert all("paused" in job.last_error for job in after if job not in sent)
        assert health is not None and health.consecutive_failures == len(sent)
        assert len(sent) >= DeliveryPolicy.pause_after_failures
