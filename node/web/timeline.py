"""The member's timeline ("Fil"): ``/timeline`` (page) and ``GET /api/v1/timeline`` (JSON).

Built per member from its follows and its chamber's (``node.activitypub.timeline``); content
is sanitised (``node.bricks.text``) and links to the original.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.activitypub.federation import id_of
from node.activitypub.timeline import TimelineEntry, timeline
from node.bricks.models import Brick
from node.bricks.text import html_to_text, sanitize_html
from node.db import read_only
from node.members.models import Member
from node.web._members import page_member
from node.web.api import ID_MAX, Answer, Endpoint, cursor, routes_of
from node.web.auth import require_member
from node.web.bricks import category_label
from node.web.context import NodeContext, node_context
from node.web.errors import ApiError
from node.web.people import People, load_people
from node.web.templating import render

__all__ = ["TIMELINE_SCHEMAS", "TimelineItem", "endpoints", "routes"]

PAGE_SIZE = 20
_SUMMARY_LENGTH = 500


@dataclass(frozen=True)
class TimelineItem:
    key: int
    id: str
    type: str
    actor: str
    published: str
    summary: str
    url: str
    title: str
    content_html: str
    brick: Brick | None
    reply_to: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "actor": self.actor,
            "published": self.published,
            "summary": self.summary,
            "url": self.url,
        }


def _url_of(obj: dict[str, Any], fallback: str) -> str:
    url = obj.get("url")
    if isinstance(url, list):
        url = url[0] if url else None
    if isinstance(url, dict):
        url = url.get("href")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) else fallback


def _item(entry: TimelineEntry, bricks: dict[str, Brick]) -> TimelineItem:
    obj = entry.object or {}
    object_id = entry.object_id or ""
    brick = bricks.get(object_id)
    kind = obj.get("type") if isinstance(obj.get("type"), str) else "Object"
    author = id_of(obj.get("attributedTo"))
    if isinstance(obj.get("attributedTo"), list) and obj["attributedTo"]:
        author = id_of(obj["attributedTo"][0])
    title, content, summary = (
        value if isinstance(value := obj.get(key), str) else ""
        for key in ("name", "content", "summary")
    )
    if brick is not None:
        title, summary = brick.title, brick.summary
    text = html_to_text(summary or content)
    published = obj.get("published")
    return TimelineItem(
        key=entry.key,
        id=object_id,
        type=str(kind),
        actor=author or entry.actor,
        published=published if isinstance(published, str) else entry.received_at.isoformat(),
        summary=" ".join(filter(None, [html_to_text(str(title)), text]))[:_SUMMARY_LENGTH],
        url=_url_of(obj, object_id),
        title=html_to_text(str(title))[:200],
        content_html=sanitize_html(content) if content else "",
        brick=brick,
        reply_to=id_of(obj.get("inReplyTo")),
    )


async def member_timeline(
    node: NodeContext, member: Member, before: int | None
) -> tuple[list[TimelineItem], int | None, People]:
    """The member's page of the timeline, the next cursor and the people it names."""
    readers = [
        node.federation.urls(member.username).id,
        node.federation.urls(node.settings.chamber_username).id,
    ]
    async with read_only(node.sessionmaker) as session:
        page = await timeline(session, readers, before=before, limit=PAGE_SIZE)
        ids = [e.object_id for e in page.entries if e.object_id]
        bricks = {
            b.uri: b
            for b in (await session.execute(select(Brick).where(Brick.uri.in_(ids)))).scalars()
        }
        items = [_item(e, bricks) for e in page.entries]
        people = await load_people(
            session, node.federation, node.settings, [i.actor for i in items]
        )
    return items, page.next_before, people


def _before(request: Request) -> int | None:
    raw = request.query_params.get("before")
    if not raw:
        return None
    if not raw.isdigit() or len(raw) > 10 or not 1 <= int(raw) <= ID_MAX:
        raise ApiError(400, "before must be a positive integer (a cursor from a next link)")
    return int(raw)


async def timeline_page(request: Request) -> Response:
    node = node_context(request)
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    items, next_before, people = await member_timeline(node, member, _before(request))
    return render(
        request,
        "timeline.html",
        items=items,
        people=people,
        next_before=next_before,
        category_label=category_label,
    )


async def api_timeline(request: Request) -> Response:
    node = node_context(request)
    member = await require_member(request)
    before = request.query_params.get("before")
    items, next_before, _ = await member_timeline(node, member, int(before) if before else None)
    return JSONResponse({"items": [i.as_json() for i in items], "next": next_before})


_TEXT = {"type": "string"}
TIMELINE_SCHEMAS: dict[str, Any] = {
    "Timeline": {
        "type": "object",
        "required": ["items", "next"],
        "properties": {
            "items": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["id", "type", "actor", "published", "summary", "url"],
                    "properties": {
                        "id": _TEXT,
                        "type": _TEXT,
                        "actor": _TEXT,
                        "published": _TEXT,
                        "summary": _TEXT,
                        "url": _TEXT,
                    },
                },
            },
            "next": {
                "type": ["integer", "null"],
                "description": "the `before` of the next page (null: the last page)",
            },
        },
    }
}

endpoints = [
    Endpoint(
        "GET",
        "/api/v1/timeline",
        api_timeline,
        "timeline",
        "What the accounts the member (and its chamber) follows published, newest first",
        {200: Answer("a page of the member's timeline", "Timeline")},
        auth="member",
        params=(cursor("before", "the `next` of the previous page"),),
        tags=("federation",),
    )
]

routes = [*routes_of(endpoints), Route("/timeline", timeline_page, methods=["GET"])]
