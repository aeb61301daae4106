"""Sending activities: store them, then deliver through durable jobs (one per inbox).

Shared inboxes are used when a remote actor offers one, so a host gets each activity once.
Where a ``Create`` or an ``Announce`` of an object went is recorded (``Delivery``): the
object's ``Update`` and ``Delete`` go to the same inboxes (``publish(..., to_recipients_of=)``),
even those that got it by mention or through a boost.
Delivery (``node.activitypub.delivery``) handles 410 Gone (the follower is removed) and
pauses hosts that keep failing. An activity published with ``urgent_until`` (a message with a
deadline) is not held back by a paused host until then: it keeps its own backoff, and honours
the pause again afterwards.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.delivery import DELIVER, DeliveryPolicy, deliver_job
from node.activitypub.federation import Federation, authority_of, id_of
from node.activitypub.jsonld import default_context
from node.activitypub.models import (
    Delivery,
    Follow,
    FollowState,
    LocalActor,
    RemoteActor,
    StoredActivity,
)
from node.db import insert_for
from node.jobs import enqueue, enqueue_many

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

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
#: Activities whose deliveries are recorded for their object (its later Update / Delete).
RECORDED_TYPES = frozenset({"Create", "Announce"})


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
    remote = [inbox for inbox in _unique(targets) if not federation.is_local(inbox)]
    blocked = await federation.blocked_among(session, remote)  # one query for all
    sent = [inbox for inbox in remote if inbox not in blocked]
    await enqueue_many(
        session,
        DELIVER,
        [(_payload(inbox, actor.username, urgent_until), authority_of(inbox)) for inbox in sent],
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
