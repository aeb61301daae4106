"""What an offer or a need may hold, one message per bad field (pure).

``validate_offer(data)`` takes what a form or a JSON body gave and returns an
``OfferInput`` or raises ``OfferInvalid``, whose ``errors`` map each bad field to a sentence
in the request's language (``node.i18n``). The estimate is minutes (a whole number) or a
duration as people write it ("1 h 30", ``node.clearing.units.parse_duration``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from node import i18n
from node.bricks.validation import normalize_tag
from node.clearing.units import DurationError, parse_duration

__all__ = [
    "KINDS",
    "MAX_DESCRIPTION_CHARS",
    "MAX_OFFER_MINUTES",
    "MAX_TAGS",
    "OfferInput",
    "OfferInvalid",
    "parse_tags",
    "validate_offer",
]

KINDS = ("offer", "need")
MIN_TITLE_CHARS = 3
MAX_TITLE_CHARS = 150
MAX_DESCRIPTION_CHARS = 5000
MAX_TAGS = 10
MAX_TAG_CHARS = 40
MAX_BRICKS = 10
#: An estimate of at most 100 hours: an offer is a task, not a job.
MAX_OFFER_MINUTES = 100 * 60
_TAG_RE = re.compile(r"^[\w-]+$")


class OfferInvalid(ValueError):
    """Some fields are wrong: ``errors`` maps each one to what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class OfferInput:
    kind: str
    title: str
    description: str
    tags: list[str] = field(default_factory=list)
    minutes: int | None = None
    bricks: list[str] = field(default_factory=list)


def _(message: str, **params: Any) -> str:
    translated = i18n.gettext(message)
    return translated % params if params else translated


def _items(value: Any, separators: str) -> list[str] | None:
    if value is None:
        return []
    if isinstance(value, str):
        parts = re.split(f"[{re.escape(separators)}]", value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = value
    else:
        return None
    return [p.strip() for p in parts if p.strip()]


def parse_tags(value: Any) -> tuple[list[str], str | None]:
    """Normalized tags (at most ``MAX_TAGS``) and the error message, if any."""
    raw_tags = _items(value, ",")
    if raw_tags is None:
        return [], _("give tags as a list of words or a comma-separated text")
    tags: list[str] = []
    for raw in raw_tags:
        tag = normalize_tag(raw)
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS or not _TAG_RE.match(tag):
            return [], _(
                "the tag '%(tag)s' is not valid: use letters, digits, - or _ (a space"
                " becomes -), at most %(count)d characters",
                tag=raw,
                count=MAX_TAG_CHARS,
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        return [], _("too many tags: at most %(count)d", count=MAX_TAGS)
    return tags, None


def _minutes(value: Any) -> tuple[int | None, str | None]:
    wrong = _(
        "give an estimate such as 1 h 30, 45 min or 2 h (at most %(hours)d hours), or leave"
        " it empty",
        hours=MAX_OFFER_MINUTES // 60,
    )
    if value is None or value == "":
        return None, None
    if isinstance(value, bool):
        return None, wrong
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None, None
        try:
            value = int(text) if text.isdigit() else parse_duration(text)
        except (DurationError, ValueError):
            return None, wrong
    if not isinstance(value, int) or not 1 <= value <= MAX_OFFER_MINUTES:
        return None, wrong
    return value, None


def validate_offer(data: Mapping[str, Any]) -> OfferInput:
    """Check every field and report all the errors at once."""
    errors: dict[str, str] = {}
    kind = data.get("kind")
    if kind not in KINDS:
        errors["kind"] = _("choose an offer (I propose) or a need (I am looking for)")
    title = data.get("title")
    if not isinstance(title, str):
        errors["title"] = _("the title must be text")
        title = ""
    title = " ".join(title.split())
    if "title" not in errors:
        if len(title) < MIN_TITLE_CHARS:
            errors["title"] = _(
                "give a title of at least %(count)d characters", count=MIN_TITLE_CHARS
            )
        elif len(title) > MAX_TITLE_CHARS:
            errors["title"] = _(
                "the title is too long: at most %(count)d characters", count=MAX_TITLE_CHARS
            )
    description = data.get("description")
    if description is None:
        description = ""
    if not isinstance(description, str):
        errors["description"] = _("the description must be text")
        description = ""
    description = description.replace("\r\n", "\n").strip()
    if "description" not in errors:
        if not description:
            errors["description"] = _("say in a few lines what you propose or look for")
        elif len(description) > MAX_DESCRIPTION_CHARS:
            errors["description"] = _(
                "the description is too long: at most %(count)d characters",
                count=MAX_DESCRIPTION_CHARS,
            )
    tags, tag_error = parse_tags(data.get("tags"))
    if tag_error:
        errors["tags"] = tag_error
    minutes, minutes_error = _minutes(data.get("minutes"))
    if minutes_error:
        errors["minutes"] = minutes_error
    bricks = _items(data.get("bricks"), "\n ")
    if bricks is None or len(bricks) > MAX_BRICKS:
        errors["bricks"] = _(
            "give the addresses of at most %(count)d bricks, one per line", count=MAX_BRICKS
        )
        bricks = []
    for link in bricks:
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(link) > 2048:
            errors["bricks"] = _("'%(link)s' is not a web address (http:// or https://)", link=link)
            break
    if errors:
        raise OfferInvalid(errors)
    return OfferInput(
        kind=str(kind),
        title=title,
        description=description,
        tags=tags,
        minutes=minutes,
        bricks=list(dict.fromkeys(bricks)),
    )
