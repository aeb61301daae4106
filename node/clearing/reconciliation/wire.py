"""The wire form of a statement (``AccountStatement``, see ``docs/between-chambers.md``).

`statement_document` writes it; `parse_statement` reads one from another node, strictly
(types, integers, sizes, times). Pure: no I/O, no clock; the caller passes ``now``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from node.activitypub.urls import same_origin
from node.clearing.reconciliation.statements import (
    MAX_ENTRIES,
    MAX_PENDING,
    STATEMENT_TYPE,
    InvalidStatement,
    PendingEntry,
    Statement,
    StatementEntry,
    format_time,
)

__all__ = ["parse_statement", "statement_document"]

MAX_CLOCK_SKEW: Final = timedelta(minutes=5)
MAX_ABS_MINUTES: Final = 2**31 - 1  # what an Integer column holds
MAX_URI: Final = 2048
_ENTRY_KEYS: Final = frozenset({"reference", "minutes", "published"})
_PENDING_KEYS: Final = frozenset({"reference", "minutes"})
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_URI = re.compile(r"(https?://[^\s]+|urn:[a-z0-9][a-z0-9-]{0,31}:[^\s]+)", re.IGNORECASE)


def statement_document(statement: Statement) -> dict[str, Any]:
    """The ``AccountStatement`` object of ``statement`` (its ``id`` must be set)."""
    if not statement.id:
        raise ValueError("a statement needs an id to be sent")
    document: dict[str, Any] = {
        "type": STATEMENT_TYPE,
        "id": statement.id,
        "attributedTo": statement.chamber,
        "partner": statement.partner,
        "endTime": format_time(statement.as_of),
        "openingMinutes": statement.opening,
        "balanceMinutes": statement.balance,
        "entries": [
            {"reference": e.reference, "minutes": e.minutes, "published": format_time(e.posted_at)}
            for e in statement.entries
        ],
        "pending": [
            {"reference": p.reference}
            if p.minutes is None
            else {"reference": p.reference, "minutes": p.minutes}
            for p in statement.pending
        ],
    }
    if statement.start is not None:
        document["startTime"] = format_time(statement.start)
    if statement.in_reply_to:
        document["inReplyTo"] = statement.in_reply_to
    return document


def _uri(value: Any, field: str) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_URI or not _URI.fullmatch(value):
        raise InvalidStatement(field, f"a URL (or urn:) of at most {MAX_URI} characters")
    return value


def _minutes(value: Any, field: str, *, nonzero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidStatement(field, f"a whole number of minutes (an integer), got {value!r}")
    if abs(value) > MAX_ABS_MINUTES:
        raise InvalidStatement(field, f"at most {MAX_ABS_MINUTES} minutes either way")
    if nonzero and value == 0:
        raise InvalidStatement(field, "a posting is never zero")
    return value


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str) or not _TIME.fullmatch(value):
        raise InvalidStatement(field, "a UTC time like 2026-11-23T10:00:00Z")
    try:
        return datetime.fromisoformat(value[:-1]).replace(tzinfo=UTC)
    except ValueError:
        raise InvalidStatement(field, f"{value!r} is not a valid time") from None


def _list(value: Any, field: str, limit: int) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidStatement(field, "a list")
    if len(value) > limit:
        raise InvalidStatement(field, f"at most {limit} items")
    return value


def parse_statement(document: Any, *, sender: str, recipient: str, now: datetime) -> Statement:
    """Read a received ``AccountStatement`` strictly, or raise `InvalidStatement`.

    ``sender`` is the chamber that signed it (its ``attributedTo``), ``recipient`` this
    chamber (its ``partner``). Unknown properties of the statement are ignored; entries must
    have exactly ``reference``, ``minutes`` and ``published``.
    """
    if not isinstance(document, Mapping):
        raise InvalidStatement("object", "the statement must be a JSON object")
    if document.get("type") != STATEMENT_TYPE:
        raise InvalidStatement("type", f"must be {STATEMENT_TYPE!r}")
    statement_id = _uri(document.get("id"), "id")
    if not same_origin(statement_id, sender):
        raise InvalidStatement("id", f"must be on the sending chamber's host, as {sender}")
    if document.get("attributedTo") != sender:
        raise InvalidStatement("attributedTo", f"must be the sending chamber, {sender}")
    if document.get("partner") != recipient:
        raise InvalidStatement("partner", f"must be this chamber, {recipient}")
    as_of = _time(document.get("endTime"), "endTime")
    if as_of > now + MAX_CLOCK_SKEW:
        raise InvalidStatement("endTime", f"{format_time(as_of)} is in the future")
    start = None
    if document.get("startTime") is not None:
        start = _time(document["startTime"], "startTime")
        if start >= as_of:
            raise InvalidStatement("startTime", "must be before endTime")
    opening = _minutes(document.get("openingMinutes"), "openingMinutes")
    if start is None and opening != 0:
        raise InvalidStatement("openingMinutes", "must be 0 when the statement has no startTime")
    balance = _minutes(document.get("balanceMinutes"), "balanceMinutes")
    entries: list[StatementEntry] = []
    seen: set[str] = set()
    for i, item in enumerate(_list(document.get("entries"), "entries", MAX_ENTRIES)):
        where = f"entries[{i}]"
        if not isinstance(item, Mapping) or set(item) != _ENTRY_KEYS:
            raise InvalidStatement(where, "an object with reference, minutes and published")
        reference = _uri(item["reference"], f"{where}.reference")
        if reference in seen:
            raise InvalidStatement(where, f"{reference} is listed twice")
        seen.add(reference)
        posted_at = _time(item["published"], f"{where}.published")
        if posted_at > as_of or (start is not None and posted_at <= start):
            raise InvalidStatement(f"{where}.published", "outside the statement's window")
        minutes = _minutes(item["minutes"], f"{where}.minutes", nonzero=True)
        entries.append(StatementEntry(reference, minutes, posted_at))
    if opening + sum(e.minutes for e in entries) != balance:
        raise InvalidStatement(
            "balanceMinutes", "does not equal openingMinutes plus the entries' minutes"
        )
    pending: list[PendingEntry] = []
    for i, item in enumerate(_list(document.get("pending"), "pending", MAX_PENDING)):
        where = f"pending[{i}]"
        if not isinstance(item, Mapping) or not {"reference"} <= set(item) <= _PENDING_KEYS:
            raise InvalidStatement(where, "an object with reference (and minutes)")
        held = _minutes(item["minutes"], f"{where}.minutes") if "minutes" in item else None
        pending.append(PendingEntry(_uri(item["reference"], f"{where}.reference"), held))
    in_reply_to = None
    if document.get("inReplyTo") is not None:
        in_reply_to = _uri(document["inReplyTo"], "inReplyTo")
    return Statement(
        chamber=sender,
        partner=recipient,
        as_of=as_of,
        balance=balance,
        entries=tuple(entries),
        pending=tuple(pending),
        start=start,
        opening=opening,
        id=statement_id,
        in_reply_to=in_reply_to,
    )
