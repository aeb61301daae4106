"""Offers and needs as FEP-0837 ``Proposal``s, both ways (pure).

Out: ``proposal(doc)`` is a ``Proposal`` (``purpose`` ``offer`` or ``request``) whose
``publishes`` is a ValueFlows ``Intent`` to deliver a service, its ``resourceQuantity`` in
hours (``hasUnit`` ``hour``, ``hasNumericalValue`` a decimal string, as the FEP writes
numbers); our exact ``minutes`` ride along. ``type`` is ``["Note", "Proposal"]``: software
that knows no marketplace (Mastodon, Misskey, which read the first type, Fedify) shows a
Note, as the FEP allows, so ``content`` holds the whole text with its link and hashtags,
``summary`` a one-line headline ("I propose: ...") and ``name`` the title.

In: ``parse_proposal(obj)`` reads a remote Proposal (a ``Proposal``, or a ``Note`` with a
``purpose`` and ``publishes``) into an ``OfferDocument``, its HTML sanitized and its sizes
bounded; ``ProposalInvalid`` says why one is refused.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from node.bricks.text import html_to_text, sanitize_html
from node.bricks.validation import normalize_tag
from node.offers.validation import MAX_OFFER_MINUTES, MAX_TAGS

__all__ = [
    "PUBLIC",
    "OfferDocument",
    "ProposalInvalid",
    "description_html",
    "hours_text",
    "is_proposal",
    "parse_proposal",
    "proposal",
]

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PURPOSES = {"offer": "offer", "need": "request"}
KINDS = {purpose: kind for kind, purpose in PURPOSES.items()}
MAX_TITLE_CHARS = 150
MAX_REMOTE_CONTENT_CHARS = 20_000
MAX_BRICKS = 10
_HOUR_UNITS = (
    "hour",
    "h",
    "om2:hour",
    "http://www.ontology-of-units-of-measure.org/resource/om-2/hour",
)
_MINUTE_UNITS = ("minute", "min", "om2:minute-Time")


class ProposalInvalid(ValueError):
    """A remote object that is not an offer or a need we can keep; the message says why."""


@dataclass
class OfferDocument:
    uri: str
    url: str
    kind: str  # "offer" | "need"
    title: str
    description_html: str
    author: str
    published: datetime
    updated: datetime
    tags: list[str] = field(default_factory=list)
    minutes: int | None = None
    bricks: list[str] = field(default_factory=list)
    chamber_uri: str | None = None


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def hours_text(minutes: int) -> str:
    """``90`` -> ``"1.5"``, ``20`` -> ``"0.3333"``: hours as FEP-0837 numbers (strings)."""
    text = f"{minutes / 60:.4f}".rstrip("0").rstrip(".")
    return text or "0"


def description_html(text: str) -> str:
    """Plain text as escaped paragraphs (a blank line) and line breaks."""
    paragraphs = [p.strip() for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br>".join(html.escape(line) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )


def proposal(
    doc: OfferDocument,
    *,
    headline: str,
    tag_url: Callable[[str], str],
    cc: list[str] | None = None,
) -> dict[str, Any]:
    """The ``Proposal`` of an offer or a need (without ``@context``: the activity carries
    ``node.activitypub.jsonld.proposal_context()``). ``headline`` is the one-line summary
    in the chamber's language ("I propose: Dutch-French translation · 2 h")."""
    quantity: dict[str, Any] = {"hasUnit": "hour"}
    if doc.minutes is not None:
        quantity["hasNumericalValue"] = hours_text(doc.minutes)
    links = "".join(
        f'<p><a href="{html.escape(b, quote=True)}">{html.escape(b)}</a></p>' for b in doc.bricks
    )
    hashtags = " ".join(
        f'<a href="{html.escape(tag_url(t), quote=True)}" class="mention hashtag" rel="tag">'
        f"#{html.escape(t)}</a>"
        for t in doc.tags
    )
    content = (
        f"<p><strong>{html.escape(headline)}</strong></p>{doc.description_html}{links}"
        + (f"<p>{hashtags}</p>" if hashtags else "")
        + f'<p><a href="{html.escape(doc.url, quote=True)}">{html.escape(doc.url)}</a></p>'
    )
    obj: dict[str, Any] = {
        "id": doc.uri,
        "type": ["Note", "Proposal"],
        "purpose": PURPOSES[doc.kind],
        "attributedTo": doc.author,
        "name": doc.title,
        "summary": headline,
        "content": content,
        "mediaType": "text/html",
        "url": doc.url,
        "published": _format_time(doc.published),
        "updated": _format_time(doc.updated),
        "tag": [{"type": "Hashtag", "href": tag_url(t), "name": f"#{t}"} for t in doc.tags],
        "attachment": [{"type": "Link", "href": b, "name": b} for b in doc.bricks],
        "publishes": {
            "id": f"{doc.uri}#primary",
            "type": "Intent",
            "action": "deliverService",
            "resourceQuantity": quantity,
        },
        "unitBased": False,
        "to": [PUBLIC],
        "cc": list(cc or []),
    }
    if doc.minutes is not None:
        obj["minutes"] = doc.minutes
    if doc.chamber_uri:
        obj["chamber"] = doc.chamber_uri
    return obj


def _types(obj: dict[str, Any]) -> list[str]:
    kind = obj.get("type")
    if isinstance(kind, str):
        return [kind]
    return [k for k in kind if isinstance(k, str)] if isinstance(kind, list) else []


def is_proposal(obj: Any) -> bool:
    """A ``Proposal``, or a Note-like object with a ``purpose`` and a ``publishes``."""
    if not isinstance(obj, dict):
        return False
    types = _types(obj)
    if "Proposal" in types or "vf:Proposal" in types:
        return True
    return "purpose" in obj and isinstance(obj.get("publishes"), dict)


def _first_id(value: Any) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) else None


def _is_web_url(value: Any) -> bool:
    return (
        isinstance(value, str) and value.startswith(("https://", "http://")) and len(value) < 2048
    )


def _text_field(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        mapped = obj.get(name + "Map")
        if isinstance(mapped, dict) and mapped:
            value = next(iter(mapped.values()))
    return value if isinstance(value, str) else ""


def _minutes_of(obj: dict[str, Any]) -> int | None:
    exact = obj.get("minutes")
    if isinstance(exact, int) and not isinstance(exact, bool):
        return exact if 1 <= exact <= MAX_OFFER_MINUTES else None
    intent = obj.get("publishes")
    quantity = intent.get("resourceQuantity") if isinstance(intent, dict) else None
    if not isinstance(quantity, dict):
        return None
    unit, value = quantity.get("hasUnit"), quantity.get("hasNumericalValue")
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    if not number.is_finite():
        return None
    if unit in _HOUR_UNITS:
        minutes = int((number * 60).to_integral_value())
    elif unit in _MINUTE_UNITS:
        minutes = int(number.to_integral_value())
    else:
        return None
    return minutes if 1 <= minutes <= MAX_OFFER_MINUTES else None


def parse_proposal(obj: Any, *, now: datetime) -> OfferDocument:
    """A remote offer or need from its Proposal, sanitized and bounded (``now``: when it
    says nothing of its publication)."""
    if not is_proposal(obj):
        raise ProposalInvalid("not a Proposal")
    uri = obj.get("id")
    if not _is_web_url(uri):
        raise ProposalInvalid("the Proposal has no usable id")
    kind = KINDS.get(obj.get("purpose"))  # type: ignore[arg-type]
    if kind is None:
        raise ProposalInvalid("the Proposal's purpose is neither offer nor request")
    author = _first_id(obj.get("attributedTo"))
    if not _is_web_url(author):
        raise ProposalInvalid("the Proposal has no attributedTo")
    assert isinstance(author, str) and isinstance(uri, str)
    title = html_to_text(_text_field(obj, "name")).replace("\n", " ").strip()
    if not title:
        title = html_to_text(_text_field(obj, "summary")).replace("\n", " ").strip()
    if not title:
        raise ProposalInvalid("the Proposal has no name")
    content = _text_field(obj, "content")[:MAX_REMOTE_CONTENT_CHARS]
    tags: list[str] = []
    raw_tags = obj.get("tag")
    for tag in raw_tags if isinstance(raw_tags, list) else [raw_tags]:
        if isinstance(tag, dict) and "Hashtag" in _types(tag) and isinstance(tag.get("name"), str):
            name = normalize_tag(tag["name"])[:40]
            if name and name not in tags:
                tags.append(name)
    bricks: list[str] = []
    raw_links = obj.get("attachment")
    for link in raw_links if isinstance(raw_links, list) else [raw_links]:
        href = link.get("href") if isinstance(link, dict) else None
        if isinstance(href, str) and _is_web_url(href) and href not in bricks:
            bricks.append(href)
    url = obj.get("url")
    if isinstance(url, list):
        url = url[0] if url else None
    if isinstance(url, dict):
        url = url.get("href")
    published = _parse_time(obj.get("published")) or now
    chamber = obj.get("chamber")
    return OfferDocument(
        uri=uri,
        url=url if _is_web_url(url) else uri,
        kind=kind,
        title=title[:MAX_TITLE_CHARS],
        description_html=sanitize_html(content),
        author=author,
        published=published,
        updated=_parse_time(obj.get("updated")) or published,
        tags=tags[:MAX_TAGS],
        minutes=_minutes_of(obj),
        bricks=bricks[:MAX_BRICKS],
        chamber_uri=chamber if _is_web_url(chamber) else None,
    )
