"""Markdown in, sanitized HTML out; remote HTML sanitized the same way (pure).

markdown-it-py renders CommonMark with raw HTML disabled (it is escaped, not passed
through); nh3 (ammonia) then keeps only an allow-list of tags and attributes, drops event
handlers and ``style``, and keeps only http(s) and mailto links. Remote HTML (content of
federated bricks, replies) goes through the same sanitizer.
"""

from __future__ import annotations

import functools
import html
import re

import nh3
from markdown_it import MarkdownIt

__all__ = ["html_to_text", "render_markdown", "sanitize_html", "summary_html"]

ALLOWED_TAGS = frozenset(
    {
        "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "dl", "dt", "em",
        "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "s", "span",
        "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "abbr": {"title"},
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
}
URL_SCHEMES = frozenset({"http", "https", "mailto"})
MAX_MARKDOWN_CHARS = 100_000


@functools.cache
def _markdown() -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(
        ["table", "strikethrough"]
    )


def sanitize_html(fragment: str) -> str:
    """Only the allow-listed tags and attributes; links get ``rel="nofollow noopener ugc"``."""
    return nh3.clean(
        fragment,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel="nofollow noopener ugc",
        strip_comments=True,
    )


def render_markdown(source: str) -> str:
    """Sanitized HTML of a Markdown text (raw HTML in the source is shown, not run)."""
    return sanitize_html(_markdown().render(source[:MAX_MARKDOWN_CHARS]))


_BLOCK_END = re.compile(r"</(p|li|h[1-6]|blockquote|pre|tr|dd|dt)>|<br\s*/?>", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]+")


def html_to_text(fragment: str) -> str:
    """Plain text of an HTML fragment (what search indexes, what a remote summary shows)."""
    marked = _BLOCK_END.sub(lambda m: m.group(0) + "\n", fragment)
    text = html.unescape(nh3.clean(marked, tags=set()))
    lines = [_SPACES.sub(" ", line).strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def summary_html(summary: str) -> str:
    """A plain-text summary as HTML for AS2 ``summary`` (escaped, lines kept)."""
    return "<br>".join(html.escape(line) for line in summary.splitlines())
