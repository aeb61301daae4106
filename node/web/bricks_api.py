"""The commons bank's JSON API under ``/api/v1`` (bearer tokens), each operation declared in
``endpoints`` (``node.web.api``)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node.bricks.catalogue import search_bricks
from node.bricks.models import Brick, BrickReview
from node.bricks.service import BrickForbidden
from node.bricks.validation import BrickInvalid
from node.db import read_only
from node.web.api import Answer, Body, Endpoint, Param, cursor, routes_of
from node.web.auth import require_member
from node.web.bricks import catalogue_query
from node.web.bricks_forms import read_payload
from node.web.bricks_ops import (
    create_from_payload,
    delete_by_key,
    load_brick,
    pin_by_key,
    review_by_key,
    update_from_payload,
)
from node.web.context import node_context
from node.web.errors import ApiError

__all__ = ["brick_item", "endpoints", "routes"]


def _invalid(exc: BrickInvalid) -> ApiError:
    return ApiError(422, "some fields are not valid", errors=exc.errors)


def brick_item(brick: Brick) -> dict[str, Any]:
    return {
        "id": brick.uri,
        "key": brick.key,
        "url": brick.url,
        "title": brick.title,
        "category": brick.category,
        "tags": brick.tag_names,
        "summary": brick.summary,
        "authors": [
            {"id": a.actor_uri, "name": a.name, "url": a.profile_url} for a in brick.authors
        ],
        "local": brick.local,
        "published": brick.published_at.isoformat(),
        "updated": brick.updated_at.isoformat(),
        "rating_average": brick.rating_average,
        "rating_count": brick.rating_count,
    }


def _detail(brick: Brick, reviews: list[BrickReview]) -> dict[str, Any]:
    return {
        **brick_item(brick),
        "body": brick.body_markdown,
        "content": brick.body_html,
        "links": brick.links,
        "files": brick.files,
        "licence": brick.licence,
        "version": brick.version,
        "likes": brick.like_count,
        "reviews": [
            {
                "id": r.uri,
                "author": {"id": r.author_uri, "name": r.author_name, "url": r.author_url},
                "rating": r.rating,
                "comment": r.comment_html,
                "used": r.used,
                "local": r.local,
                "published": r.created_at.isoformat(),
            }
            for r in reviews
        ],
    }


async def list_bricks(request: Request) -> Response:
    node = node_context(request)
    query = catalogue_query(node, request.query_params)
    async with read_only(node.sessionmaker) as session:
        page = await search_bricks(session, query)
    next_url = None
    if page.next_cursor is not None:
        params = {k: v for k, v in request.query_params.items() if k not in ("after", "cursor")}
        params["after"] = str(page.next_cursor)
        next_url = node.settings.absolute("/api/v1/bricks?" + urlencode(params))
    return JSONResponse(
        {
            "items": [brick_item(b) for b in page.items],
            "next": next_url,
            "next_cursor": page.next_cursor,
        }
    )


async def create(request: Request) -> Response:
    member = await require_member(request)
    payload = await read_payload(request)
    try:
        brick = await create_from_payload(node_context(request), member, payload)
    except BrickInvalid as exc:
        raise _invalid(exc) from None
    return JSONResponse(
        {"id": brick.uri, "key": brick.key, "url": brick.url},
        status_code=201,
        headers={"Location": brick.url},
    )


async def _detail_response(request: Request, key: str, status_code: int = 200) -> Response:
    node = node_context(request)
    brick = await load_brick(node, key)
    async with read_only(node.sessionmaker) as session:
        reviews = list(
            (
                await session.execute(
                    select(BrickReview)
                    .where(BrickReview.brick_id == brick.id)
                    .order_by(BrickReview.created_at, BrickReview.id)
                )
            ).scalars()
        )
    return JSONResponse(_detail(brick, reviews), status_code=status_code)


async def one_brick(request: Request) -> Response:
    key = request.path_params["key"]
    if request.method == "GET":
        return await _detail_response(request, key)
    member = await require_member(request)
    node = node_context(request)
    try:
        if request.method == "DELETE":
            await delete_by_key(node, member, key)
            return Response(status_code=204)
        payload = await read_payload(request)
        await update_from_payload(node, member, key, payload)
    except BrickInvalid as exc:
        raise _invalid(exc) from None
    except BrickForbidden as exc:
        raise ApiError(403, str(exc)) from None
    return await _detail_response(request, key)


async def pin(request: Request) -> Response:
    """POST pins the brick on my profile (``?as=chamber``: on the chamber's, administrators);
    DELETE unpins. The actor's followers get its new document."""
    member = await require_member(request)
    who = request.query_params.get("as", "me")
    if who not in ("me", "chamber"):
        raise ApiError(400, "as: me or chamber")
    try:
        await pin_by_key(
            node_context(request),
            member,
            request.path_params["key"],
            for_chamber=who == "chamber",
            pinned=request.method == "POST",
        )
    except BrickForbidden as exc:
        raise ApiError(403, str(exc)) from None
    return Response(status_code=204)


async def reviews(request: Request) -> Response:
    member = await require_member(request)
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "send a JSON object with rating and comment")
    key = request.path_params["key"]
    try:
        review = await review_by_key(
            node_context(request), member, key, body.get("rating"), body.get("comment")
        )
    except BrickInvalid as exc:
        raise _invalid(exc) from None
    except BrickForbidden as exc:
        raise ApiError(403, str(exc)) from None
    return JSONResponse(
        {"id": review.uri, "rating": review.rating, "comment": review.comment_html, "used": True},
        status_code=201,
    )


MAX_LIMIT = 100  # node.bricks.catalogue pages at most this many
_KEY = Param("key", "the brick's local key (last segment of its URL)", location="path")
_CATEGORIES = ("concept", "analyse", "methode")
_FORM = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "category": {"type": "string"},
        "summary": {"type": "string"},
        "body": {"type": "string"},
        "tags": {"type": "string"},
        "links": {"type": "string"},
        "authors": {"type": "string"},
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}, "maxItems": 5},
    },
}
_INVALID = Answer("invalid fields (errors: one message per field)")

endpoints = [
    Endpoint(
        "GET",
        "/api/v1/bricks",
        list_bricks,
        "listBricks",
        "The catalogue (local and federated bricks), newest first, paged by keyset",
        {200: Answer("a page", "BrickPage")},
        params=(
            Param("q", "full-text search (every word, as a prefix)"),
            Param("category", "concept, analyse or methode", enum=_CATEGORIES),
            Param("tag", "a tag"),
            Param("author", "a local username or an actor URL"),
            Param("chamber", "a chamber's host"),
            Param("scope", "local, federated or all", enum=("local", "federated", "all")),
            cursor("after", "the `next_cursor` of the previous page"),
            cursor("cursor", "the same as after"),
            Param(
                "limit",
                "items per page (1 to 100)",
                type="integer",
                minimum=1,
                maximum=MAX_LIMIT,
                default=20,
            ),
        ),
        tags=("bricks",),
    ),
    Endpoint(
        "POST",
        "/api/v1/bricks",
        create,
        "createBrick",
        "Publish a brick (federated to the authors' followers, announced by the chamber)",
        {201: Answer("created", "Created", headers=("Location",)), 422: _INVALID},
        auth="member",
        body=Body("BrickInput", forms={**_FORM, "required": ["title", "category", "summary"]}),
        tags=("bricks",),
    ),
    Endpoint(
        "GET",
        "/api/v1/bricks/{key}",
        one_brick,
        "getBrick",
        "One brick with its content, files, links and reviews",
        {200: Answer("the brick", "BrickDetail"), 404: Answer("no such brick")},
        params=(_KEY,),
        tags=("bricks",),
    ),
    Endpoint(
        "PATCH",
        "/api/v1/bricks/{key}",
        one_brick,
        "updateBrick",
        "Edit a brick (its authors only); a new version records who changed what",
        {
            200: Answer("the brick after the edit", "BrickDetail"),
            403: Answer("not one of its authors"),
            404: Answer("no such brick"),
            422: _INVALID,
        },
        auth="member",
        params=(_KEY,),
        body=Body("BrickPatch", forms=_FORM),
        tags=("bricks",),
    ),
    Endpoint(
        "DELETE",
        "/api/v1/bricks/{key}",
        one_brick,
        "deleteBrick",
        "Delete a brick (its authors only); federated as Delete",
        {
            204: Answer("deleted", None),
            403: Answer("not one of its authors"),
            404: Answer("no such brick"),
        },
        auth="member",
        params=(_KEY,),
        tags=("bricks",),
    ),
    *(
        Endpoint(
            method,
            "/api/v1/bricks/{key}/pin",
            pin,
            operation_id,
            summary,
            {
                204: Answer("done", None),
                400: Answer("as is neither me nor chamber"),
                403: Answer("not an author (me) or not an administrator (chamber)"),
                404: Answer("no such brick"),
            },
            auth="member",
            params=(
                _KEY,
                Param("as", "me (my profile) or chamber (administrators)", enum=("me", "chamber")),
            ),
            tags=("bricks",),
        )
        for method, operation_id, summary in (
            ("POST", "pinBrick", "Pin a brick on my profile or the chamber's (featured)"),
            ("DELETE", "unpinBrick", "Unpin a brick"),
        )
    ),
    Endpoint(
        "POST",
        "/api/v1/bricks/{key}/reviews",
        reviews,
        "reviewBrick",
        "I used this brick: a rating (1 to 5) and a comment, sent to its authors as a reply",
        {
            201: Answer("recorded", "Review"),
            403: Answer("one of its authors, or already reviewed"),
            404: Answer("no such brick"),
            422: _INVALID,
        },
        auth="member",
        params=(_KEY,),
        body=Body("ReviewInput"),
        tags=("bricks",),
    ),
]
routes = routes_of(endpoints)
