"""Receiving activities: verify, check origins, deduplicate, then route to one handler.

Every check happens before any side effect. Routing is typed: a handler is registered on an
activity type and the type of its object (``("Create", "Article")``), by the domain that owns
that object type; this module knows no domain. ``InboxDispatcher`` documents the rule.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from node.activitypub.federation import Federation, FederationError, authority_of, id_of
from node.activitypub.inbox_store import Received, store_received, why_not_stored
from node.activitypub.keys import public_keys_of
from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.proofs import verify_proof
from node.activitypub.signatures import PublicKey, averify_request
from node.activitypub.urls import same_origin
from node.jobs import Job
from node.ops.metrics import INBOX_RECEIVED, INBOX_REJECTIONS

__all__ = [
    "ACTOR",
    "ANY",
    "Handler",
    "InboxContext",
    "InboxDispatcher",
    "InboxIgnored",
    "InboxRejected",
    "InboxResult",
    "items_of",
    "receive",
]

log = logging.getLogger(__name__)

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_ALIASES = frozenset({PUBLIC, "as:Public", "Public"})
KNOWN_TYPES = frozenset(
    {
        "Accept",
        "Add",
        "Announce",
        "Arrive",
        "Block",
        "Create",
        "Delete",
        "Dislike",
        "Flag",
        "Follow",
        "Ignore",
        "Invite",
        "Join",
        "Leave",
        "Like",
        "Listen",
        "Move",
        "Offer",
        "Question",
        "Read",
        "Reject",
        "Remove",
        "TentativeAccept",
        "TentativeReject",
        "Travel",
        "Undo",
        "Update",
        "View",
        "EmojiReact",
    }
)
#: Activities whose object must come from the actor's own host.
AUTHORED_OBJECT_TYPES = frozenset({"Create", "Update", "Delete"})


class InboxRejected(Exception):
    """Refused before any side effect: ``status`` and a message for the sender."""

    def __init__(self, status: int, message: str, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


class InboxIgnored(Exception):
    """A handler declines a well-formed activity: nothing is kept, the sender gets 202."""


@dataclass(frozen=True)
class InboxResult:
    status: int
    message: str
    reason: str = "accepted"
    #: A handler added a job: the worker has something to do.
    enqueued: bool = False


@dataclass
class InboxContext:
    """What a handler gets: the activity, who signed it, and the transaction to work in."""

    federation: Federation
    session: AsyncSession
    activity: dict[str, Any]
    actor_uri: str
    #: Not loaded by the inbox (None): no handler needs it, and a POST reads nothing it need not.
    recipient: LocalActor | None
    stored: StoredActivity
    extra: dict[str, Any] = field(default_factory=dict)
    #: Called once the handlers' transaction has committed (not if it rolls back).
    after_commit: list[Callable[[], None]] = field(default_factory=list)

    @property
    def type(self) -> str:
        return str(self.activity["type"])

    @property
    def object(self) -> Any:
        return self.activity.get("object")


Handler = Callable[[InboxContext], Awaitable[None]]
ObjectType = str | tuple[str, ...] | None

#: Register on ``ANY`` object type: the handler takes whatever object the activity has
#: (``Follow``, ``Block``, ``Like``), unless a more precise registration matches.
ANY: ObjectType = None
#: The object type of an activity about its own actor named by its id (``Delete`` of an account).
ACTOR = "Actor"
#: ActivityStreams' own object types: in a multi-typed object they are the fallback.
CORE_OBJECT_TYPES = frozenset(
    {"Object", "Note", "Article", "Page", "Document", "Image", "Video", "Audio", "Event"}
    | {"Place", "Profile", "Tombstone", "Question", "Collection", "OrderedCollection"}
)
#: How deep routing follows activities inside activities (``Undo`` → ``Accept`` → ``Update``).
MAX_ROUTE_DEPTH = 3


class InboxDispatcher:
    """One handler per (activity type, object type); the one place that decides "ignored".

    The route of an activity is the chain of its type and its object's types: the object's
    own ``type`` when it is embedded, or, when it is a bare URI, the type of the activity
    stored under that id (received or sent: ``Undo`` names the undone ``Like``, ``Accept``
    our ``Offer``); an activity object is followed to its own object, up to
    ``MAX_ROUTE_DEPTH``. An object that is the activity's own actor (by its id, embedded
    or not: ``Update`` of a profile, ``Delete`` of an account) is ``ACTOR``. So
    ``Undo`` of an ``Offer`` of a ``Settlement`` routes as ``("Undo", "Offer", "Settlement")``.

    A handler registered on ``(activity type, object type)`` - the object type a type, or a
    tuple of nested types, or ``ANY`` - receives every activity whose route starts with it;
    the longest registration wins. An activity no registration matches is not stored and
    is answered 202 "ignored" (``receive``).
    """

    def __init__(self) -> None:
        self._handlers: dict[tuple[str, ...], Handler] = {}

    def register(self, activity_type: str, object_type: ObjectType, handler: Handler) -> None:
        nested = (object_type,) if isinstance(object_type, str) else tuple(object_type or ())
        key = (activity_type, *nested)
        if key in self._handlers:
            raise ValueError(f"{' of '.join(key)} already has a handler")
        self._handlers[key] = handler

    def _registered_type(self, route: list[str], types: list[Any]) -> Any:
        """Of a multi-typed object's types (``["Note", "Proposal"]``), the one a handler is
        registered for after ``route``, else the first (None when there is none)."""
        names = [t for t in types if isinstance(t, str)]
        registered = [name for name in names if (*route, name) in self._handlers]
        # An extension type comes with a core fallback for servers that do not know it:
        # the extension is the more precise registration.
        extensions = [name for name in registered if name not in CORE_OBJECT_TYPES]
        chosen = extensions or registered or names
        return chosen[0] if chosen else None

    def handlers_for(self, activity_type: str) -> list[Handler]:
        """Every handler registered for ``activity_type``, whatever the object."""
        return [h for key, h in self._handlers.items() if key[0] == activity_type]

    def handler_for(self, route: tuple[str, ...]) -> Handler | None:
        for length in range(len(route), 0, -1):
            handler = self._handlers.get(route[:length])
            if handler is not None:
                return handler
        return None

    async def route_of(self, session: AsyncSession, activity: dict[str, Any]) -> tuple[str, ...]:
        """The activity's type and its object's types (see the class)."""
        route = [str(activity["type"])]
        actor = id_of(activity.get("actor"))
        obj = activity.get("object")
        for _ in range(MAX_ROUTE_DEPTH):
            object_id = id_of(obj)
            if len(route) == 1 and object_id is not None and object_id == actor:
                route.append(ACTOR)  # embedded (an Update of a profile) or by its id
                break
            if isinstance(obj, dict) and isinstance(obj.get("type"), list):
                obj = {**obj, "type": self._registered_type(route, obj["type"])}
            if not (isinstance(obj, dict) and isinstance(obj.get("type"), str)):
                uri = id_of(obj)
                if uri is None or len(uri) > 2048 or "\x00" in uri:
                    break  # not an id anything was stored under
                obj = (
                    await session.execute(
                        select(StoredActivity.document).where(StoredActivity.activity_id == uri)
                    )
                ).scalar_one_or_none()
                if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
                    break
            route.append(obj["type"])
            if obj["type"] not in KNOWN_TYPES:
                break  # an object, not an activity: the route ends here
            obj = obj.get("object")
        return tuple(route)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        activity = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise InboxRejected(400, "the body is not valid JSON", "invalidJson") from None
    if not isinstance(activity, dict):
        raise InboxRejected(400, "the body must be a JSON object (an activity)", "invalidJson")
    for name in ("id", "type", "actor"):
        if name not in activity:
            raise InboxRejected(400, f"the activity has no {name!r}", "missingField")
    if not isinstance(activity["id"], str) or len(activity["id"]) > 2048:
        raise InboxRejected(400, "the activity's id must be a URL", "missingField")
    if not isinstance(activity["type"], str):
        raise InboxRejected(400, "the activity's type must be a single string", "missingField")
    if id_of(activity["actor"]) is None:
        raise InboxRejected(400, "the activity's actor must be a URL", "missingField")
    return activity


#: Activities whose ``object`` may be an array, handled item by item (AS2 allows it).
ITEMIZED_TYPES = frozenset({"Create", "Announce", "Delete", "Update"})


def items_of(activity: dict[str, Any]) -> list[dict[str, Any]]:
    """The activity once per object when its ``object`` is an array (``Create`` of two
    notes), each copy with one object; else the activity itself."""
    obj = activity.get("object")
    if activity["type"] in ITEMIZED_TYPES and isinstance(obj, list) and obj:
        return [{**activity, "object": item} for item in obj]
    return [activity]


def _check_origins(activity: dict[str, Any], actor_uri: str) -> None:
    if not same_origin(activity["id"], actor_uri):
        raise InboxRejected(403, "the activity's id is not on its actor's host", "originMismatch")
    if activity["type"] in AUTHORED_OBJECT_TYPES:
        for item in items_of(activity):
            _check_object_origin(item, actor_uri)


def _check_object_origin(activity: dict[str, Any], actor_uri: str) -> None:
    object_id = id_of(activity.get("object"))
    if object_id is None:
        raise InboxRejected(400, "the activity has no object id", "missingField")
    if not same_origin(object_id, actor_uri):
        raise InboxRejected(
            403,
            f"{activity['type']} of an object from another host ({object_id})",
            "originMismatch",
        )
    embedded = activity.get("object")
    if isinstance(embedded, dict):
        attributed = embedded.get("attributedTo")
        owners = attributed if isinstance(attributed, list) else [attributed]
        for owner in owners:
            owner_id = id_of(owner)
            if owner_id is not None and not same_origin(owner_id, actor_uri):
                raise InboxRejected(
                    403, "the object is attributed to another host", "originMismatch"
                )


async def receive(
    federation: Federation,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str] | list[tuple[str, str]],
    body: bytes,
    recipient_username: str | None,
    dispatcher: InboxDispatcher,
) -> InboxResult:
    """Process one inbox POST. Raises ``InboxRejected`` for anything refused."""
    try:
        result = await _receive(
            federation,
            method=method,
            url=url,
            headers=headers,
            body=body,
            recipient_username=recipient_username,
            dispatcher=dispatcher,
        )
    except InboxRejected as exc:
        INBOX_REJECTIONS.inc(reason=exc.reason)
        raise
    INBOX_RECEIVED.inc(result=result.reason)
    return result


async def _receive(
    federation: Federation,
    *,
    method: str,
    url: str,
    headers: Mapping[str, str] | list[tuple[str, str]],
    body: bytes,
    recipient_username: str | None,
    dispatcher: InboxDispatcher,
) -> InboxResult:
    activity = _parse(body)
    actor_uri = id_of(activity["actor"])
    assert actor_uri is not None
    await _check_sender(federation, actor_uri, recipient_username)
    # Verification fetches keys over the network: no transaction is open meanwhile.
    await _verify(federation, activity, actor_uri, method, url, headers, body)
    _check_origins(activity, actor_uri)
    return await _dispatch(federation, activity, actor_uri, recipient_username, dispatcher)


async def _check_sender(
    federation: Federation, actor_uri: str, recipient_username: str | None
) -> None:
    """Refuse a blocked host or a missing recipient before any signature work, from the
    caches (which confirm a refusal in the database; the store checks again)."""
    if federation.is_local(actor_uri):
        raise InboxRejected(403, "activities of local actors are not accepted here", "localActor")
    if await federation.senders.blocked(actor_uri):
        raise InboxRejected(403, f"{authority_of(actor_uri)} is blocked", "blockedDomain")
    if recipient_username is not None and not await federation.senders.has_recipient(
        recipient_username
    ):
        raise InboxRejected(404, f"no actor {recipient_username!r} here", "noRecipient")


async def _verify(
    federation: Federation,
    activity: dict[str, Any],
    actor_uri: str,
    method: str,
    url: str,
    headers: Mapping[str, str] | list[tuple[str, str]],
    body: bytes,
) -> None:
    owners: dict[str, str] = {}

    def resolver(refresh: bool) -> Callable[[str], Awaitable[PublicKey | None]]:
        async def resolve(key_id: str) -> PublicKey | None:
            key, owner = await federation.resolve_key(key_id, refresh=refresh)
            owners[key_id] = owner
            return key

        return resolve

    now = federation.clock()
    result = await averify_request(method, url, headers, body, resolve_key=resolver(False), now=now)
    if not result.ok and result.reason == "invalidSignature":
        # The key may have rotated: fetch it again, once.
        result = await averify_request(
            method, url, headers, body, resolve_key=resolver(True), now=now
        )
    if not result.ok:
        if await federation.senders.blocked_now(actor_uri):  # blocked since it was cached
            raise InboxRejected(403, f"{authority_of(actor_uri)} is blocked", "blockedDomain")
        log.info("inbox refused %s from %s: %s", activity["id"], actor_uri, result.message)
        raise InboxRejected(401, f"signature refused: {result.message}", str(result.reason))
    signer = owners.get(result.key_id or "")
    if signer != actor_uri and not await _signed_by_actor(federation, activity, actor_uri, now):
        raise InboxRejected(
            403,
            f"the activity's actor {actor_uri} is not the signer {signer}",
            "actorMismatch",
        )


def _ignored(
    dispatcher: InboxDispatcher, activity: dict[str, Any], route: tuple[str, ...]
) -> InboxResult:
    """The answer to an activity no handler is registered for."""
    kind = activity["type"]
    log.info("inbox ignored %s (%s)", activity["id"], " of ".join(route))
    if not dispatcher.handlers_for(kind):
        reason = "unhandledType" if kind in KNOWN_TYPES else "unknownType"
        return InboxResult(202, f"{kind} activities are ignored here", reason)
    what = route[1] if len(route) > 1 else "this object"
    return InboxResult(202, f"{kind} of {what} is ignored here", "unhandledObject")


async def _routed_items(
    session: AsyncSession, dispatcher: InboxDispatcher, activity: dict[str, Any]
) -> list[tuple[dict[str, Any], Handler | None, tuple[str, ...]]]:
    """Each item of the activity (``items_of``) with its handler and its route: routing is
    per item, so a ``Delete`` of a note and an article reaches both domains."""
    routed = []
    for item in items_of(activity):
        route = await dispatcher.route_of(session, item)
        routed.append((item, dispatcher.handler_for(route), route))
    return routed


async def _dispatch(
    federation: Federation,
    activity: dict[str, Any],
    actor_uri: str,
    recipient_username: str | None,
    dispatcher: InboxDispatcher,
) -> InboxResult:
    """Store the activity and run its handlers, in one transaction whose first write is the
    insert that also checks the sender's host and the recipient (``inbox_store``).

    The transaction is a Core connection's; the handlers' ORM session joins it, and costs
    nothing (no session transaction, no flush) when a handler does not touch it.
    """
    engine = federation.sessionmaker.kw["bind"]
    async with engine.connect() as connection:
        await connection.begin()
        session = federation.sessionmaker(bind=connection)
        try:
            result, contexts = await _store_and_handle(
                federation, connection, session, activity, actor_uri, recipient_username, dispatcher
            )
            if result.reason == "accepted":
                if session.in_transaction():
                    await session.flush()
                result = replace(
                    result, enqueued=any(isinstance(o, Job) for o in session.identity_map.values())
                )
                await session.close()
                await connection.commit()
        finally:
            await session.close()  # anything not committed is rolled back with the connection
    for context in contexts:
        for callback in context.after_commit:
            callback()
    return result


async def _store_and_handle(
    federation: Federation,
    connection: AsyncConnection,
    session: AsyncSession,
    activity: dict[str, Any],
    actor_uri: str,
    recipient_username: str | None,
    dispatcher: InboxDispatcher,
) -> tuple[InboxResult, list[InboxContext]]:
    routed = await _routed_items(session, dispatcher, activity)
    if not any(handler is not None for _, handler, _ in routed):
        return _ignored(dispatcher, activity, routed[0][2]), []
    received = Received(
        activity,
        actor_uri,
        id_of(routed[0][0].get("object")),
        _is_public(activity),
        federation.clock(),
        recipient_username,
    )
    stored = await store_received(connection, received)
    if stored is None:
        return await _not_stored(federation, connection, received), []
    contexts: list[InboxContext] = []
    try:
        for item, handler, _ in routed:
            if handler is None:
                continue  # this item is ignored, the others are handled
            context = InboxContext(federation, session, item, actor_uri, None, stored)
            contexts.append(context)
            await handler(context)
    except InboxIgnored as exc:
        return InboxResult(202, str(exc), "ignored"), []
    except FederationError as exc:
        raise InboxRejected(422, str(exc), "unprocessable") from exc
    return InboxResult(202, "accepted"), contexts


async def _not_stored(
    federation: Federation, connection: AsyncConnection, received: Received
) -> InboxResult:
    reason = await why_not_stored(connection, received)
    if reason == "duplicate":
        return InboxResult(202, "already received", "duplicate")
    if reason == "blockedDomain":
        raise InboxRejected(403, f"{authority_of(received.actor_uri)} is blocked", "blockedDomain")
    assert received.recipient_username is not None
    federation.senders.not_a_recipient(received.recipient_username)
    raise InboxRejected(404, f"no actor {received.recipient_username!r} here", "noRecipient")


async def _signed_by_actor(
    federation: Federation, activity: dict[str, Any], actor_uri: str, now: datetime
) -> bool:
    """A forwarded activity (relay, inbox forwarding) is accepted when it carries its actor's
    own object proof (Data Integrity) or RsaSignature2017 signature."""
    if "proof" not in activity and "signature" not in activity:
        return False
    try:
        actor = await federation.get_remote_actor(actor_uri)
    except FederationError:
        return False
    keys = public_keys_of(actor.document)
    result = verify_proof(activity, keys.get, now=now)
    if not result.ok:
        log.info("forwarded %s: proof refused: %s", activity.get("id"), result.message)
    return result.ok and all(
        method is not None and method in keys for method in result.verification_methods
    )


def _is_public(activity: dict[str, Any]) -> bool:
    audience: list[Any] = []
    for key in ("to", "cc"):
        value = activity.get(key)
        audience.extend(value if isinstance(value, list) else [value])
    return any(item in PUBLIC_ALIASES for item in audience)
