"""Reconciliation between two chambers' ledgers: statements, and comparing them.

Each chamber keeps a mirror account for each partner (Gand's account in Lille's ledger); the
two mirror accounts must be opposite, and so must each posting behind them, matched by the
``reference`` both chambers give it (a settlement's or a clearing round's URI). A chamber
states its side as a `Statement`: the mirror balance as of a cut-off (``as_of``), the
postings behind it one per reference, and the references still in flight (a settlement
prepared and not decided). `compare` puts our statement beside the partner's, for the same
window, and says reference by reference what differs, in words an administrator can act on:

* ``missing_there``  posted here but not on the partner;
* ``missing_here``   posted on the partner but not here;
* ``amounts_differ`` both posted, the amounts are not opposite;
* ``balance``        the balances differ by more than the references listed explain
  (a difference older than a statement's window);

and, as *pending* rather than mismatches, what is still moving: ``in_flight`` (a settlement
prepared on either side), ``recent`` (posted just before the cut-off on one side only: the
other may post it a moment later, or its clock is a little behind), ``late`` (posted here just
after the partner's cut-off) and ``boundary`` (posted near the start of a truncated window).

`node.clearing.reconciliation.wire` holds the wire form (``AccountStatement``, see
``docs/between-chambers.md``): parsing is strict (types, integers, sizes, times) because the
statement comes from another node. Pure: no I/O, no clock; the caller passes ``now``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Final

from node.clearing.units import ClearingError, format_minutes

__all__ = [
    "MAX_ENTRIES",
    "MAX_PENDING",
    "RECENT",
    "STATEMENT_TYPE",
    "Difference",
    "DifferenceKind",
    "InvalidStatement",
    "PendingEntry",
    "ReferenceNote",
    "Report",
    "ReportStatus",
    "Statement",
    "StatementEntry",
    "build_statement",
    "compare",
    "format_time",
    "signed_minutes",
]

STATEMENT_TYPE: Final = "AccountStatement"
#: At most this many references in one statement: a longer history is cut at its start.
MAX_ENTRIES: Final = 2000
MAX_PENDING: Final = 500
#: A reference posted on one side only within this time before the cut-off is pending.
RECENT: Final = timedelta(minutes=5)
#: How far ahead of our clock a statement's cut-off may be.


class InvalidStatement(ClearingError):
    """A received statement is malformed; ``field`` names the part that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass(frozen=True)
class StatementEntry:
    """What one reference posted to the mirror account (summed), and when (the latest)."""

    reference: str
    minutes: int
    posted_at: datetime


@dataclass(frozen=True)
class PendingEntry:
    """A reference in flight at the cut-off; ``minutes`` is its hold on the mirror account."""

    reference: str
    minutes: int | None = None


@dataclass(frozen=True)
class Statement:
    """``chamber``'s mirror account of ``partner`` as of ``as_of``.

    ``entries`` are the postings after ``start`` (None: since the account opened) up to
    ``as_of`` included; ``opening`` is the balance at ``start``, so ``balance`` is
    ``opening`` plus the entries.
    """

    chamber: str
    partner: str
    as_of: datetime
    balance: int
    entries: tuple[StatementEntry, ...]
    pending: tuple[PendingEntry, ...] = ()
    start: datetime | None = None
    opening: int = 0
    id: str = ""
    in_reply_to: str | None = None

    def entry(self, reference: str) -> StatementEntry | None:
        return next((e for e in self.entries if e.reference == reference), None)


def build_statement(
    *,
    chamber: str,
    partner: str,
    as_of: datetime,
    postings: Iterable[tuple[str, int, datetime]],
    start: datetime | None = None,
    opening: int = 0,
    pending: Iterable[PendingEntry] = (),
) -> Statement:
    """A statement from the mirror account's postings ``(reference, minutes, posted_at)``
    in the window: summed per reference (a reference that nets to zero is left out)."""
    totals: dict[str, int] = {}
    latest: dict[str, datetime] = {}
    for reference, minutes, posted_at in postings:
        if posted_at > as_of or (start is not None and posted_at <= start):
            raise ValueError(f"{reference} was posted at {posted_at}, outside the window")
        totals[reference] = totals.get(reference, 0) + minutes
        latest[reference] = max(latest.get(reference, posted_at), posted_at)
    entries = sorted(
        (StatementEntry(ref, minutes, latest[ref]) for ref, minutes in totals.items() if minutes),
        key=lambda e: (e.posted_at, e.reference),
    )
    posted = {e.reference for e in entries}
    in_flight = {p.reference: p for p in pending if p.reference not in posted}
    return Statement(
        chamber=chamber,
        partner=partner,
        as_of=as_of,
        balance=opening + sum(e.minutes for e in entries),
        entries=tuple(entries),
        pending=tuple(in_flight[ref] for ref in sorted(in_flight)),
        start=start,
        opening=opening,
    )


# --- the report -------------------------------------------------------------------------------


class DifferenceKind(StrEnum):
    MISSING_THERE = "missing_there"
    MISSING_HERE = "missing_here"
    AMOUNTS_DIFFER = "amounts_differ"
    BALANCE = "balance"
    IN_FLIGHT = "in_flight"
    RECENT = "recent"
    LATE = "late"
    BOUNDARY = "boundary"


PENDING_KINDS: Final = frozenset(
    {DifferenceKind.IN_FLIGHT, DifferenceKind.RECENT, DifferenceKind.LATE, DifferenceKind.BOUNDARY}
)


class ReportStatus(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"


@dataclass(frozen=True)
class ReferenceNote:
    """What this node knows of a reference, to explain it: the exchange, the settlement."""

    exchange: str = ""
    description: str = ""
    settlement_state: str = ""
    reason: str = ""

    def text(self) -> str:
        parts = []
        if self.settlement_state:
            because = f": {self.reason}" if self.reason else ""
            parts.append(f"settlement {self.settlement_state} here{because}")
        if self.exchange:
            what = f" “{self.description[:80]}”" if self.description else ""
            parts.append(f"exchange {self.exchange}{what}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Difference:
    """One reference (or, for ``balance``, none) that does not match, and why in words.

    ``ours`` and ``theirs`` are the minutes each ledger posted for it (None: not posted).
    """

    kind: DifferenceKind
    reference: str | None
    ours: int | None
    theirs: int | None
    explanation: str

    @property
    def pending(self) -> bool:
        return self.kind in PENDING_KINDS

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "reference": self.reference,
            "ours": self.ours,
            "theirs": self.theirs,
            "pending": self.pending,
            "explanation": self.explanation,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Difference:
        return cls(
            DifferenceKind(data["kind"]),
            data.get("reference"),
            data.get("ours"),
            data.get("theirs"),
            str(data.get("explanation", "")),
        )


@dataclass(frozen=True)
class Report:
    """The outcome of `compare`: ``ok`` unless some difference is a mismatch.

    ``difference`` is our balance plus theirs (zero when opposite); ``in_flight`` the part of
    it that pending references account for.
    """

    partner: str
    as_of: datetime
    start: datetime | None
    our_balance: int
    their_balance: int
    mismatches: tuple[Difference, ...]
    pending: tuple[Difference, ...]
    in_flight: int = 0
    summary: str = ""

    @property
    def status(self) -> ReportStatus:
        return ReportStatus.MISMATCH if self.mismatches else ReportStatus.OK

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def difference(self) -> int:
        return self.our_balance + self.their_balance

    def fingerprint(self) -> str:
        """Identifies the set of mismatches: the same problem seen again has the same one."""
        if not self.mismatches:
            return ""
        items = sorted(
            (d.kind.value, d.reference or "", d.ours or 0, d.theirs or 0) for d in self.mismatches
        )
        return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:32]


def signed_minutes(minutes: int) -> str:
    """``120 -> "+2 h"``, ``-90 -> "-1 h 30"``, ``0 -> "0 h"``: an amount with its sign."""
    text = format_minutes(minutes).removesuffix(" 00")
    return f"+{text}" if minutes > 0 else text


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    return f"{seconds // 60} min"


def _with_note(text: str, note: ReferenceNote | None) -> str:
    extra = note.text() if note else ""
    return f"{text} ({extra})" if extra else text


@dataclass
class _Tally:
    """What the listed references add to our balance plus theirs, and the pending part."""

    found: list[Difference]
    explained: int = 0
    in_flight: int = 0
    boundary: int = 0  # ours near a truncated window's start: maybe in the partner's opening

    def add(self, difference: Difference, amount: int) -> None:
        self.found.append(difference)
        self.explained += amount
        if difference.pending:
            self.in_flight += amount


def _differ(ref: str, ours: int, theirs: int, name: str, when: str = "") -> Difference:
    return Difference(
        DifferenceKind.AMOUNTS_DIFFER,
        ref,
        ours,
        theirs,
        f"amounts differ: {signed_minutes(ours)} here{when}, {signed_minutes(theirs)} on "
        f"{name} (they should be opposite)",
    )


def compare(
    ours: Statement,
    theirs: Statement,
    *,
    partner_name: str,
    elsewhere: Mapping[str, StatementEntry] | None = None,
    notes: Mapping[str, ReferenceNote] | None = None,
    recent: timedelta = RECENT,
) -> Report:
    """Compare our statement with the partner's for the same window, reference by reference.

    ``ours`` is our mirror account of the partner, ``theirs`` the partner's of us, both cut at
    ``theirs.as_of`` from ``theirs.start``. ``elsewhere`` holds our postings *outside* that
    window for references only the partner listed (found in our whole ledger), ``notes`` what
    we know of each reference. Raises ``ValueError`` when the two are not about each other.
    """
    if theirs.chamber != ours.partner or theirs.partner != ours.chamber:
        raise ValueError("the statements are not about each other's accounts")
    if theirs.start != ours.start:
        raise ValueError("the statements must cover the same window")
    name, cutoff, notes = partner_name, theirs.as_of, notes or {}
    our_entries = {e.reference: e for e in ours.entries}
    their_entries = {e.reference: e for e in theirs.entries}
    our_pending = {p.reference: p for p in ours.pending}
    their_pending = {p.reference: p for p in theirs.pending}
    tally = _Tally([])
    for ref in sorted(
        set(our_entries) | set(their_entries) | set(our_pending) | set(their_pending)
    ):
        o, t = our_entries.get(ref), their_entries.get(ref)
        before = len(tally.found)
        if o is not None and t is not None:
            if o.minutes != -t.minutes:
                tally.add(_differ(ref, o.minutes, t.minutes, name), o.minutes + t.minutes)
        elif o is not None:
            _ours_only(tally, o, ours, ref in their_pending, name, cutoff, recent)
        elif t is not None:
            other = (elsewhere or {}).get(ref)
            _theirs_only(tally, t, other, ref in our_pending, name, cutoff, recent)
        else:
            held_here = our_pending[ref].minutes if ref in our_pending else None
            held_there = their_pending[ref].minutes if ref in their_pending else None
            sides = " and ".join(
                side
                for side, held in (("here", our_pending), (f"on {name}", their_pending))
                if ref in held
            )
            text = f"in flight: prepared {sides}, posted nowhere yet"
            tally.add(Difference(DifferenceKind.IN_FLIGHT, ref, held_here, held_there, text), 0)
        if ref in notes:
            for i in range(before, len(tally.found)):
                item = tally.found[i]
                tally.found[i] = replace(item, explanation=_with_note(item.explanation, notes[ref]))

    unexplained = ours.balance + theirs.balance - tally.explained + tally.boundary
    if unexplained:
        since = f"before {format_time(ours.start)}" if ours.start else "in total"
        text = (
            f"the balances differ by {signed_minutes(unexplained)} {since}, beyond the exchanges "
            f"listed: {name}'s account here {signed_minutes(ours.balance)}, ours on {name} "
            f"{signed_minutes(theirs.balance)}"
        )
        tally.found.append(
            Difference(DifferenceKind.BALANCE, None, ours.balance, theirs.balance, text)
        )
    report = Report(
        partner=ours.partner,
        as_of=cutoff,
        start=ours.start,
        our_balance=ours.balance,
        their_balance=theirs.balance,
        mismatches=tuple(d for d in tally.found if not d.pending),
        pending=tuple(d for d in tally.found if d.pending),
        in_flight=tally.in_flight,
    )
    return _summarised(report, name)


def _ours_only(
    tally: _Tally,
    o: StatementEntry,
    ours: Statement,
    pending_there: bool,
    name: str,
    cutoff: datetime,
    recent: timedelta,
) -> None:
    posted = f"posted here ({signed_minutes(o.minutes)})"
    if pending_there:
        kind, text = DifferenceKind.IN_FLIGHT, f"{posted}; in flight on {name}"
    elif cutoff - o.posted_at < recent:
        kind = DifferenceKind.RECENT
        text = f"{posted} {_ago(cutoff - o.posted_at)} before the cut-off; not yet on {name}"
    elif ours.start is not None and o.posted_at - ours.start < recent:
        kind = DifferenceKind.BOUNDARY
        tally.boundary += o.minutes
        text = f"{posted} at the start of this statement: {name} may have it just before"
    else:
        kind, text = DifferenceKind.MISSING_THERE, f"{posted} but not on {name}"
    tally.add(Difference(kind, o.reference, o.minutes, None, text), o.minutes)


def _theirs_only(
    tally: _Tally,
    t: StatementEntry,
    other: StatementEntry | None,
    pending_here: bool,
    name: str,
    cutoff: datetime,
    recent: timedelta,
) -> None:
    ref, posted = t.reference, f"posted on {name} ({signed_minutes(t.minutes)})"
    if other is not None and other.posted_at <= cutoff:
        # Ours is older than the window: it is in our opening balance, so it counts.
        if other.minutes != -t.minutes:
            when = " (before this statement's start)"
            tally.add(_differ(ref, other.minutes, t.minutes, name, when), other.minutes + t.minutes)
        else:
            tally.explained += other.minutes + t.minutes
        return
    ours_minutes = None
    if other is not None:
        ours_minutes = other.minutes
        late = f"{_ago(other.posted_at - cutoff)} after the cut-off"
        if other.minutes != -t.minutes:
            tally.add(_differ(ref, other.minutes, t.minutes, name, f" (posted {late})"), t.minutes)
            return
        kind, text = DifferenceKind.LATE, f"{posted}; posted here {late}"
    elif pending_here:
        kind, text = DifferenceKind.IN_FLIGHT, f"{posted}; in flight here"
    elif cutoff - t.posted_at < recent:
        kind = DifferenceKind.RECENT
        text = f"{posted} {_ago(cutoff - t.posted_at)} before the cut-off; not yet here"
    else:
        kind, text = DifferenceKind.MISSING_HERE, f"{posted} but not here"
    tally.add(Difference(kind, ref, ours_minutes, t.minutes, text), t.minutes)


def _summarised(report: Report, name: str) -> Report:
    balances = (
        f"{name}'s account here {signed_minutes(report.our_balance)}, "
        f"ours on {name} {signed_minutes(report.their_balance)}"
    )
    waiting = f"; {len(report.pending)} in flight" if report.pending else ""
    if report.ok:
        verb = "agree" if report.difference == 0 else "agree once what is in flight is decided"
        summary = f"balances {verb} as of {format_time(report.as_of)}: {balances}{waiting}"
    else:
        count = len(report.mismatches)
        summary = (
            f"{count} difference{'s' if count > 1 else ''} with {name} as of "
            f"{format_time(report.as_of)}: {balances}{waiting}. "
            + " / ".join(
                f"{d.reference}: {d.explanation}" if d.reference else d.explanation
                for d in report.mismatches[:5]
            )
            + (" / …" if count > 5 else "")
        )
    return replace(report, summary=summary)


# --- the wire form ----------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """``2026-11-23T10:00:00Z`` (microseconds only when there are some)."""
    moment = moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}"
    return text + "Z"
