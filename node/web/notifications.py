"""Notifications: the page, the JSON API, and the unread count shown in the navigation.

``GET /api/v1/notifications`` (bearer token or session) answers
``{"items": [{"id", "type", "created_at", "read", "url", "summary"}], "unread": N}``, newest
first (at most 50), ``summary`` in the caller's language. ``POST /api/v1/notifications/read``
with ``{"ids": [1, 2]}`` marks those read; with ``{}``, ``{"ids": []}`` or no body it marks
them all; it answers ``{"marked": n, "unread": N}``.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from node import i18n
from node.db import read_only, session_scope
from node.members.models import Member, Notification
from node.members.notifications import list_notifications, mark_read, summary, unread_count
from node.web._members import page_member
from node.web.api import ID_MAX, Answer, Body, Endpoint, routes_of
from node.web.auth import require_member
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.templating import render

__all__ = ["endpoints", "UNREAD_STATE", "UnreadCountMiddleware", "notification_json", "routes"]

#: ``request.state`` attribute holding the signed-in member's unread count (pages only).
UNREAD_STATE = "unread_notifications"
MAX_IDS = 500


class UnreadCountMiddleware:
    """For a signed-in member's page views (GET asking for HTML), counts their unread
    notifications once, for the navigation of ``base.html``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            member_id = scope.get("session", {}).get("member_id")
            accept = dict(scope["headers"]).get(b"accept", b"")
            if isinstance(member_id, int) and not scope["path"].startswith("/api/"):
                if b"json" not in accept or b"text/html" in accept:
                    node = scope["app"].state.node
                    async with read_only(node.sessionmaker) as session:
                        scope.setdefault("state", {})[UNREAD_STATE] = await unread_count(
                            session, member_id
                        )
        await self.app(scope, receive, send)


def notification_json(request: Request, note: Notification, language: str) -> dict[str, Any]:
    url = note.url
    if url.startswith("/"):
        url = node_context(request).settings.absolute(url)
    return {
        "id": note.id,
        "type": note.type,
        "created_at": note.created_at.isoformat().replace("+00:00", "Z"),
        "read": note.read_at is not None,
        "url": url,
        "summary": summary(note, language),
    }


def _language(request: Request, member: Member) -> str:
    return i18n.negotiate_language(
        member.language,
        request.headers.get("accept-language"),
        node_context(request).settings.language,
    )


async def notifications_api(request: Request) -> Response:
    member = await require_member(request)
    node = node_context(request)
    language = _language(request, member)
    async with read_only(node.sessionmaker) as session:
        notes = await list_notifications(session, member)
        unread = await unread_count(session, member.id)
    return JSONResponse(
        {"items": [notification_json(request, n, language) for n in notes], "unread": unread}
    )


def _ids(body: bytes) -> list[int] | None:
    """The ``ids`` of the body, or None for all of them; ApiError when malformed."""
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except ValueError:
        raise ApiError(400, 'the body must be a JSON object such as {"ids": [1, 2]}') from None
    if not isinstance(data, dict):
        raise ApiError(400, 'the body must be a JSON object such as {"ids": [1, 2]}')
    ids = data.get("ids", [])
    if not isinstance(ids, list) or not all(
        isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= ID_MAX for i in ids
    ):
        message = f"a list of notification ids (whole numbers from 1 to {ID_MAX})"
        raise ApiError(422, f"ids: {message}", errors={"ids": message})
    if len(ids) > MAX_IDS:
        message = f"at most {MAX_IDS} at a time"
        raise ApiError(422, f"ids: {message}", errors={"ids": message})
    return ids or None


async def mark_read_api(request: Request) -> Response:
    member = await require_member(request)  # CSRF: checked by node.web.csrf for sessions
    ids = _ids(await request.body())
    node = node_context(request)
    async with session_scope(node.sessionmaker) as session:
        marked = await mark_read(session, member, ids)
        unread = await unread_count(session, member.id)
    return JSONResponse({"marked": marked, "unread": unread})


async def notifications_page(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    node = node_context(request)
    if request.method == "POST":
        form = await request.form()
        raw = form.get("id")
        ids = [int(raw)] if isinstance(raw, str) and raw.isdigit() else None
        async with session_scope(node.sessionmaker) as session:
            await mark_read(session, member, ids)
        return RedirectResponse("/notifications", status_code=303)
    language = i18n.current_language()
    async with read_only(node.sessionmaker) as session:
        notes = await list_notifications(session, member)
    items = [notification_json(request, note, language) for note in notes]
    return render(request, "account/notifications.html", items=items)


_TAGS = ("notifications",)

endpoints = [
    Endpoint(
        "GET",
        "/api/v1/notifications",
        notifications_api,
        "listNotifications",
        "My notifications, newest first (at most 50), each summary in my language",
        {200: Answer("the notifications and how many are unread", "NotificationList")},
        auth="member",
        tags=_TAGS,
    ),
    Endpoint(
        "POST",
        "/api/v1/notifications/read",
        mark_read_api,
        "markNotificationsRead",
        "Mark my notifications read: those of `ids`, or all of them when `ids` is empty or"
        " missing (or the body is empty)",
        {
            200: Answer(
                "how many were marked, and how many stay unread",
                {
                    "type": "object",
                    "required": ["marked", "unread"],
                    "properties": {
                        "marked": {"type": "integer", "minimum": 0},
                        "unread": {"type": "integer", "minimum": 0},
                    },
                },
            ),
            422: Answer("ids is not a list of at most 500 notification ids"),
        },
        auth="member",
        body=Body(
            {
                "type": "object",
                "properties": {
                    "ids": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 1, "maximum": ID_MAX},
                        "maxItems": MAX_IDS,
                    }
                },
            },
            required=False,
        ),
        tags=_TAGS,
    ),
]

routes = [
    Route("/notifications", notifications_page, methods=["GET", "POST"]),
    *routes_of(endpoints),
]
