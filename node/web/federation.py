"""Inboxes, outbox and follower collections, and the follow API. Thin: the work is in
``node.activitypub``."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.activitypub.actors import get_local_actor
from node.activitypub.featured import featured_ids
from node.activitypub.federation import FederationError
from node.activitypub.follows import follow, unfollow
from node.activitypub.inbox import InboxRejected, receive
from node.activitypub.jsonld import AS2_CONTEXT
from node.activitypub.models import Follow, FollowState, LocalActor, StoredActivity
from node.activitypub.outbox import sent_object, tombstone_of
from node.db import read_only, session_scope
from node.web.api import ID_MAX, Answer, Body, Endpoint, cursor, routes_of
from node.web.auth import require_member
from node.web.context import NodeContext, node_context
from node.web.errors import ApiError
from node.web.negotiation import ActivityJSONResponse
from node.web.profiles import find_identity

__all__ = ["endpoints", "routes"]

PAGE_SIZE = 20
_INBOX_TYPES = ("application/activity+json", "application/ld+json", "application/json")


def _public_url(node: NodeContext, request: Request) -> str:
    query = request.url.query
    return node.settings.url + request.url.path + (f"?{query}" if query else "")


async def inbox(request: Request) -> Response:
    node = node_context(request)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _INBOX_TYPES:
        raise ApiError(415, "send the activity as application/activity+json")
    body = await request.body()
    try:
        result = await receive(
            node.federation,
            method=request.method,
            url=_public_url(node, request),
            headers=list(request.headers.items()),
            body=body,
            recipient_username=request.path_params.get("username"),
            dispatcher=node.dispatcher,
        )
    except InboxRejected as exc:
        raise ApiError(exc.status, exc.message, reason=exc.reason) from None
    if result.enqueued:
        node.worker.wakeup.set()
    return JSONResponse(
        {"status": result.message, "reason": result.reason}, status_code=result.status
    )


async def _actor_or_404(node: NodeContext, username: str) -> LocalActor:
    async with read_only(node.sessionmaker) as session:
        identity = await find_identity(session, node.settings, username)
    if identity is None:
        raise ApiError(404, f"no actor named {username!r} on this node")
    return identity.actor


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("before")
    if raw is None:
        return None
    if not raw.isdigit() or len(raw) > 10 or not 1 <= int(raw) <= ID_MAX:
        raise ApiError(400, "before must be a positive integer (a cursor from a next link)")
    return int(raw)


def _collection(collection_id: str, total: int) -> dict[str, Any]:
    return {
        "@context": AS2_CONTEXT,
        "id": collection_id,
        "type": "OrderedCollection",
        "totalItems": total,
        "first": f"{collection_id}?page=true",
    }


def _page(
    collection_id: str, request: Request, items: list[Any], cursors: list[int]
) -> dict[str, Any]:
    query = str(request.url.query)
    page: dict[str, Any] = {
        "@context": AS2_CONTEXT,
        "id": f"{collection_id}?{query}",
        "type": "OrderedCollectionPage",
        "partOf": collection_id,
        "orderedItems": items,
    }
    if len(items) == PAGE_SIZE:
        page["next"] = f"{collection_id}?page=true&before={cursors[-1]}"
    return page


async def follow_collection(request: Request) -> Response:
    node = node_context(request)
    actor = await _actor_or_404(node, request.path_params["username"])
    urls = node.federation.urls(actor.username)
    followers = request.url.path.endswith("/followers")
    collection_id = urls.followers if followers else urls.following
    mine = Follow.followee_uri if followers else Follow.follower_uri
    other = Follow.follower_uri if followers else Follow.followee_uri
    where = [mine == urls.id, Follow.state == FollowState.ACCEPTED]
    async with read_only(node.sessionmaker) as session:
        if "page" not in request.query_params:
            total = (await session.execute(select(func.count()).where(*where))).scalar_one()
            return ActivityJSONResponse(_collection(collection_id, int(total)))
        query = select(Follow.id, other).where(*where).order_by(Follow.id.desc()).limit(PAGE_SIZE)
        before = _cursor(request)
        if before is not None:
            query = query.where(Follow.id < before)
        rows = (await session.execute(query)).all()
    return ActivityJSONResponse(
        _page(collection_id, request, [uri for _, uri in rows], [pk for pk, _ in rows])
    )


async def outbox(request: Request) -> Response:
    node = node_context(request)
    actor = await _actor_or_404(node, request.path_params["username"])
    urls = node.federation.urls(actor.username)
    where = [
        StoredActivity.actor_uri == urls.id,
        StoredActivity.direction == "out",
        StoredActivity.public.is_(True),
    ]
    async with read_only(node.sessionmaker) as session:
        if "page" not in request.query_params:
            total = (
                await session.execute(select(func.count(StoredActivity.id)).where(*where))
            ).scalar_one()
            return ActivityJSONResponse(_collection(urls.outbox, int(total)))
        query = (
            select(StoredActivity).where(*where).order_by(StoredActivity.id.desc()).limit(PAGE_SIZE)
        )
        before = _cursor(request)
        if before is not None:
            query = query.where(StoredActivity.id < before)
        rows = list((await session.execute(query)).scalars())
    items = [{k: v for k, v in row.document.items() if k != "@context"} for row in rows]
    return ActivityJSONResponse(_page(urls.outbox, request, items, [r.id for r in rows]))


async def activity(request: Request) -> Response:
    """One of our public activities by its id (private ones are not served)."""
    node = node_context(request)
    activity_id = node.settings.url + request.url.path
    async with read_only(node.sessionmaker) as session:
        stored = (
            await session.execute(
                select(StoredActivity).where(
                    StoredActivity.activity_id == activity_id,
                    StoredActivity.direction == "out",
                )
            )
        ).scalar_one_or_none()
    if stored is None or not stored.public:
        raise ApiError(404, "no public activity with this id")
    return ActivityJSONResponse(stored.document)


async def featured(request: Request) -> Response:
    """The actor's pinned objects (Mastodon's ``featured``), by id."""
    node = node_context(request)
    actor = await _actor_or_404(node, request.path_params["username"])
    urls = node.federation.urls(actor.username)
    async with read_only(node.sessionmaker) as session:
        items = await featured_ids(session, urls.id)
    return ActivityJSONResponse(
        {
            "@context": AS2_CONTEXT,
            "id": urls.featured,
            "type": "OrderedCollection",
            "totalItems": len(items),
            "orderedItems": items,
        }
    )


async def sent_note(request: Request) -> Response:
    """A note we sent (chamber news), as its latest Create/Update holds it; 410 with a
    ``Tombstone`` once deleted."""
    node = node_context(request)
    object_id = node.settings.url + request.url.path
    async with read_only(node.sessionmaker) as session:
        document = await sent_object(session, object_id)
        tombstone = None if document is not None else await tombstone_of(session, object_id)
    if document is not None:
        return ActivityJSONResponse(document)
    if tombstone is not None:
        return ActivityJSONResponse(tombstone, status_code=410)
    raise ApiError(404, "no public note with this id")


async def api_follows(request: Request) -> Response:
    """POST {"handle": "@user@host" | actor URL} makes the member follow it; DELETE undoes."""
    node = node_context(request)
    member = await require_member(request)
    try:
        payload = await request.json()
    except ValueError:
        raise ApiError(400, 'the body must be JSON: {"handle": "@user@host"}') from None
    handle = payload.get("handle") if isinstance(payload, dict) else None
    if not isinstance(handle, str) or not handle.strip() or len(handle) > 2048:
        raise ApiError(422, "invalid input", fields={"handle": "give @user@host or an actor URL"})
    try:
        target = await node.federation.resolve_handle(handle)
        await node.federation.get_remote_actor(target)
        async with session_scope(node.sessionmaker) as session:
            actor = await get_local_actor(session, member.username)
            assert actor is not None
            if request.method == "DELETE":
                done = await unfollow(node.federation, session, actor, target)
                state = "none" if done else "not-following"
            else:
                state = (await follow(node.federation, session, actor, target)).state
    except FederationError as exc:
        raise ApiError(422, str(exc), fields={"handle": str(exc)}) from None
    node.worker.wakeup.set()
    status = 202 if request.method == "POST" else 200
    return JSONResponse({"target": target, "state": state}, status_code=status)


async def api_inbox(request: Request) -> Response:
    """What was delivered to this node from actors its members or chamber follow."""
    node = node_context(request)
    await require_member(request)
    async with read_only(node.sessionmaker) as session:
        query = (
            select(StoredActivity)
            .where(StoredActivity.direction == "in")
            .order_by(StoredActivity.id.desc())
            .limit(PAGE_SIZE)
        )
        before = _cursor(request)
        if before is not None:
            query = query.where(StoredActivity.id < before)
        rows = list((await session.execute(query)).scalars())
    items = [
        {
            "key": row.id,
            "id": row.activity_id,
            "type": row.activity_type,
            "actor": row.actor_uri,
            "object": row.object_id,
            "received_at": row.created_at.isoformat(),
            "activity": row.document,
        }
        for row in rows
    ]
    return JSONResponse({"items": items})


endpoints = [
    Endpoint(
        "GET",
        "/api/v1/inbox",
        api_inbox,
        "inbox",
        "What was delivered to this node from the actors its members or chamber follow",
        {200: Answer("the latest activities, newest first", "Inbox")},
        auth="member",
        params=(cursor("before", "the key of the last item of the previous page"),),
        tags=("federation",),
    ),
    *(
        Endpoint(
            method,
            "/api/v1/follows",
            api_follows,
            operation_id,
            summary,
            {
                status: Answer(f"the target and the state of {what}", "Following"),
                422: Answer("not a handle, or the actor cannot be fetched (fields: handle)"),
            },
            auth="member",
            body=Body("FollowInput"),
            tags=("federation",),
        )
        for method, operation_id, summary, status, what in (
            ("POST", "follow", "Follow @user@host or an actor URL", 202, "the follow"),
            ("DELETE", "unfollow", "Stop following an actor", 200, "following it now"),
        )
    ),
]

routes = [
    *routes_of(endpoints[:1]),
    Route("/inbox", inbox, methods=["POST"]),
    Route("/actors/{username}/inbox", inbox, methods=["POST"]),
    Route("/actors/{username}/outbox", outbox, methods=["GET"]),
    Route("/actors/{username}/followers", follow_collection, methods=["GET"]),
    Route("/actors/{username}/following", follow_collection, methods=["GET"]),
    Route("/actors/{username}/activities/{uuid}", activity, methods=["GET"]),
    Route("/actors/{username}/notes/{uuid}", sent_note, methods=["GET"]),
    Route("/actors/{username}/collections/featured", featured, methods=["GET"]),
    *routes_of(endpoints[1:]),
]
