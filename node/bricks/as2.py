"""Bricks as ActivityStreams ``Article``s, both ways (pure).

Out: ``article(doc)`` gives what Mastodon needs to show a brick well — it shows an Article
as ``<h2>name</h2>``, ``summary`` and a link to ``url`` and drops ``content``
(``ActivityPub::Parser::StatusParser#processed_text`` for ``CONVERTED_TYPES``) — so the
name and summary stand on their own; hashtags are ``Hashtag`` tags whose ``href`` is our
tag page. Our own terms (``category``, ``categoryLabel``, ``version``, ``ratingAverage``,
``ratingCount``, ``chamber``) come from the Archipel context inlined in ``@context``.

In: ``parse_article(obj)`` reads a remote Article into a ``BrickDocument`` with its HTML
sanitized and its sizes bounded; ``ArticleInvalid`` says why one is refused.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from node.bricks.text import html_to_text, sanitize_html, summary_html
from node.bricks.validation import (
    CATEGORY_LABELS,
    LICENCE_URL,
    MAX_TAGS,
    MAX_TITLE_CHARS,
    normalize_tag,
    parse_category,
)

__all__ = [
    "PUBLIC",
    "ArticleInvalid",
    "BrickDocument",
    "Reply",
    "article",
    "format_time",
    "parse_article",
    "parse_reply",
    "parse_time",
    "review_note",
]

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
MAX_REMOTE_SUMMARY_CHARS = 2000
MAX_REMOTE_CONTENT_CHARS = 200_000
MAX_REMOTE_ATTACHMENTS = 30


class ArticleInvalid(ValueError):
    """A remote object that is not a brick we can keep; the message says why."""


@dataclass
class BrickDocument:
    uri: str
    url: str
    title: str
    category: str
    summary: str
    body_html: str
    authors: list[str]
    published: datetime
    updated: datetime
    tags: list[str] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    body_markdown: str = ""
    chamber_uri: str | None = None
    version: int = 1
    licence: str = LICENCE_URL
    rating_average: float | None = None
    rating_count: int = 0
    like_count: int = 0


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def article(
    doc: BrickDocument,
    *,
    tag_url: Callable[[str], str],
    cc: list[str] | None = None,
) -> dict[str, Any]:
    """The AS2 ``Article`` of a brick (without ``@context``: ``publish`` adds it)."""
    attachments: list[dict[str, Any]] = [
        {"type": "Link", "href": link["href"], "name": link.get("name") or link["href"]}
        for link in doc.links
    ]
    attachments += [
        {
            "type": "Document",
            "url": f["href"],
            "name": f.get("name") or f["href"],
            "mediaType": f.get("mediaType", "application/octet-stream"),
        }
        for f in doc.files
    ]
    obj: dict[str, Any] = {
        "id": doc.uri,
        "type": "Article",
        "name": doc.title,
        "summary": summary_html(doc.summary),
        "content": doc.body_html,
        "mediaType": "text/html",
        "url": doc.url,
        "attributedTo": list(doc.authors),
        "tag": [{"type": "Hashtag", "href": tag_url(t), "name": f"#{t}"} for t in doc.tags],
        "attachment": attachments,
        "published": format_time(doc.published),
        "updated": format_time(doc.updated),
        "license": doc.licence,
        "category": doc.category,
        "categoryLabel": dict(CATEGORY_LABELS[doc.category]),
        "version": doc.version,
        "ratingCount": doc.rating_count,
        "likes": {"type": "Collection", "totalItems": doc.like_count},
        "to": [PUBLIC],
        "cc": list(cc or []),
    }
    if doc.rating_average is not None:
        obj["ratingAverage"] = doc.rating_average
    if doc.chamber_uri:
        obj["chamber"] = doc.chamber_uri
    if doc.body_markdown:
        obj["source"] = {"content": doc.body_markdown, "mediaType": "text/markdown"}
    return obj


def _ids(value: Any) -> list[str]:
    values = value if isinstance(value, list) else [value]
    found = []
    for item in values:
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict) and isinstance(item.get("id"), str):
            found.append(item["id"])
    return found


def _href(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        for item in value:
            found = _href(item)
            if found:
                return found
        return None
    if isinstance(value, dict):
        return _href(value.get("href") or value.get("url"))
    return None


def _is_web_url(value: str | None) -> bool:
    return (
        isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 2048
    )


def _has_type(obj: dict[str, Any], name: str) -> bool:
    kind = obj.get("type")
    return kind == name or (isinstance(kind, list) and name in kind)


def _text_field(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        mapped = obj.get(name + "Map")
        if isinstance(mapped, dict) and mapped:
            value = next(iter(mapped.values()))
    return value if isinstance(value, str) else ""


def _attachments(raw_attachments: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The links and the files an Article carries, bounded."""
    links: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    if not isinstance(raw_attachments, list):
        raw_attachments = [raw_attachments] if isinstance(raw_attachments, dict) else []
    for item in raw_attachments[:MAX_REMOTE_ATTACHMENTS]:
        if not isinstance(item, dict):
            continue
        href = _href(item.get("href") or item.get("url"))
        if not _is_web_url(href):
            continue
        name = html_to_text(str(item.get("name") or href))[:200]
        if item.get("type") == "Link":
            links.append({"href": href, "name": name})
        else:
            media = item.get("mediaType")
            files.append(
                {
                    "href": href,
                    "name": name,
                    "mediaType": media if isinstance(media, str) else "application/octet-stream",
                }
            )
    return links, files


def parse_article(obj: Any) -> BrickDocument:
    """A remote brick from its Article, sanitized and bounded."""
    if not isinstance(obj, dict) or not _has_type(obj, "Article"):
        raise ArticleInvalid("not an Article")
    uri = obj.get("id")
    if not _is_web_url(uri):
        raise ArticleInvalid("the Article has no usable id")
    assert isinstance(uri, str)
    category = parse_category(obj.get("category"))
    if category is None:
        raise ArticleInvalid("the Article has no Archipel category: not a brick")
    title = html_to_text(_text_field(obj, "name")).replace("\n", " ")[:MAX_TITLE_CHARS]
    if not title:
        raise ArticleInvalid("the Article has no name")
    summary = html_to_text(_text_field(obj, "summary")[:MAX_REMOTE_SUMMARY_CHARS])
    content = sanitize_html(_text_field(obj, "content")[:MAX_REMOTE_CONTENT_CHARS])
    authors = [a for a in _ids(obj.get("attributedTo")) if _is_web_url(a)]
    if not authors:
        raise ArticleInvalid("the Article is attributed to nobody")
    url = _href(obj.get("url"))
    tags: list[str] = []
    for item in obj.get("tag") or [] if isinstance(obj.get("tag"), list) else [obj.get("tag")]:
        if isinstance(item, dict) and item.get("type") == "Hashtag":
            name = normalize_tag(str(item.get("name", "")))
            if name and len(name) <= 64 and name not in tags:
                tags.append(name)
    links, files = _attachments(obj.get("attachment"))
    published = parse_time(obj.get("published")) or datetime.now(UTC)
    updated = parse_time(obj.get("updated")) or published
    version = obj.get("version")
    count = obj.get("ratingCount")
    average = obj.get("ratingAverage")
    likes = obj.get("likes")
    licence = _href(obj.get("license")) or LICENCE_URL
    chamber = _ids(obj.get("chamber"))
    return BrickDocument(
        uri=uri,
        url=url if _is_web_url(url) else uri,  # type: ignore[arg-type]
        title=title,
        category=category,
        summary=summary,
        body_html=content,
        authors=authors[:10],
        published=published,
        updated=updated,
        tags=tags[:MAX_TAGS],
        links=links,
        files=files,
        chamber_uri=chamber[0] if chamber and _is_web_url(chamber[0]) else None,
        version=version if isinstance(version, int) and version > 0 else 1,
        licence=licence[:255],
        rating_average=float(average)
        if isinstance(average, int | float) and 1 <= average <= 5
        else None,
        rating_count=count if isinstance(count, int) and count >= 0 else 0,
        like_count=likes["totalItems"]
        if isinstance(likes, dict) and isinstance(likes.get("totalItems"), int)
        else 0,
    )


@dataclass(frozen=True)
class Reply:
    """A reply to a brick: a ``Note`` with ``inReplyTo``, maybe carrying our ``rating``."""

    uri: str
    in_reply_to: str
    author: str
    content_html: str
    rating: int | None
    published: datetime | None


def parse_reply(obj: Any) -> Reply | None:
    """The reply in ``obj``, or None when it is not a reply to anything."""
    if not isinstance(obj, dict) or not (_has_type(obj, "Note") or _has_type(obj, "Review")):
        return None
    target = _ids(obj.get("inReplyTo"))
    uri = obj.get("id")
    authors = _ids(obj.get("attributedTo"))
    if not target or not isinstance(uri, str) or not authors:
        return None
    rating = obj.get("rating")
    return Reply(
        uri=uri,
        in_reply_to=target[0],
        author=authors[0],
        content_html=sanitize_html(_text_field(obj, "content")[:20_000]),
        rating=rating if isinstance(rating, int) and 1 <= rating <= 5 else None,
        published=parse_time(obj.get("published")),
    )


def review_note(
    *,
    uri: str,
    author: str,
    brick_uri: str,
    brick_title: str,
    comment_html: str,
    rating: int | None,
    published: datetime,
    to: list[str],
    cc: list[str],
) -> dict[str, Any]:
    """Our review: a plain ``Note`` replying to the brick (any fediverse software shows it
    as a reply), whose ``rating`` term carries the stars for Archipel nodes."""
    stars = ""
    if rating is not None:
        stars = f"<p>{'★' * rating}{'☆' * (5 - rating)} {rating}/5 · {html.escape(brick_title)}</p>"
    note: dict[str, Any] = {
        "id": uri,
        "type": "Note",
        "attributedTo": author,
        "inReplyTo": brick_uri,
        "content": stars + comment_html,
        "published": format_time(published),
        "to": to,
        "cc": cc,
    }
    if rating is not None:
        note["rating"] = rating
    return note
