"""A clearing round between three real chambers, after real cross-chamber exchanges.

Lille, Gand and Roubaix are partners of one another. Their members trade so that the chambers'
positions form a 3-cycle: Lille owes Roubaix 5 h (Chloé of Roubaix helped Alice of Lille),
Roubaix owes Gand 5 h (Bob helped Chloé), Gand owes Lille 5 h (Alice helped Bob). Lille proposes
a round (``archipel round propose``); every chamber signs it, and it brings all three positions
to zero in every ledger, members' balances untouched, mirror accounts opposite, each ledger
summing to zero; ``archipel verify`` proves the round from the proposer's public document.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from federation_tests.harness import (
    QUICK_POLL,
    NodeProcess,
    Trader,
    archipel,
    assert_ledgers_agree,
    ledger_of,
    tls,
    together,
    wait_for,
    wait_settled,
)
from node.clearing.rounds.protocol import RoundState
from node.clearing.rounds.review import verify_round

pytestmark = pytest.mark.federation
HOUR = 60
AS2 = {"Accept": "application/activity+json"}


def trade(provider: Trader, beneficiary: Trader, minutes: int) -> None:
    """``provider`` declares the work on their chamber; ``beneficiary`` accepts it on theirs."""
    declared = provider.provide(beneficiary, minutes, "aide entre chambres")
    assert declared.status_code == 201, declared.text
    uri = declared.json()["id"]
    copy = beneficiary.wait_exchange(uri, ("proposed",))
    accepted = beneficiary.act(copy["key"], "accept")
    assert accepted.status_code in (200, 202), accepted.text
    provider.wait_exchange(uri, ("posted",), timeout=60)
    beneficiary.wait_exchange(uri, ("posted",), timeout=60)


def mirrors(node: NodeProcess) -> dict[str, int]:
    return {chamber: int(balance) for chamber, balance in ledger_of(node)["mirrors"].items()}


def round_state(node: NodeProcess, uri: str) -> str | None:
    rows = node.sql("SELECT state FROM clearing_rounds WHERE uri = ?", uri)
    return str(rows[0][0]) if rows else None


def test_a_round_clears_the_three_cycle_in_every_ledger(make_node: Any) -> None:
    lille, gand, roubaix = together(
        *(lambda name=name: make_node(name) for name in ("lille", "gand", "roubaix"))
    )
    chambers = (lille, gand, roubaix)
    together(
        *(
            lambda node=node: [node.add_partner(o, 10 * HOUR) for o in chambers if o is not node]
            for node in chambers
        )
    )
    lille.wait_partnered(gand, roubaix)
    gand.wait_partnered(roubaix)
    alice, bob, chloe = together(
        lambda: lille.add_trader("alice"),
        lambda: gand.add_trader("bob"),
        lambda: roubaix.add_trader("chloe"),
    )

    trade(chloe, alice, 5 * HOUR)  # Lille owes Roubaix
    trade(bob, chloe, 5 * HOUR)  # Roubaix owes Gand
    trade(alice, bob, 5 * HOUR)  # Gand owes Lille
    wait_settled(*chambers)
    assert mirrors(lille) == {roubaix.chamber(): 5 * HOUR, gand.chamber(): -5 * HOUR}
    assert mirrors(roubaix) == {gand.chamber(): 5 * HOUR, lille.chamber(): -5 * HOUR}
    assert mirrors(gand) == {lille.chamber(): 5 * HOUR, roubaix.chamber(): -5 * HOUR}
    assert_ledgers_agree(*chambers)
    members = {t.username: t.balance() for t in (alice, bob, chloe)}
    assert members == {"alice": 0, "bob": 0, "chloe": 0}

    proposed = json.loads(lille.cli("round", "propose", "--json"))
    uri = proposed["id"]
    assert proposed["state"] == "collecting"
    assert sorted(proposed["participants"]) == sorted(n.chamber() for n in chambers)

    def committed_everywhere() -> bool:
        return all(round_state(node, uri) == "committed" for node in chambers)

    wait_for(committed_everywhere, 60, "the round to commit on every chamber", QUICK_POLL)

    for node in chambers:
        assert set(mirrors(node).values()) == {0}, (node.name, mirrors(node))
        kinds = node.sql(
            "SELECT kind, COUNT(*) FROM clearing_transactions WHERE reference = ? GROUP BY kind",
            uri,
        )
        assert kinds == [("round", 1)], (node.name, kinds)
    assert {t.username: t.balance() for t in (alice, bob, chloe)} == members
    assert_ledgers_agree(*chambers)

    listed = json.loads(gand.cli("round", "list", "--json"))
    assert [(r["id"], r["state"], r["role"]) for r in listed] == [(uri, "committed", "participant")]
    assert (listed[0]["total_before_minutes"], listed[0]["total_after_minutes"]) == (900, 0)

    # Anyone can check the round with the chambers' public documents only.
    document = httpx.get(uri, headers=AS2, timeout=10, verify=tls()).json()
    assert json.loads(roubaix.cli("round", "show", uri))["document"] == document
    actors = [
        httpx.get(n.chamber(), headers=AS2, timeout=10, verify=tls()).json() for n in chambers
    ]
    verification = verify_round(document, actors)
    assert verification.ok, verification.problems
    assert verification.state == RoundState.COMMITTED
    report = archipel("verify", uri, "--allow-private-addresses")
    assert "✓ verified: committed" in report
