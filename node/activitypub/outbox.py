"""Sending activities: store them, then deliver through durable jobs (one per inbox).

Shared inboxes are used when a remote actor offers one, so a host gets each activity once.
Where a ``Create`` or an ``Announce`` of an object went is recorded (``Delivery``): the
object's ``Update`` and ``Delete`` go to the same inboxes (``publish(..., to_recipients_of=)``),
even those that got it by mention or through a boost.
Delivery handles 410 Gone (the follower is removed) and pauses hosts that keep failing. An
activity published with ``urgent_until`` (a message with a deadline) is not held back by a
paused host until then: it keeps its own backoff, and honours the pause again afterwards.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.actors import get_local_actor
from node.activitypub.federation import Federation, authority_of, id_of
from node.activitypub.jsonld import default_context
from node.activitypub.models import (
    Delivery,
    Follow,
    FollowState,
    HostHealth,
    LocalActor,
    RemoteActor,
    StoredActivity,
)
from node.db import insert_for, read_only
from node.jobs import Done, Fail, Handler, Job, Outcome, Retry, enqueue
from node.ops.metrics import DELIVERY_ATTEMPTS, status_class

__all__ = [
    "DELIVER",
    "DeliveryPolicy",
    "deliver_again",
    "deliver_job",
    "delivered_inboxes",
    "follower_inboxes",
    "last_sent",
    "new_activity_id",
    "publish",
    "sent_object",
    "tombstone_of",
]

log = logging.getLogger(__name__)

DELIVER = "deliver"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
#: Activities whose deliveries are recorded for their object (its later Update / Delete).
RECORDED_TYPES = frozenset({"Create", "Announce"})


class DeliveryPolicy:
    """Give up after three days; pause a host after 5 failures in a row, for 20 retry bases
    (except for urgent deliveries, until their ``urgent_until``)."""

    give_up_after = timedelta(days=3)
    pause_after_failures = 5
    pause_in_retry_bases = 20


def new_activity_id(federation: Federation, actor: LocalActor) -> str:
    return f"{federation.urls(actor.username).id}/activities/{uuid.uuid4()}"


async def follower_inboxes(session: AsyncSession, actor_uri: str) -> list[str]:
    """Inboxes of the accepted remote followers, shared inboxes first, without repeats."""
    rows = await session.execute(
        select(RemoteActor.inbox, RemoteActor.shared_inbox)
        .join(Follow, Follow.follower_uri == RemoteActor.uri)
        .where(
            Follow.followee_uri == actor_uri,
            Follow.state == FollowState.ACCEPTED,
            RemoteActor.gone_at.is_(None),
        )
    )
    return _unique(shared or inbox for inbox, shared in rows)


async def delivered_inboxes(session: AsyncSession, object_id: str) -> list[str]:
    """Every inbox that received ``object_id`` (its Create, or an Announce of it)."""
    rows = await session.execute(
        select(Delivery.inbox).where(Delivery.object_id == object_id).order_by(Delivery.id)
    )
    return list(rows.scalars())


async def _record_deliveries(
    session: AsyncSession, object_id: str, inboxes: list[str], now: datetime
) -> None:
    if not inboxes:
        return
    await session.execute(
        insert_for(session, Delivery)
        .values([{"object_id": object_id, "inbox": inbox, "created_at": now} for inbox in inboxes])
        .on_conflict_do_nothing(index_elements=[Delivery.object_id, Delivery.inbox])
    )


async def last_sent(
    session: AsyncSession, object_id: str, *, actor_uri: str | None = None, types: Iterable[str]
) -> StoredActivity | None:
    """The latest activity of one of ``types`` we sent about ``object_id``."""
    query = select(StoredActivity).where(
        StoredActivity.direction == "out",
        StoredActivity.object_id == object_id,
        StoredActivity.activity_type.in_(list(types)),
    )
    if actor_uri is not None:
        query = query.where(StoredActivity.actor_uri == actor_uri)
    return (
        await session.execute(query.order_by(StoredActivity.id.desc()).limit(1))
    ).scalar_one_or_none()


async def sent_object(session: AsyncSession, object_id: str) -> dict[str, Any] | None:
    """The latest public version of an object we sent embedded in a Create or an Update
    (a note has no table of its own: its activities are its record). None once deleted."""
    stored = await last_sent(session, object_id, types=("Create", "Update", "Delete"))
    if stored is None or stored.activity_type == "Delete" or not stored.public:
        return None
    embedded = stored.document.get("object")
    if not isinstance(embedded, dict) or embedded.get("id") != object_id:
        return None
    return {"@context": stored.document.get("@context", default_context()), **embedded}


async def tombstone_of(session: AsyncSession, object_id: str) -> dict[str, Any] | None:
    """A ``Tombstone`` for an object we deleted (served with 410 Gone), else None."""
    stored = await last_sent(session, object_id, types=("Delete",))
    if stored is None:
        return None
    embedded = stored.document.get("object")
    tombstone: dict[str, Any] = {"id": object_id, "type": "Tombstone"}
    if isinstance(embedded, dict) and isinstance(embedded.get("formerType"), str):
        tombstone["formerType"] = embedded["formerType"]
    tombstone["deleted"] = stored.created_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"@context": default_context(), **tombstone}


def _unique(items: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for item in items:
        seen.setdefault(item, None)
    return list(seen)


async def publish(
    federation: Federation,
    session: AsyncSession,
    actor: LocalActor,
    activity: dict[str, Any],
    *,
    to_followers: bool = False,
    inboxes: Iterable[str] = (),
    to_recipients_of: str | None = None,
    now: datetime | None = None,
    urgent_until: datetime | None = None,
) -> StoredActivity:
    """Store ``activity`` as sent by ``actor`` and enqueue its deliveries, in one transaction.

    ``to_recipients_of``: an object id; every inbox that received it gets this one too (its
    Update, its Delete). The inboxes of a Create or an Announce are recorded for its object.
    ``urgent_until``: until then a paused host does not delay these deliveries (they retry
    with their own backoff); the sender has a deadline to meet."""
    now = now or federation.clock()
    urls = federation.urls(actor.username)
    activity = {"@context": default_context(), **activity}
    activity.setdefault("id", new_activity_id(federation, actor))
    activity["actor"] = urls.id
    activity.setdefault("published", now.strftime("%Y-%m-%dT%H:%M:%SZ"))
    activity = federation.sign_object(actor, activity)
    targets = list(inboxes)
    if to_followers:
        targets += await follower_inboxes(session, urls.id)
    if to_recipients_of is not None:
        targets += await delivered_inboxes(session, to_recipients_of)
    audience = [*_as_list(activity.get("to")), *_as_list(activity.get("cc"))]
    stored = StoredActivity(
        activity_id=activity["id"],
        direction="out",
        actor_uri=urls.id,
        activity_type=str(activity["type"]),
        object_id=id_of(activity.get("object")),
        public=PUBLIC in audience,
        document=activity,
        created_at=now,
    )
    session.add(stored)
    await session.flush()
    blocked: set[str] = set()
    sent: list[str] = []
    for inbox in _unique(targets):
        if federation.is_local(inbox) or inbox in blocked:
            continue
        if await federation.is_blocked(session, inbox):
            blocked.add(inbox)
            continue
        sent.append(inbox)
        await enqueue(
            session,
            DELIVER,
            _payload(inbox, actor.username, urgent_until),
            host=authority_of(inbox),
            activity_pk=stored.id,
            give_up_after=DeliveryPolicy.give_up_after,
            now=now,
        )
    if stored.activity_type in RECORDED_TYPES and stored.object_id is not None:
        await _record_deliveries(session, stored.object_id, sent, now)
    return stored


def _payload(inbox: str, username: str, urgent_until: datetime | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"inbox": inbox, "actor": username}
    if urgent_until is not None:
        payload["urgent_until"] = urgent_until.isoformat()
    return payload


def _urgent_until(job: Job) -> datetime | None:
    raw = job.payload.get("urgent_until")
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def deliver_again(
    federation: Federation,
    session: AsyncSession,
    stored: StoredActivity,
    inbox: str,
    *,
    now: datetime | None = None,
    urgent_until: datetime | None = None,
) -> None:
    """Enqueue one more delivery of an activity already sent (a peer asks for it again);
    ``urgent_until`` as for `publish`."""
    username = federation.local_username(stored.actor_uri)
    if username is None:
        raise ValueError(f"{stored.actor_uri} is not a local actor")
    await enqueue(
        session,
        DELIVER,
        _payload(inbox, username, urgent_until),
        host=authority_of(inbox),
        activity_pk=stored.id,
        give_up_after=DeliveryPolicy.give_up_after,
        now=now or federation.clock(),
    )


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


async def _host_paused_until(session: AsyncSession, host: str, now: datetime) -> datetime | None:
    health = await session.get(HostHealth, host)
    if health and health.paused_until and health.paused_until > now:
        return health.paused_until
    return None


async def _record_host(
    session: AsyncSession, host: str, ok: bool, error: str, now: datetime, pause_for: timedelta
) -> None:
    """Count consecutive failures per host atomically (several workers deliver at once)."""
    if ok:
        await session.execute(
            update(HostHealth)
            .where(HostHealth.host == host, HostHealth.consecutive_failures > 0)
            .values(consecutive_failures=0, paused_until=None, last_error="")
        )
        return
    values = insert_for(session, HostHealth).values(
        host=host, consecutive_failures=1, last_error=error[:500], paused_until=None
    )
    statement = values.on_conflict_do_update(
        index_elements=[HostHealth.host],
        set_={
            "consecutive_failures": HostHealth.consecutive_failures + 1,
            "last_error": error[:500],
        },
    ).returning(HostHealth.consecutive_failures)
    failures = (await session.execute(statement)).scalar_one()
    if failures >= DeliveryPolicy.pause_after_failures:
        await session.execute(
            update(HostHealth).where(HostHealth.host == host).values(paused_until=now + pause_for)
        )


async def _remove_gone_inbox(session: AsyncSession, inbox: str, now: datetime) -> None:
    """410 Gone: the actors behind that inbox no longer exist; stop following and sending."""
    actors = list(
        (
            await session.execute(
                select(RemoteActor).where(
                    (RemoteActor.inbox == inbox) | (RemoteActor.shared_inbox == inbox)
                )
            )
        ).scalars()
    )
    personal = [a for a in actors if a.inbox == inbox]
    for actor in personal:
        actor.gone_at = now
        await session.execute(
            delete(Follow).where(
                (Follow.follower_uri == actor.uri) | (Follow.followee_uri == actor.uri)
            )
        )


def deliver_job(federation: Federation, *, retry_base: float = 30.0) -> Handler:
    """The job handler that POSTs one stored activity to one inbox, signed as its actor."""
    pause_for = timedelta(seconds=retry_base * DeliveryPolicy.pause_in_retry_bases)

    async def handle(job: Job) -> Outcome:
        inbox = job.payload["inbox"]
        host = job.host or authority_of(inbox)
        now = federation.clock()
        async with read_only(federation.sessionmaker) as session:
            paused = await _host_paused_until(session, host, now)
            urgent_until = _urgent_until(job)
            if paused is not None and (urgent_until is None or urgent_until <= now):
                DELIVERY_ATTEMPTS.inc(result="paused")
                return Retry(f"{host} is paused after repeated failures", delay=paused - now)
            if await federation.is_blocked(session, inbox):
                DELIVERY_ATTEMPTS.inc(result="blocked")
                return Fail(f"{host} is blocked")
            stored = await session.get(StoredActivity, job.activity_pk)
            actor = await get_local_actor(session, job.payload["actor"])
        if stored is None or actor is None:
            return Fail("the activity or its actor no longer exists")
        body = json.dumps(stored.document, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            response = await federation.http.post(
                inbox,
                content=body,
                headers={
                    "Content-Type": "application/activity+json",
                    "Accept": "application/activity+json, application/ld+json, application/json",
                },
                auth=federation.signer(actor),
            )
            await response.aread()
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            DELIVERY_ATTEMPTS.inc(result="network")
            async with federation.sessionmaker() as session, session.begin():
                await _record_host(session, host, False, error, now, pause_for)
            return Retry(error)
        status = response.status_code
        DELIVERY_ATTEMPTS.inc(result="gone" if status == 410 else status_class(status))
        async with federation.sessionmaker() as session, session.begin():
            if 200 <= status < 300:
                await _record_host(session, host, True, "", now, pause_for)
                return Done()
            if status == 410:
                await _remove_gone_inbox(session, inbox, now)
                return Fail("410 Gone: removed")
            error = f"HTTP {status}: {response.text[:200]}"
            if status in (408, 429) or status >= 500:
                await _record_host(session, host, False, error, now, pause_for)
                retry_after = response.headers.get("retry-after", "")
                delay = (
                    timedelta(seconds=min(int(retry_after), 3600))
                    if retry_after.isdigit()
                    else None
                )
                return Retry(error, delay=delay)
            await _record_host(
                session, host, True, "", now, pause_for
            )  # the host answers; we were refused
            return Fail(error)

    return handle
