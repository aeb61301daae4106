"""Faults during the settlement between two real chambers: whatever happens, both ledgers end up
recording the exchange or neither does, each sums to zero, and no one repairs anything by hand.

Lille and Gand trade (large credit lines); both are behind loopback proxies that can drop,
swallow, duplicate, hold or reorder the settlement's messages, or kill a node when one arrives;
a node can also kill itself at a named step, which a test arms while it runs
(``ARCHIPEL_CRASH_AT_FILE``, ``node/faults.py``).

The preparer is the chamber of the member who accepts, the decider the other one. Gand, as
preparer, waits 30 s for a decision; Lille only 3 s, for the tests about deadlines (lost or late
messages, abort requests). Each test makes a fresh exchange of 10 minutes and restarts nothing
but the node it crashed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from federation_tests.harness import (
    QUICK_POLL,
    NodeProcess,
    Trader,
    assert_ledgers_agree,
    together,
    wait_for,
    wait_settled,
)
from federation_tests.proxy import Proxy, Request, Rule, activity

pytestmark = pytest.mark.federation

MINUTES = 10
SHORT_TIMEOUT = "3"  # Lille's patience as preparer, in seconds
LONG_TIMEOUT = "30"  # Gand's


def is_decision(body: dict[str, Any]) -> bool:
    result = body.get("result")
    return isinstance(result, dict) and result.get("type") == "Settlement"


OFFER = activity("Offer", "Settlement")
DECISION = activity(where=is_decision)
UNDO = activity("Undo", "Offer")


@dataclass
class Pair:
    lille: NodeProcess
    gand: NodeProcess
    alice: Trader
    bob: Trader
    emile: Trader  # on Gand, with a floor of -15 min
    crash_files: dict[str, Path]

    def proxy(self, node: NodeProcess) -> Proxy:
        assert node.proxy is not None
        return node.proxy

    def other(self, node: NodeProcess) -> NodeProcess:
        return self.gand if node is self.lille else self.lille

    def trader(self, node: NodeProcess) -> Trader:
        return self.alice if node is self.lille else self.bob

    def arm(self, node: NodeProcess, point: str) -> None:
        """The running ``node`` kills itself when it next reaches ``point`` (once)."""
        self.crash_files[node.name].write_text(point)

    def disarm(self) -> None:
        for path in self.crash_files.values():
            path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def pair(make_module_node: Any, tmp_path_factory: pytest.TempPathFactory) -> Pair:
    fast = {"ARCHIPEL_RETRY_BASE_SECONDS": "0.1"}  # the least; a host that failed is paused 2 s
    timeouts = {"lille": SHORT_TIMEOUT, "gand": LONG_TIMEOUT}
    crash_dir = tmp_path_factory.mktemp("crash-points")
    crash_files = {name: crash_dir / name for name in ("lille", "gand")}
    lille, gand = together(
        *(
            lambda name=name: make_module_node(
                name,
                behind_proxy=True,
                env={
                    **fast,
                    "ARCHIPEL_CLEARING_SETTLEMENT_TIMEOUT_SECONDS": timeouts[name],
                    "ARCHIPEL_CRASH_AT_FILE": str(crash_files[name]),
                },
            )
            for name in ("lille", "gand")
        )
    )
    together(lambda: lille.add_partner(gand, 100_000), lambda: gand.add_partner(lille, 100_000))
    lille.wait_partnered(gand)
    alice, bob, emile = together(
        lambda: lille.add_trader("alice"),
        lambda: gand.add_trader("bob"),
        lambda: gand.add_trader("emile", floor="-15 min"),
    )
    return Pair(lille, gand, alice, bob, emile, crash_files)


@pytest.fixture(autouse=True)
def healthy(pair: Pair) -> Iterator[None]:
    """Every test starts and ends with both nodes running, no rule, no crash point armed,
    nothing in flight."""
    yield
    pair.disarm()
    for node in (pair.lille, pair.gand):
        pair.proxy(node).clear()
    for node in (pair.lille, pair.gand):
        if not node.running:
            node.start()
    wait_settled(pair.lille, pair.gand, quiet=True)


@dataclass
class Flow:
    """One exchange: the decider's member declares it, the preparer's member accepts it."""

    pair: Pair
    preparer: NodeProcess
    uri: str
    key: str  # the acceptor's key for it
    before: dict[str, int]
    minutes: int = MINUTES

    @property
    def decider(self) -> NodeProcess:
        return self.pair.other(self.preparer)

    @property
    def acceptor(self) -> Trader:
        return self.pair.trader(self.preparer)

    @property
    def declarer(self) -> Trader:
        return self.pair.trader(self.decider)

    def accept(self) -> httpx.Response | None:
        """The acceptor accepts; None when their node died answering (a crash point)."""
        try:
            response = self.acceptor.act(self.key, "accept")
        except httpx.TransportError:
            return None
        if response.status_code == 502:  # the proxy's answer: the node died on the request
            return None
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "settling"
        return response

    def outcome(self, timeout: float = 60.0) -> str:
        """Wait until both chambers have decided; check they agree; the exchange's state."""
        wait_settled(self.pair.lille, self.pair.gand, timeout=timeout)
        assert_ledgers_agree(self.pair.lille, self.pair.gand)
        states = {
            node.name: node.sql("SELECT state FROM clearing_exchanges WHERE uri = ?", self.uri)[0][
                0
            ]
            for node in (self.pair.lille, self.pair.gand)
        }
        assert len(set(states.values())) == 1, states
        posted = [
            node.sql(
                "SELECT COUNT(*) FROM clearing_transactions t JOIN clearing_exchanges e "
                "ON e.id = t.exchange_id WHERE e.uri = ?",
                self.uri,
            )[0][0]
            for node in (self.pair.lille, self.pair.gand)
        ]
        state = states["lille"]
        assert posted == ([1, 1] if state == "posted" else [0, 0]), (state, posted)
        moved = self.minutes if state == "posted" else 0
        assert self.declarer.balance() == self.before["declarer"] + moved  # the provider
        assert self.acceptor.balance() == self.before["acceptor"] - moved
        return str(state)


def new_flow(pair: Pair, preparer: NodeProcess) -> Flow:
    """The decider's member declares that they did 10 minutes for the preparer's member."""
    declarer = pair.trader(pair.other(preparer))
    acceptor = pair.trader(preparer)
    before = {"declarer": declarer.balance(), "acceptor": acceptor.balance()}
    response = declarer.provide(acceptor, MINUTES, "faute de frappe")
    assert response.status_code == 201, response.text
    uri = response.json()["id"]
    key = acceptor.wait_exchange(uri, ("proposed",))["key"]
    return Flow(pair, preparer, uri, key, before)


def settlement_of(node: NodeProcess, uri: str) -> list[tuple[str, str, str]]:
    return node.sql(
        "SELECT s.role, s.state, s.reason FROM clearing_settlements s "
        "JOIN clearing_exchanges e ON e.id = s.exchange_id WHERE e.uri = ? ORDER BY s.id",
        uri,
    )


# -- a node dies at each step ------------------------------------------------------------------

CRASH_POINTS = [
    ("settlement.prepared", "preparer"),  # before the Offer leaves
    ("settlement.deciding", "decider"),  # before the decision commits
    ("settlement.decided", "decider"),  # after it commits, before the answer leaves
    ("settlement.finishing", "preparer"),  # before the decision is applied
    ("settlement.finished", "preparer"),  # after it is applied
]


@pytest.mark.parametrize(("point", "victim"), CRASH_POINTS, ids=[p for p, _ in CRASH_POINTS])
def test_a_node_killed_at_a_step_recovers_on_restart(pair: Pair, point: str, victim: str) -> None:
    flow = new_flow(pair, preparer=pair.gand)
    node = flow.preparer if victim == "preparer" else flow.decider
    pair.arm(node, point)
    flow.accept()
    assert node.wait_exit(timeout=30) == -9, f"{node.name} did not die at {point}"
    node.start()  # the crash point is spent; nobody does anything else
    assert flow.outcome() == "posted"


#: Down past the preparer's deadline: before the decision, it is aborted on both sides; once
#: the decider has committed, it is posted on both sides, however long the preparer waited.
LATE = {
    "settlement.prepared": "proposed",
    "settlement.deciding": "proposed",
    "settlement.decided": "posted",
    "settlement.finishing": "posted",
}


@pytest.mark.parametrize(
    ("point", "victim"), [c for c in CRASH_POINTS if c[0] in LATE], ids=list(LATE)
)
def test_a_node_down_past_the_deadline(pair: Pair, point: str, victim: str) -> None:
    flow = new_flow(pair, preparer=pair.lille)  # Lille waits 3 s only
    node = flow.preparer if victim == "preparer" else flow.decider
    pair.arm(node, point)
    flow.accept()
    assert node.wait_exit(timeout=30) == -9, f"{node.name} did not die at {point}"
    ((deadline,),) = flow.preparer.sql(
        "SELECT s.deadline FROM clearing_settlements s JOIN clearing_exchanges e "
        "ON e.id = s.exchange_id WHERE e.uri = ?",
        flow.uri,
    )
    past = datetime.fromisoformat(deadline).replace(tzinfo=UTC) - datetime.now(UTC)
    time.sleep(max(0.0, past.total_seconds()) + 0.1)  # down until after the deadline
    if node is flow.decider:  # and until the preparer, at its deadline, asked it to abort
        asked = pair.proxy(node)
        wait_for(lambda: asked.seen(UNDO), what="the preparer's Undo", interval=QUICK_POLL)
    node.start()
    assert flow.outcome() == LATE[point]


def kill_on_arrival(pair: Pair, node: NodeProcess, match: Callable[[Request], bool]) -> Rule:
    return pair.proxy(node).on(match, lambda request: node.kill(), times=1)


@pytest.mark.parametrize("receiver", ["decider", "preparer"])
def test_the_receiver_killed_as_a_message_arrives(pair: Pair, receiver: str) -> None:
    """SIGKILL the decider as the Offer reaches it, or the preparer as the decision does."""
    flow = new_flow(pair, preparer=pair.gand)
    node, match = (flow.decider, OFFER) if receiver == "decider" else (flow.preparer, DECISION)
    rule = kill_on_arrival(pair, node, match)
    flow.accept()
    rule.wait_hits(1)
    wait_for(lambda: not node.running, what=f"{node.name} to die", interval=QUICK_POLL)
    wait_for(lambda: rule.hits[0].answered, what="the proxy's answer", interval=QUICK_POLL)
    assert rule.hits[0].answered == 502  # the sender knows it was not delivered
    node.start()
    assert flow.outcome() == "posted"


# -- the network misbehaves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "action", "options"),
    [
        ("offer", "drop", {"times": 2}),
        ("offer", "drop", {"times": 1, "close": True}),
        ("decision", "drop", {"times": 2}),
        ("offer", "duplicate", {"copies": 3}),
        ("decision", "duplicate", {}),
        ("offer", "delay", {"seconds": 1.5}),
    ],
    ids=[
        "offer-refused-twice",
        "offer-connection-cut",
        "decision-refused-twice",
        "offer-thrice",
        "decision-twice",
        "offer-slow",
    ],
)
def test_lost_duplicated_or_slow_messages_are_settled_once(
    pair: Pair, message: str, action: str, options: dict[str, Any]
) -> None:
    flow = new_flow(pair, preparer=pair.gand)
    receiver, match = (flow.decider, OFFER) if message == "offer" else (flow.preparer, DECISION)
    rule = pair.proxy(receiver).add(match, action, **options)
    flow.accept()
    assert flow.outcome() == "posted"
    assert rule.hits, "the rule never applied"
    if action == "drop":
        delivered = [r for r in pair.proxy(receiver).seen(match) if r.answered == 202]
        assert delivered, "the sender never retried"


def test_a_lost_offer_is_aborted_on_both_sides(pair: Pair) -> None:
    """The Offer is swallowed (the preparer thinks it was delivered): at the deadline the
    preparer asks for an abort; the decider never saw it, records a tombstone and rejects."""
    flow = new_flow(pair, preparer=pair.lille)
    rule = pair.proxy(flow.decider).swallow(OFFER)
    flow.accept()
    assert flow.outcome() == "proposed"  # back as it was: Bob may accept again
    assert rule.hits
    assert pair.proxy(flow.decider).seen(UNDO)
    assert [(r, s) for r, s, _ in settlement_of(flow.decider, flow.uri)] == [("decider", "aborted")]
    assert [(r, s) for r, s, _ in settlement_of(flow.preparer, flow.uri)] == [
        ("preparer", "aborted")
    ]
    pair.proxy(flow.decider).remove(rule)
    flow.accept()  # a second attempt goes through
    assert flow.outcome() == "posted"


def test_a_lost_decision_is_asked_for_again(pair: Pair) -> None:
    """The decider's Accept is swallowed: at the deadline the preparer's abort request gets
    the same decision again, and it is posted on both sides."""
    flow = new_flow(pair, preparer=pair.lille)
    rule = pair.proxy(flow.preparer).swallow(DECISION, times=1)
    flow.accept()
    assert flow.outcome() == "posted"
    assert rule.hits and pair.proxy(flow.decider).seen(UNDO)


def test_an_offer_overtaken_by_the_abort_request_is_refused(pair: Pair) -> None:
    """Reordering: the Offer is held in the network past the deadline; the preparer's Undo
    arrives first and aborts; the late Offer then finds the tombstone."""
    flow = new_flow(pair, preparer=pair.lille)
    proxy = pair.proxy(flow.decider)
    held = proxy.delay(OFFER, answer_now=True, times=1)
    flow.accept()
    assert flow.outcome() == "proposed"
    assert proxy.seen(UNDO)
    held.release()
    (late,) = held.wait_hits(1)
    wait_for(lambda: late.statuses, what="the late Offer to be delivered", interval=QUICK_POLL)
    assert late.statuses[0] is not None and late.statuses[0] < 500
    assert flow.outcome() == "proposed"
    assert [s for _, s, _ in settlement_of(flow.decider, flow.uri)] == ["aborted"]


def test_an_offer_arriving_after_its_deadline_is_refused(pair: Pair) -> None:
    """The Offer arrives after its ``endTime`` (the abort requests are lost meanwhile): the
    decider refuses it by its own clock, and the preparer aborts."""
    flow = new_flow(pair, preparer=pair.lille)
    proxy = pair.proxy(flow.decider)
    held = proxy.delay(OFFER, answer_now=True, times=1)
    lost = proxy.swallow(UNDO)
    flow.accept()
    lost.wait_hits(1, timeout=30)  # the deadline has passed
    held.release()
    wait_for(lambda: held.hits[0].statuses, what="the late Offer's delivery", interval=QUICK_POLL)
    proxy.remove(lost)
    assert flow.outcome() == "proposed"
    ((role, state, reason),) = settlement_of(flow.decider, flow.uri)
    assert (role, state) == ("decider", "aborted") and "deadline" in reason


def test_a_late_decision_still_counts(pair: Pair) -> None:
    """The decider's Accept is held past the deadline; the abort request gets it again; the
    held one, delivered at last, changes nothing."""
    flow = new_flow(pair, preparer=pair.lille)
    proxy = pair.proxy(flow.preparer)
    held = proxy.delay(DECISION, answer_now=True, times=1)
    flow.accept()
    assert flow.outcome() == "posted"
    held.release()
    wait_for(
        lambda: held.hits[0].statuses, what="the late decision's delivery", interval=QUICK_POLL
    )
    assert flow.outcome() == "posted"


def test_a_withdrawal_racing_with_the_acceptance(pair: Pair) -> None:
    """Alice withdraws her declaration on Lille while Bob's acceptance is on its way from
    Gand: the decider sees the withdrawal first, rejects, and Gand ends withdrawn too."""
    flow = new_flow(pair, preparer=pair.gand)
    held = pair.proxy(flow.decider).delay(OFFER, times=1)
    flow.accept()
    held.wait_hits(1)
    declarer_key = flow.declarer.exchange(flow.uri)["key"]  # type: ignore[index]
    withdrawn = flow.declarer.act(declarer_key, "withdraw")
    assert withdrawn.status_code == 200, withdrawn.text
    held.release()
    assert flow.outcome() == "withdrawn"


def test_holds_count_against_a_members_floor(pair: Pair) -> None:
    """Emile (Gand, floor -15 min) accepts two exchanges of 10 minutes while the first is
    still being settled: its pending hold counts, so Gand refuses the second at once."""
    held = pair.proxy(pair.lille).delay(OFFER, times=1)
    exchanges = []
    for _ in range(2):
        response = pair.alice.provide(pair.emile, MINUTES)
        assert response.status_code == 201, response.text
        uri = response.json()["id"]
        exchanges.append((uri, pair.emile.wait_exchange(uri, ("proposed",))["key"]))
    (first, first_key), (second, second_key) = exchanges
    assert pair.emile.act(first_key, "accept").status_code == 200
    held.wait_hits(1)
    refused = pair.emile.act(second_key, "accept")
    assert refused.status_code == 409, refused.text
    assert "floor" in refused.text
    held.release()
    wait_settled(pair.lille, pair.gand)
    assert_ledgers_agree(pair.lille, pair.gand)
    assert pair.emile.exchange(first)["state"] == "posted"  # type: ignore[index]
    assert pair.emile.exchange(second)["state"] == "proposed"  # type: ignore[index]
    assert pair.alice.exchange(second)["state"] == "proposed"  # type: ignore[index]
    assert pair.emile.balance() == -MINUTES


def test_an_amendment_racing_with_the_acceptance(pair: Pair) -> None:
    """Alice amends her declaration (20 minutes instead of 10) while Bob's acceptance of the
    10 minutes is on its way: Lille refuses the settlement (the terms changed). Both copies
    must then show the same, current terms (else Bob keeps accepting stale terms that Lille
    keeps refusing), and Bob can accept those."""
    flow = new_flow(pair, preparer=pair.gand)
    held = pair.proxy(flow.decider).delay(OFFER, times=1)
    flow.accept()
    held.wait_hits(1)
    declarer_key = flow.declarer.exchange(flow.uri)["key"]  # type: ignore[index]
    amended = flow.declarer.act(declarer_key, "amend", minutes=2 * MINUTES)
    assert amended.status_code == 200, amended.text
    update = activity("Update")
    wait_for(
        lambda: [r for r in pair.proxy(flow.preparer).seen(update) if r.answered],
        what="the amendment to reach Gand",
        interval=QUICK_POLL,
    )
    held.release()
    wait_settled(pair.lille, pair.gand)
    assert_ledgers_agree(pair.lille, pair.gand)
    here = flow.declarer.exchange(flow.uri)
    there = flow.acceptor.exchange(flow.uri)
    assert here is not None and there is not None
    assert here["state"] == "proposed"
    assert (there["state"], there["minutes"], there["version"], there["proposal"]) == (
        here["state"],
        here["minutes"],
        here["version"],
        here["proposal"],
    ), f"the copies differ after the race: Lille {here}, Gand {there}"
    flow.minutes = 2 * MINUTES
    assert flow.accept() is not None
    assert flow.outcome() == "posted"
