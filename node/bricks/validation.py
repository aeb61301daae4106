"""What a brick may hold, checked field by field with a message per field (pure).

``validate_brick(data)`` takes what a form or a JSON body gave (strings or lists) and
returns a ``BrickInput`` or raises ``BrickInvalid`` whose ``errors`` map each bad field to
a sentence a person can act on, in the language of the request (``node.i18n``, chosen
before the call). Files are checked by ``check_file``.

A tag typed with spaces ("communs urbains") becomes one hyphenated tag ("communs-urbains").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from node import i18n
from node.bricks.text import MAX_MARKDOWN_CHARS

__all__ = [
    "CATEGORIES",
    "CATEGORY_LABELS",
    "FILE_TYPES",
    "LICENCE_NAME",
    "LICENCE_URL",
    "MAX_FILES",
    "MAX_FILE_BYTES",
    "MAX_FORM_BYTES",
    "MAX_SUMMARY_CHARS",
    "MAX_SUMMARY_LINES",
    "BrickInput",
    "BrickInvalid",
    "check_file",
    "normalize_tag",
    "parse_category",
    "validate_brick",
]

CATEGORIES = ("concept", "analyse", "methode")
CATEGORY_LABELS: Mapping[str, Mapping[str, str]] = {
    "concept": {"fr": "Concept", "en": "Concept", "nl": "Concept"},
    "analyse": {"fr": "Analyse", "en": "Analysis", "nl": "Analyse"},
    "methode": {"fr": "Méthode", "en": "Method", "nl": "Methode"},
}
LICENCE_NAME = "CC BY-SA 4.0"
LICENCE_URL = "https://creativecommons.org/licenses/by-sa/4.0/"

MIN_TITLE_CHARS = 3
MAX_TITLE_CHARS = 150
#: "about five lines": five lines of a page, at most 500 characters.
MAX_SUMMARY_LINES = 5
MAX_SUMMARY_CHARS = 500
MAX_TAGS = 10
MAX_TAG_CHARS = 40
MAX_LINKS = 20
MAX_AUTHORS = 10
MAX_FILES = 5
MAX_FILE_BYTES = 5 * 1024 * 1024
#: What a multipart brick form may weigh: every promised file at its full size, plus the
#: text fields and the multipart framing (node.web.app lets such bodies through).
MAX_FORM_BYTES = MAX_FILES * MAX_FILE_BYTES + 1024 * 1024
#: extension -> (media type, magic prefix or None)
FILE_TYPES: Mapping[str, tuple[str, bytes | None]] = {
    ".pdf": ("application/pdf", b"%PDF-"),
    ".png": ("image/png", b"\x89PNG\r\n\x1a\n"),
    ".jpg": ("image/jpeg", b"\xff\xd8\xff"),
    ".jpeg": ("image/jpeg", b"\xff\xd8\xff"),
    ".gif": ("image/gif", b"GIF8"),
    ".txt": ("text/plain", None),
    ".md": ("text/markdown", None),
    ".csv": ("text/csv", None),
    ".odt": ("application/vnd.oasis.opendocument.text", b"PK\x03\x04"),
    ".ods": ("application/vnd.oasis.opendocument.spreadsheet", b"PK\x03\x04"),
    ".odp": ("application/vnd.oasis.opendocument.presentation", b"PK\x03\x04"),
}

_TAG_RE = re.compile(r"^[\w-]+$")
_SPACES_RE = re.compile(r"\s+")


class BrickInvalid(ValueError):
    """Some fields are wrong: ``errors`` maps each one to what to fix."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class BrickInput:
    title: str
    category: str
    summary: str
    body: str
    tags: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    authors: list[str] = field(default_factory=list)


def parse_category(value: Any) -> str | None:
    """``methode`` from ``methode``, ``Méthode``, ``Method``...; None when unknown."""
    if not isinstance(value, str):
        return None
    plain = unicodedata.normalize("NFKD", value.strip().lower())
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    aliases = {"method": "methode", "analysis": "analyse"}
    plain = aliases.get(plain, plain)
    return plain if plain in CATEGORIES else None


def normalize_tag(value: str) -> str:
    """``#Communs  urbains`` -> ``communs-urbains``: lower case, spaces become hyphens."""
    tag = unicodedata.normalize("NFC", value.strip().lstrip("#").strip().lower())
    return _SPACES_RE.sub("-", tag)


def _(message: str, **params: Any) -> str:
    """The message in the request's language, with its ``%(name)s`` parameters."""
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


def _text(data: Mapping[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        return None
    return value.replace("\r\n", "\n").strip()


def _title_error(title: str | None) -> str | None:
    if title is None:
        return _("the title must be text")
    if len(title) < MIN_TITLE_CHARS:
        return _("give a title of at least %(count)d characters", count=MIN_TITLE_CHARS)
    if len(title) > MAX_TITLE_CHARS:
        return _("the title is too long: at most %(count)d characters", count=MAX_TITLE_CHARS)
    if "\n" in title:
        return _("the title must fit on one line")
    return None


def _summary_error(summary: str | None) -> str | None:
    if summary is None:
        return _("the summary must be text")
    if not summary:
        return _("write a short description (a few lines)")
    if len(summary) > MAX_SUMMARY_CHARS:
        return _(
            "the summary is too long (%(length)d characters): keep it to about five"
            " lines, at most %(count)d characters; the rest goes in the body",
            length=len(summary),
            count=MAX_SUMMARY_CHARS,
        )
    if summary.count("\n") >= MAX_SUMMARY_LINES:
        return _(
            "the summary has too many lines: at most %(count)d; the rest goes in the body",
            count=MAX_SUMMARY_LINES,
        )
    return None


def _body_error(body: str | None) -> str | None:
    if body is None:
        return _("the body must be Markdown text")
    if not body:
        return _("write the development of the brick (Markdown)")
    if len(body) > MAX_MARKDOWN_CHARS:
        return _("the body is too long: at most %(count)d characters", count=MAX_MARKDOWN_CHARS)
    return None


def _tags(value: Any) -> tuple[list[str], str | None]:
    raw_tags = _items(value, ",")
    if raw_tags is None:
        return [], _("give tags as a list of words or a comma-separated text")
    tags: list[str] = []
    for raw in raw_tags:
        tag = normalize_tag(raw)
        if not tag:
            continue
        if len(tag) > MAX_TAG_CHARS or not _TAG_RE.match(tag):
            return tags, _(
                "the tag '%(tag)s' is not valid: use letters, digits, - or _ (a space"
                " becomes -), at most %(count)d characters",
                tag=raw,
                count=MAX_TAG_CHARS,
            )
        if tag not in tags:
            tags.append(tag)
    if len(tags) > MAX_TAGS:
        return tags, _("too many tags: at most %(count)d", count=MAX_TAGS)
    return tags, None


def _links(value: Any) -> tuple[list[str], str | None]:
    raw_links = _items(value, "\n")
    if raw_links is None:
        return [], _("give links as a list of URLs or one URL per line")
    links: list[str] = []
    for link in raw_links:
        parts = urlsplit(link)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(link) > 2048:
            return links, _("'%(link)s' is not a web address (http:// or https://)", link=link)
        if link not in links:
            links.append(link)
    if len(links) > MAX_LINKS:
        return links, _("too many links: at most %(count)d", count=MAX_LINKS)
    return links, None


def _authors(value: Any) -> tuple[list[str], str | None]:
    raw_authors = _items(value, ",\n")
    if raw_authors is None:
        return [], _("give co-authors as a list of usernames or actor URLs")
    authors = list(dict.fromkeys(raw_authors))
    if len(authors) > MAX_AUTHORS:
        return authors, _("too many authors: at most %(count)d", count=MAX_AUTHORS)
    return authors, None


def validate_brick(data: Mapping[str, Any], *, partial: bool = False) -> BrickInput:
    """Check every field and report all the errors at once.

    With ``partial`` (PATCH) a missing field is not an error; the caller merges the result
    with the stored brick before calling again without ``partial``.
    """
    title, summary, body = _text(data, "title"), _text(data, "summary"), _text(data, "body")
    category = parse_category(data.get("category"))
    tags, tags_error = _tags(data.get("tags"))
    links, links_error = _links(data.get("links"))
    authors, authors_error = _authors(data.get("authors"))
    checked = {
        "title": _title_error(title),
        "category": None if category else _("choose a category: concept, analyse or methode"),
        "summary": _summary_error(summary),
        "body": _body_error(body),
    }
    errors = {
        name: error for name, error in checked.items() if error and (not partial or name in data)
    }
    always = {"tags": tags_error, "links": links_error, "authors": authors_error}
    errors.update({name: error for name, error in always.items() if error})
    if errors:
        raise BrickInvalid(errors)
    return BrickInput(
        title=title or "",
        category=category or "",
        summary=summary or "",
        body=body or "",
        tags=tags,
        links=links,
        authors=authors,
    )


def check_file(filename: str, content: bytes) -> str:
    """The media type of an acceptable attachment; ``BrickInvalid`` on ``files`` otherwise."""
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    extension = ("." + name.rsplit(".", 1)[-1].lower()) if "." in name else ""
    if extension not in FILE_TYPES:
        allowed = ", ".join(sorted(FILE_TYPES))
        raise BrickInvalid(
            {
                "files": _(
                    "'%(name)s': this kind of file is not accepted (%(allowed)s)",
                    name=name,
                    allowed=allowed,
                )
            }
        )
    if len(content) > MAX_FILE_BYTES:
        raise BrickInvalid(
            {
                "files": _(
                    "'%(name)s' is too large: at most %(size)d MB",
                    name=name,
                    size=MAX_FILE_BYTES // (1024 * 1024),
                )
            }
        )
    if not content:
        raise BrickInvalid({"files": _("'%(name)s' is empty", name=name)})
    media_type, magic = FILE_TYPES[extension]
    if magic is not None and not content.startswith(magic):
        raise BrickInvalid(
            {"files": _("'%(name)s' is not really a %(kind)s file", name=name, kind=extension)}
        )
    if magic is None:
        try:
            content.decode("utf-8")
        except UnicodeDecodeError:
            raise BrickInvalid(
                {"files": _("'%(name)s' is not a UTF-8 text file", name=name)}
            ) from None
    return media_type
