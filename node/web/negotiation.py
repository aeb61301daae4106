"""Content negotiation between AS2 JSON and HTML for every object that has an id."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "AS2_CONTENT_TYPE",
    "ActivityJSONResponse",
    "parse_accept",
    "wants_activity_json",
    "wants_page",
]

AS2_CONTENT_TYPE = "application/activity+json"
AS2_PROFILE = "https://www.w3.org/ns/activitystreams"


def parse_accept(header: str) -> list[tuple[str, dict[str, str], float]]:
    """``Accept`` as (media type, parameters, quality) triples, at most 32 of them."""
    entries = []
    for part in header.split(",")[:32]:
        pieces = [p.strip() for p in part.split(";")]
        media = pieces[0].lower()
        if not media:
            continue
        params: dict[str, str] = {}
        quality = 1.0
        for raw in pieces[1:]:
            key, _, value = raw.partition("=")
            key, value = key.strip().lower(), value.strip().strip('"')
            if key == "q":
                try:
                    quality = max(0.0, min(1.0, float(value)))
                except ValueError:
                    quality = 0.0
            elif key:
                params[key] = value
        entries.append((media, params, quality))
    return entries


def _is_as2(media: str, params: dict[str, str]) -> bool:
    if media == "application/activity+json":
        return True
    if media == "application/ld+json":
        profile = params.get("profile")
        return profile is None or AS2_PROFILE in profile.split()
    return media == "application/json"


def wants_activity_json(request: Request) -> bool:
    """True when the client prefers AS2 JSON to HTML. Browsers and a missing header get HTML."""
    best_as2 = 0.0
    best_html = 0.0
    for media, params, quality in parse_accept(request.headers.get("accept", "")):
        if _is_as2(media, params):
            # application/json is a weaker signal than an explicit AS2 type.
            weight = quality - (0.001 if media == "application/json" else 0.0)
            best_as2 = max(best_as2, weight)
        elif media in ("text/html", "application/xhtml+xml", "*/*", "text/*"):
            weight = quality - (0.002 if media in ("*/*", "text/*") else 0.0)
            best_html = max(best_html, weight)
    return best_as2 > 0 and best_as2 > best_html


class ActivityJSONResponse(Response):
    """AS2 JSON served as ``application/activity+json``, negotiated on ``Accept``."""

    media_type = AS2_CONTENT_TYPE

    def __init__(self, content: Any, status_code: int = 200, **kwargs: Any) -> None:
        headers = dict(kwargs.pop("headers", None) or {})
        headers.setdefault("Vary", "Accept")
        super().__init__(content, status_code=status_code, headers=headers, **kwargs)

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def wants_page(request: Request) -> bool:
    """A person's browser asking for HTML (``Accept: text/html``)."""
    accept = parse_accept(request.headers.get("accept", ""))
    return any(media == "text/html" and quality > 0 for media, _params, quality in accept)
