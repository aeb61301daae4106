"""Receiving activities: verify, check origins, deduplicate, then dispatch to a handler.

Every check happens before any side effect. Domains (bricks, clearing) register handlers
for the activity types they own; the follow handlers live in ``follows``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation, FederationError, authority_of, id_of
from node.activitypub.keys import public_keys_of
from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.proofs import verify_proof
from node.activitypub.signatures import PublicKey, averify_request
from node.activitypub.urls import same_origin
from node.db import read_only
from node.ops.metrics import INBOX_RECEIVED, INBOX_REJECTIONS

__all__ = [
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


@dataclass
class InboxContext:
    """What a handler gets: the activity, who signed it, and the transaction to work in."""

    federation: Federation
    session: AsyncSession
    activity: dict[str, Any]
    actor_uri: str
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


class InboxDispatcher:
    """Handlers by activity type; several may listen to one type (each checks its object)."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def register(self, activity_type: str, handler: Handler) -> None:
        self._handlers.setdefault(activity_type, []).append(handler)

    def handlers_for(self, activity_type: str) -> list[Handler]:
        return list(self._handlers.get(activity_type, ()))


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
    if federation.is_local(actor_uri):
        raise InboxRejected(403, "activities of local actors are not accepted here", "localActor")

    async with read_only(federation.sessionmaker) as session:
        if await federation.is_blocked(session, actor_uri):
            raise InboxRejected(403, f"{authority_of(actor_uri)} is blocked", "blockedDomain")
        recipient_exists = (
            recipient_username is None
            or (
                await session.execute(
                    select(LocalActor.id).where(LocalActor.username == recipient_username)
                )
            ).first()
            is not None
        )
    if not recipient_exists:
        raise InboxRejected(404, f"no actor {recipient_username!r} here", "noRecipient")

    # Verification fetches keys over the network: no transaction is open meanwhile.
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
        log.info("inbox refused %s from %s: %s", activity["id"], actor_uri, result.message)
        raise InboxRejected(401, f"signature refused: {result.message}", str(result.reason))
    signer = owners.get(result.key_id or "")
    if signer != actor_uri and not await _signed_by_actor(federation, activity, actor_uri, now):
        raise InboxRejected(
            403,
            f"the activity's actor {actor_uri} is not the signer {signer}",
            "actorMismatch",
        )
    _check_origins(activity, actor_uri)

    async with federation.sessionmaker() as session:
        recipient = None
        if recipient_username is not None:
            recipient = (
                await session.execute(
                    select(LocalActor).where(LocalActor.username == recipient_username)
                )
            ).scalar_one_or_none()
        existing = await session.execute(
            select(StoredActivity.id).where(StoredActivity.activity_id == activity["id"])
        )
        if existing.first() is not None:
            return InboxResult(202, "already received", "duplicate")

        handlers = dispatcher.handlers_for(activity["type"])
        if not handlers:
            reason = "unhandledType" if activity["type"] in KNOWN_TYPES else "unknownType"
            log.info("inbox ignored %s (%s)", activity["id"], activity["type"])
            return InboxResult(202, f"{activity['type']} activities are ignored here", reason)

        stored = StoredActivity(
            activity_id=activity["id"],
            direction="in",
            actor_uri=actor_uri,
            activity_type=activity["type"],
            object_id=id_of(items_of(activity)[0].get("object")),
            public=_is_public(activity),
            document=activity,
            created_at=now,
        )
        try:
            async with session.begin_nested():
                session.add(stored)
                await session.flush()
        except IntegrityError:
            return InboxResult(202, "already received", "duplicate")
        contexts = [
            InboxContext(federation, session, item, actor_uri, recipient, stored)
            for item in items_of(activity)
        ]
        try:
            for context in contexts:
                for handler in handlers:
                    await handler(context)
        except InboxRejected:
            await session.rollback()
            raise
        except InboxIgnored as exc:
            await session.rollback()
            return InboxResult(202, str(exc), "ignored")
        except FederationError as exc:
            await session.rollback()
            raise InboxRejected(422, str(exc), "unprocessable") from exc
        await session.commit()
    for context in contexts:
        for callback in context.after_commit:
            callback()
    return InboxResult(202, "accepted")


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
