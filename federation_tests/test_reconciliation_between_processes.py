"""Reconciliation between two real chambers: signed statements agree after a settled exchange,
and a ledger changed behind the protocol's back is caught, explained by reference and logged
for the administrators of both chambers."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from federation_tests.harness import QUICK_POLL, NodeProcess, together, wait_for, wait_settled

pytestmark = pytest.mark.federation


def reconciliation(node: NodeProcess) -> tuple[str, Any, Any, str] | None:
    rows = node.sql(
        "SELECT status, our_balance, their_balance, mismatches FROM clearing_reconciliations"
    )
    return tuple(rows[0]) if rows else None  # type: ignore[return-value]


def write(node: NodeProcess, *statements: tuple[str, tuple[object, ...]]) -> None:
    """Change the node's database by hand, behind its back."""
    db = sqlite3.connect(node.data_dir / "archipel.db", timeout=30)
    try:
        with db:
            for query, params in statements:
                db.execute(query, params)
    finally:
        db.close()


def age_ledger(node: NodeProcess) -> None:
    """Postings of the last minutes count as "still arriving"; make them an hour old (while
    the node runs: it reads them from its database when it reconciles)."""
    write(
        node,
        ("UPDATE clearing_entries SET posted_at = datetime(posted_at, '-1 hour')", ()),
        ("UPDATE clearing_transactions SET posted_at = datetime(posted_at, '-1 hour')", ()),
    )


def test_statements_agree_then_a_tampered_ledger_is_caught(make_node: Any) -> None:
    lille, gand = together(lambda: make_node("lille"), lambda: make_node("gand"))
    together(lambda: lille.add_partner(gand, 600), lambda: gand.add_partner(lille, 600))
    lille.wait_partnered(gand)
    alice, bob = together(lambda: lille.add_trader("alice"), lambda: gand.add_trader("bob"))
    declared = alice.provide(bob, 90, "réparation de vélo")
    assert declared.status_code == 201, declared.text
    uri = declared.json()["id"]
    copy = bob.wait_exchange(uri, ("proposed",))
    assert bob.act(copy["key"], "accept").status_code == 200
    bob.wait_exchange(uri, ("posted",), timeout=60)
    wait_settled(lille, gand, quiet=True)
    (reference,) = lille.sql("SELECT reference FROM clearing_transactions")[0]
    for node in (lille, gand):
        age_ledger(node)

    lille.cli("partner", "reconcile")

    def compared(node: NodeProcess) -> bool:
        state = reconciliation(node)
        return state is not None and state[0] != "never"

    wait_for(lambda: compared(gand) and compared(lille), 60, "both reports", QUICK_POLL)
    assert reconciliation(lille)[:3] == ("ok", -90, 90)  # type: ignore[index]
    assert reconciliation(gand)[:3] == ("ok", 90, -90)  # type: ignore[index]

    # Someone edits Gand's database, the node stopped: the 1 h 30 becomes 1 h, on both sides
    # of Gand's ledger.
    gand.stop()
    write(
        gand,
        (
            "UPDATE clearing_entries SET amount = amount * 60 / 90, "
            "balance_after = balance_after * 60 / 90",
            (),
        ),
        ("UPDATE clearing_accounts SET balance = balance * 60 / 90", ()),
    )
    gand.start()
    gand.cli("partner", "reconcile")

    def caught() -> bool:
        return all(
            (state := reconciliation(node)) is not None and state[0] == "mismatch"
            for node in (lille, gand)
        )

    wait_for(caught, 60, "both chambers to report the mismatch", QUICK_POLL)
    for node in (lille, gand):
        report = node.cli("partner", "status")
        assert f"mismatch  {reference}" in report, report  # explained by the settlement
        actions = [a for (a,) in node.sql("SELECT action FROM audit_log")]
        assert "partner.mismatch" in actions
    # Each ledger still sums to zero: only the two chambers' records disagree.
    assert gand.sql("SELECT SUM(balance) FROM clearing_accounts")[0][0] == 0
    assert lille.sql("SELECT SUM(balance) FROM clearing_accounts")[0][0] == 0
