"""Reconciliation, pure: statements, every kind of difference and its words, the wire form."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import node.clearing.reconciliation.statements as reconciliation_module
from node.clearing.reconciliation.statements import (
    MAX_ENTRIES,
    Difference,
    DifferenceKind,
    InvalidStatement,
    PendingEntry,
    ReferenceNote,
    ReportStatus,
    Statement,
    StatementEntry,
    build_statement,
    compare,
    format_time,
    signed_minutes,
)
from node.clearing.reconciliation.wire import parse_statement, statement_document
from tests.test_architecture import IO_LIBRARIES, imported_roots

LILLE = "https://lille.test/actors/lille"
GAND = "https://gand.test/actors/gand"
T = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
HOUR_AGO = T - timedelta(hours=1)
S1 = "https://gand.test/settlements/s1"
S2 = "https://lille.test/settlements/s2"
S3 = "https://gand.test/settlements/s3"
ROUND = "https://roubaix.test/rounds/r1"

Postings = dict[str, tuple[int, datetime]]


def statement(
    chamber: str,
    postings: Postings,
    *,
    pending: tuple[PendingEntry, ...] = (),
    start: datetime | None = None,
    opening: int = 0,
    as_of: datetime = T,
) -> Statement:
    partner = GAND if chamber == LILLE else LILLE
    return build_statement(
        chamber=chamber,
        partner=partner,
        as_of=as_of,
        postings=[(ref, minutes, at) for ref, (minutes, at) in postings.items()],
        start=start,
        opening=opening,
        pending=pending,
    )


def lille_and_gand(lille: Postings, gand: Postings, **kwargs: Any) -> Any:
    """Lille's report on Gand's statement (the same window for both)."""
    lille_pending = kwargs.pop("lille_pending", ())
    gand_pending = kwargs.pop("gand_pending", ())
    start = kwargs.pop("start", None)
    openings = kwargs.pop("openings", (0, 0))
    ours = statement(LILLE, lille, pending=lille_pending, start=start, opening=openings[0])
    theirs = statement(GAND, gand, pending=gand_pending, start=start, opening=openings[1])
    return compare(ours, theirs, partner_name="Gand", **kwargs)


def test_the_module_is_pure() -> None:
    assert imported_roots(Path(reconciliation_module.__file__)) & IO_LIBRARIES == set()


# --- statements -------------------------------------------------------------------------------


def test_a_statement_sums_each_reference_and_leaves_out_what_nets_to_zero() -> None:
    built = statement(
        LILLE,
        {},
        pending=(PendingEntry(S3, -30), PendingEntry(S1, 10)),
    )
    assert built.entries == () and built.balance == 0
    built = build_statement(
        chamber=LILLE,
        partner=GAND,
        as_of=T,
        postings=[
            (S1, 120, HOUR_AGO),
            (S1, 30, HOUR_AGO + timedelta(minutes=1)),
            (S2, -45, HOUR_AGO - timedelta(hours=1)),
            (ROUND, 60, HOUR_AGO),
            (ROUND, -60, HOUR_AGO),
        ],
        opening=0,
        pending=[PendingEntry(S1, 150), PendingEntry(S3, -30)],
    )
    assert built.entries == (
        StatementEntry(S2, -45, HOUR_AGO - timedelta(hours=1)),
        StatementEntry(S1, 150, HOUR_AGO + timedelta(minutes=1)),
    )
    assert built.balance == 105
    assert built.pending == (PendingEntry(S3, -30),)  # S1 is posted, no longer in flight
    assert built.entry(S1) == built.entries[1] and built.entry(ROUND) is None


def test_a_statement_refuses_postings_outside_its_window() -> None:
    with pytest.raises(ValueError, match="outside the window"):
        statement(LILLE, {S1: (60, T + timedelta(seconds=1))})
    with pytest.raises(ValueError, match="outside the window"):
        statement(LILLE, {S1: (60, HOUR_AGO)}, start=HOUR_AGO)


def test_opening_balance_counts_in_the_balance() -> None:
    built = statement(LILLE, {S1: (60, T)}, start=HOUR_AGO, opening=-500)
    assert built.balance == -440 and built.opening == -500


# --- reports ----------------------------------------------------------------------------------


def test_opposite_statements_agree() -> None:
    report = lille_and_gand(
        {S1: (120, HOUR_AGO), S2: (-30, HOUR_AGO), ROUND: (300, HOUR_AGO)},
        {S1: (-120, HOUR_AGO), S2: (30, HOUR_AGO), ROUND: (-300, HOUR_AGO)},
    )
    assert report.ok and report.status == ReportStatus.OK
    assert report.mismatches == () and report.pending == ()
    assert report.difference == 0 and report.fingerprint() == ""
    assert report.summary == (
        "balances agree as of 2026-11-23T12:00:00Z: "
        "Gand's account here +6 h 30, ours on Gand -6 h 30"
    )


def test_posted_here_but_not_there() -> None:
    report = lille_and_gand({S1: (120, HOUR_AGO)}, {})
    assert report.status == ReportStatus.MISMATCH
    (difference,) = report.mismatches
    assert difference == Difference(
        DifferenceKind.MISSING_THERE, S1, 120, None, "posted here (+2 h) but not on Gand"
    )
    assert report.summary.startswith("1 difference with Gand as of 2026-11-23T12:00:00Z")
    assert f"{S1}: posted here (+2 h) but not on Gand" in report.summary


def test_posted_there_but_not_here() -> None:
    report = lille_and_gand({}, {S1: (-90, HOUR_AGO)})
    (difference,) = report.mismatches
    assert difference.kind == DifferenceKind.MISSING_HERE
    assert (difference.ours, difference.theirs) == (None, -90)
    assert difference.explanation == "posted on Gand (-1 h 30) but not here"


@pytest.mark.parametrize(("ours", "theirs"), [(120, -90), (120, 120)])
def test_amounts_differ(ours: int, theirs: int) -> None:
    report = lille_and_gand({S1: (ours, HOUR_AGO)}, {S1: (theirs, HOUR_AGO)})
    (difference,) = report.mismatches
    assert difference.kind == DifferenceKind.AMOUNTS_DIFFER
    assert difference.explanation == (
        f"amounts differ: {signed_minutes(ours)} here, {signed_minutes(theirs)} on Gand "
        "(they should be opposite)"
    )
    assert not difference.pending


def test_every_difference_is_listed_and_summarised() -> None:
    report = lille_and_gand(
        {S1: (120, HOUR_AGO), S2: (60, HOUR_AGO)},
        {S1: (-60, HOUR_AGO), S3: (45, HOUR_AGO)},
    )
    # Sorted by reference: gand.test/…/s1, gand.test/…/s3, lille.test/…/s2.
    assert [d.reference for d in report.mismatches] == [S1, S3, S2]
    kinds = {d.reference: d.kind for d in report.mismatches}
    assert kinds == {
        S1: DifferenceKind.AMOUNTS_DIFFER,
        S2: DifferenceKind.MISSING_THERE,
        S3: DifferenceKind.MISSING_HERE,
    }
    assert report.summary.startswith("3 differences with Gand")
    # No unexplained balance: every minute of difference is in a listed reference.
    assert all(d.kind != DifferenceKind.BALANCE for d in report.mismatches)
    assert report.difference == (120 + 60) + (-60 + 45)


def test_in_flight_on_either_side_is_pending_not_a_mismatch() -> None:
    report = lille_and_gand(
        {S1: (120, HOUR_AGO)},
        {S2: (30, HOUR_AGO)},
        gand_pending=(PendingEntry(S1, -120),),
        lille_pending=(PendingEntry(S2, -30),),
    )
    assert report.ok
    explanations = {d.reference: (d.kind, d.explanation) for d in report.pending}
    assert explanations == {
        S1: (DifferenceKind.IN_FLIGHT, "posted here (+2 h); in flight on Gand"),
        S2: (DifferenceKind.IN_FLIGHT, "posted on Gand (+0 h 30); in flight here"),
    }
    assert report.in_flight == report.difference == 150
    assert "agree once what is in flight is decided" in report.summary
    assert "2 in flight" in report.summary


def test_prepared_and_posted_nowhere_is_listed_as_in_flight() -> None:
    report = lille_and_gand(
        {}, {}, lille_pending=(PendingEntry(S1, 60),), gand_pending=(PendingEntry(S1, -60),)
    )
    (item,) = report.pending
    assert item == Difference(
        DifferenceKind.IN_FLIGHT,
        S1,
        60,
        -60,
        "in flight: prepared here and on Gand, posted nowhere yet",
    )
    assert report.ok and report.in_flight == 0


def test_posted_just_before_the_cut_off_on_one_side_is_pending() -> None:
    just = T - timedelta(seconds=40)
    report = lille_and_gand({S1: (120, just)}, {S2: (-15, T - timedelta(minutes=3))})
    assert report.ok
    explanations = {d.reference: d.explanation for d in report.pending}
    assert explanations == {
        S1: "posted here (+2 h) 40 s before the cut-off; not yet on Gand",
        S2: "posted on Gand (-0 h 15) 3 min before the cut-off; not yet here",
    }
    assert {d.kind for d in report.pending} == {DifferenceKind.RECENT}


def test_the_recent_window_is_a_parameter() -> None:
    report = lille_and_gand({S1: (120, T - timedelta(minutes=3))}, {}, recent=timedelta(minutes=1))
    assert [d.kind for d in report.mismatches] == [DifferenceKind.MISSING_THERE]


def test_posted_here_after_the_partners_cut_off_is_late() -> None:
    later = StatementEntry(S1, 120, T + timedelta(seconds=90))
    report = lille_and_gand({}, {S1: (-120, HOUR_AGO)}, elsewhere={S1: later})
    (item,) = report.pending
    assert item.kind == DifferenceKind.LATE
    assert item.explanation == "posted on Gand (-2 h); posted here 90 s after the cut-off"
    assert (item.ours, item.theirs) == (120, -120)
    assert report.ok


def test_posted_late_with_another_amount_is_a_mismatch() -> None:
    later = StatementEntry(S1, 60, T + timedelta(minutes=10))
    report = lille_and_gand({}, {S1: (-120, HOUR_AGO)}, elsewhere={S1: later})
    (item,) = report.mismatches
    assert item.kind == DifferenceKind.AMOUNTS_DIFFER
    assert "posted 10 min after the cut-off" in item.explanation


def test_a_truncated_window_matches_across_its_start() -> None:
    start = T - timedelta(days=30)
    before = StatementEntry(S1, 120, start - timedelta(seconds=2))
    # Our S1 is in our opening balance (120); Gand's is in its window.
    report = lille_and_gand(
        {},
        {S1: (-120, start + timedelta(seconds=1))},
        start=start,
        openings=(120, 0),
        elsewhere={S1: before},
    )
    assert report.ok and report.pending == () and report.difference == 0


def test_a_difference_older_than_the_window_shows_in_the_balances() -> None:
    start = T - timedelta(days=30)
    report = lille_and_gand(
        {S2: (30, HOUR_AGO)}, {S2: (-30, HOUR_AGO)}, start=start, openings=(500, -440)
    )
    (item,) = report.mismatches
    assert item.kind == DifferenceKind.BALANCE and item.reference is None
    assert item.explanation == (
        "the balances differ by +1 h before 2026-10-24T12:00:00Z, beyond the exchanges listed: "
        "Gand's account here +8 h 50, ours on Gand -7 h 50"
    )


def test_posted_at_the_start_of_a_truncated_window_is_pending() -> None:
    start = T - timedelta(days=30)
    # Lille posted S1 just after the start; Gand just before it (in Gand's opening).
    report = lille_and_gand(
        {S1: (120, start + timedelta(seconds=3))}, {}, start=start, openings=(0, -120)
    )
    assert report.ok
    (item,) = report.pending
    assert item.kind == DifferenceKind.BOUNDARY
    assert item.explanation == (
        "posted here (+2 h) at the start of this statement: Gand may have it just before"
    )


def test_notes_explain_a_reference_with_what_we_know() -> None:
    note = ReferenceNote(
        exchange="https://lille.test/exchanges/4f2a",
        description="Jardinage",
        settlement_state="aborted",
        reason="the deadline passed",
    )
    report = lille_and_gand({}, {S1: (-120, HOUR_AGO)}, notes={S1: note})
    (item,) = report.mismatches
    assert item.explanation == (
        "posted on Gand (-2 h) but not here (settlement aborted here: the deadline passed; "
        "exchange https://lille.test/exchanges/4f2a “Jardinage”)"
    )


def test_the_fingerprint_names_the_set_of_mismatches() -> None:
    one = lille_and_gand({S1: (120, HOUR_AGO)}, {})
    same = lille_and_gand({S1: (120, HOUR_AGO - timedelta(minutes=5))}, {})
    other = lille_and_gand({S1: (60, HOUR_AGO)}, {})
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()
    assert len(one.fingerprint()) == 32


def test_many_differences_are_cut_in_the_summary() -> None:
    report = lille_and_gand(
        {f"https://gand.test/settlements/{i}": (10 + i, HOUR_AGO) for i in range(7)}, {}
    )
    assert report.summary.startswith("7 differences")
    assert report.summary.endswith(" / …")


def test_statements_about_other_accounts_or_windows_are_not_compared() -> None:
    ours = statement(LILLE, {})
    with pytest.raises(ValueError, match="each other"):
        compare(ours, ours, partner_name="Gand")
    theirs = statement(GAND, {}, start=HOUR_AGO)
    with pytest.raises(ValueError, match="same window"):
        compare(ours, theirs, partner_name="Gand")


def test_differences_round_trip_through_json() -> None:
    report = lille_and_gand({S1: (120, HOUR_AGO)}, {S2: (5, T)})
    for item in (*report.mismatches, *report.pending):
        data = item.to_json()
        assert data["pending"] == item.pending
        assert Difference.from_json(data) == item


def test_signed_minutes_and_times() -> None:
    assert [signed_minutes(m) for m in (120, 90, -125, 0, 45)] == [
        "+2 h",
        "+1 h 30",
        "-2 h 05",
        "0 h",
        "+0 h 45",
    ]
    assert format_time(T) == "2026-11-23T12:00:00Z"
    assert format_time(T.replace(microsecond=5)) == "2026-11-23T12:00:00.000005Z"


# --- the wire form ----------------------------------------------------------------------------


def wire(**changes: Any) -> dict[str, Any]:
    built = statement(
        GAND,
        {S1: (-120, HOUR_AGO), S2: (30, HOUR_AGO.replace(microsecond=250))},
        pending=(PendingEntry(S3, 45), PendingEntry(ROUND)),
        start=T - timedelta(days=30),
        opening=-60,
    )
    built = Statement(**{**built.__dict__, "id": "https://gand.test/activities/1#statement"})
    document = statement_document(built)
    document.update(changes)
    return document


def parse(document: Any) -> Statement:
    return parse_statement(document, sender=GAND, recipient=LILLE, now=T)


def test_a_statement_round_trips_through_its_document() -> None:
    document = wire(inReplyTo="https://lille.test/activities/9#statement")
    assert document["type"] == "AccountStatement"
    assert document["attributedTo"] == GAND and document["partner"] == LILLE
    assert document["startTime"] == "2026-10-24T12:00:00Z"
    assert document["entries"][1] == {
        "reference": S2,
        "minutes": 30,
        "published": document["entries"][1]["published"],
    }
    assert document["pending"] == [{"reference": S3, "minutes": 45}, {"reference": ROUND}]
    parsed = parse(document)
    assert parsed.balance == -150 and parsed.opening == -60
    assert parsed.in_reply_to == "https://lille.test/activities/9#statement"
    assert parsed.entry(S2) == StatementEntry(S2, 30, HOUR_AGO.replace(microsecond=250))
    assert statement_document(parsed) == document


def test_a_statement_without_an_id_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="needs an id"):
        statement_document(statement(LILLE, {}))


def test_a_full_history_statement_has_no_start_and_opens_at_zero() -> None:
    document = wire(openingMinutes=0, balanceMinutes=-90)
    del document["startTime"]
    assert parse(document).start is None
    document["openingMinutes"] = 5
    document["balanceMinutes"] = -85
    with pytest.raises(InvalidStatement, match="openingMinutes: must be 0"):
        parse(document)


def _entry(**changes: Any) -> list[dict[str, Any]]:
    return [{"reference": S1, "minutes": -120, "published": "2026-11-23T11:00:00Z", **changes}]


BAD: list[tuple[str, Any, str]] = [
    ("not an object", ["a list"], "object: the statement must be a JSON object"),
    ("wrong type", {"type": "PositionStatement"}, "type: must be 'AccountStatement'"),
    ("no id", {"id": None}, "id: a URL"),
    ("id not a URL", {"id": "javascript:alert(1)"}, "id: a URL"),
    ("id too long", {"id": "https://gand.test/" + "a" * 2100}, "id: a URL"),
    ("id elsewhere", {"id": "https://evil.test/s#statement"}, "id: must be on the sending"),
    ("another author", {"attributedTo": "https://evil.test/actors/x"}, "attributedTo: must be"),
    ("another account", {"partner": "https://roubaix.test/actors/r"}, "partner: must be this"),
    ("no end", {"endTime": None}, "endTime: a UTC time"),
    ("end not UTC", {"endTime": "2026-11-23T12:00:00+01:00"}, "endTime: a UTC time"),
    ("end invalid", {"endTime": "2026-13-45T12:00:00Z"}, "is not a valid time"),
    (
        "end in the future",
        {"endTime": "2026-11-23T12:06:00Z"},
        "endTime: 2026-11-23T12:06:00Z is in the future",
    ),
    ("start after end", {"startTime": "2026-11-23T12:00:00Z"}, "startTime: must be before"),
    ("float balance", {"balanceMinutes": -150.0}, "balanceMinutes: a whole number of minutes"),
    ("bool opening", {"openingMinutes": False}, "openingMinutes: a whole number"),
    ("string balance", {"balanceMinutes": "-150"}, "balanceMinutes: a whole number"),
    ("huge balance", {"balanceMinutes": 2**40}, "balanceMinutes: at most"),
    ("inconsistent balance", {"balanceMinutes": -151}, "does not equal openingMinutes plus"),
    ("entries not a list", {"entries": {"a": 1}}, "entries: a list"),
    ("too many entries", {"entries": [{}] * (MAX_ENTRIES + 1)}, f"entries: at most {MAX_ENTRIES}"),
    ("entry not an object", {"entries": ["x"]}, "entries[0]: an object with reference"),
    ("entry extra key", {"entries": _entry(note="x")}, "entries[0]: an object with reference"),
    ("entry missing key", {"entries": [{"reference": S1, "minutes": 1}]}, "entries[0]: an object"),
    ("entry float", {"entries": _entry(minutes=-120.5)}, "entries[0].minutes: a whole number"),
    ("entry zero", {"entries": _entry(minutes=0)}, "entries[0].minutes: a posting is never zero"),
    ("entry bad reference", {"entries": _entry(reference="gand")}, "entries[0].reference: a URL"),
    (
        "entry outside",
        {"entries": _entry(published="2026-11-23T12:00:01Z")},
        "outside the statement's window",
    ),
    (
        "entry before start",
        {"entries": _entry(published="2026-10-01T12:00:00Z")},
        "outside the statement's window",
    ),
    ("entry twice", {"entries": _entry() + _entry()}, "is listed twice"),
    ("pending not a list", {"pending": "S1"}, "pending: a list"),
    ("pending extra key", {"pending": [{"reference": S1, "x": 1}]}, "pending[0]: an object"),
    ("pending float", {"pending": [{"reference": S1, "minutes": 1.5}]}, "pending[0].minutes"),
    ("pending bad reference", {"pending": [{"reference": 7}]}, "pending[0].reference: a URL"),
    ("reply not a URL", {"inReplyTo": ["x"]}, "inReplyTo: a URL"),
]


@pytest.mark.parametrize(
    ("changes", "message"), [(c, m) for _, c, m in BAD], ids=[n for n, _, _ in BAD]
)
def test_a_malformed_statement_is_refused_with_the_field_named(changes: Any, message: str) -> None:
    if isinstance(changes, dict):
        document: Any = wire(**changes)
        if "entries" in changes and "balanceMinutes" not in changes:
            entries = changes["entries"]
            valid = isinstance(entries, list) and all(
                isinstance(e, dict) and isinstance(e.get("minutes"), int) for e in entries
            )
            if valid:
                document["balanceMinutes"] = -60 + sum(e["minutes"] for e in entries)
    else:
        document = copy.deepcopy(changes)
    with pytest.raises(InvalidStatement) as caught:
        parse(document)
    assert message in str(caught.value)
    assert caught.value.field in str(caught.value)


def test_unknown_properties_of_the_statement_are_ignored() -> None:
    document = wire(summary="hello", url="https://gand.test/x")
    assert parse(document).balance == -150
