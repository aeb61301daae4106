"""Exchanges between members of three real chambers (Lille, Gand, Roubaix) and their settlement.

Lille and Gand trade with each other (credit lines of 10 h both ways); Gand and Roubaix too, but
Roubaix lets Gand owe it only 1 h; Lille has added Roubaix, which has not added Lille, so their
members cannot trade. Every node is behind a loopback proxy that records what it receives, so a
test can replay or alter a real signed activity. The chambers are shared by the tests of the
module; each test makes its own exchanges and compares balances before and after.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from federation_tests.harness import (
    NodeProcess,
    Trader,
    assert_ledgers_agree,
    in_flight,
    tls,
    together,
    wait_settled,
)
from federation_tests.proxy import Request, activity
from node.activitypub.keys import rsa_public_pem
from node.activitypub.multikey import public_key_to_multibase
from node.activitypub.proofs import sign_eddsa_jcs_2022
from node.activitypub.signatures import sign_cavage

pytestmark = pytest.mark.federation
AS2 = "application/activity+json"
SETTLEMENT_OFFER = activity("Offer", "Settlement")


def is_decision(body: dict[str, Any]) -> bool:
    result = body.get("result")
    return isinstance(result, dict) and result.get("type") == "Settlement"


DECISION = activity(where=is_decision)


class Chambers:
    """The three nodes, their members and the ledger figures a test compares."""

    def __init__(self, lille: NodeProcess, gand: NodeProcess, roubaix: NodeProcess) -> None:
        self.lille, self.gand, self.roubaix = lille, gand, roubaix
        self.all = (lille, gand, roubaix)
        self.alice: Trader
        self.bob: Trader
        self.chloe: Trader
        self.dirk: Trader  # on Gand, with a floor of -1 h

    def partners(self, node: NodeProcess) -> dict[str, dict[str, Any]]:
        response = node.api("GET", "/api/v1/partners")
        response.raise_for_status()
        return {item["chamber"]: item for item in response.json()["items"]}

    def mirror(self, node: NodeProcess, of: NodeProcess) -> int:
        """``of``'s account in ``node``'s ledger (what ``node`` says ``of`` owes it: negative)."""
        return int(self.partners(node)[of.chamber()]["balance_minutes"])

    def snapshot(self) -> dict[str, int]:
        figures = {t.username: t.balance() for t in (self.alice, self.bob, self.chloe, self.dirk)}
        for a in self.all:
            for chamber, item in self.partners(a).items():
                figures[f"{a.name}:{chamber}"] = int(item["balance_minutes"])
        return figures


@pytest.fixture(scope="module")
def chambers(make_module_node: Any) -> Chambers:
    lille, gand, roubaix = together(
        *(
            lambda n=name: make_module_node(n, behind_proxy=True)
            for name in ("lille", "gand", "roubaix")
        )
    )
    together(
        lambda: (lille.add_partner(gand, 600), lille.add_partner(roubaix, 600)),
        lambda: (gand.add_partner(lille, 600), gand.add_partner(roubaix, 600)),
        lambda: roubaix.add_partner(gand, 60),
    )
    gand.wait_partnered(lille, roubaix)
    found = Chambers(lille, gand, roubaix)
    found.alice, found.bob, found.dirk, found.chloe = together(
        lambda: lille.add_trader("alice"),
        lambda: gand.add_trader("bob"),
        lambda: gand.add_trader("dirk", floor="-1 h"),
        lambda: roubaix.add_trader("chloe"),
    )
    return found


@pytest.fixture(autouse=True)
def clean_proxies(chambers: Chambers) -> Iterator[None]:
    yield
    for node in chambers.all:
        assert node.proxy is not None
        node.proxy.clear()


def declare(by: Trader, provider: bool, other: Trader, minutes: int) -> dict[str, Any]:
    response = by.provide(other, minutes) if provider else by.receive(other, minutes)
    assert response.status_code == 201, response.text
    return dict(response.json())


def settle(declarer: Trader, acceptor: Trader, exchange: dict[str, Any]) -> None:
    """The counterparty accepts on their own node; wait until both nodes post it."""
    uri = exchange["id"]
    copy_ = acceptor.wait_exchange(uri, ("proposed",))
    response = acceptor.act(copy_["key"], "accept")
    assert response.status_code == 200, response.text
    assert response.json()["state"] in ("settling", "posted")
    acceptor.wait_exchange(uri, ("posted",))
    declarer.wait_exchange(uri, ("posted",))
    wait_settled(declarer.node, acceptor.node)


# -- trading ------------------------------------------------------------------------------


def test_partners_and_credit_lines_are_listed(chambers: Chambers) -> None:
    lille, gand, roubaix = chambers.all
    on_lille = chambers.partners(lille)
    assert set(on_lille) == {gand.chamber(), roubaix.chamber()}
    assert on_lille[gand.chamber()]["credit_line_minutes"] == 600
    assert chambers.partners(roubaix)[gand.chamber()]["credit_line_minutes"] == 60
    assert set(chambers.partners(roubaix)) == {gand.chamber()}
    for node in chambers.all:
        for item in chambers.partners(node).values():
            assert isinstance(item["balance_minutes"], int)


DIRECTIONS = {
    # name: (declarer, declares as provider?, counterparty) -- the counterparty accepts
    "lille-provides-declared-at-lille": ("alice", True, "bob"),
    "gand-provides-declared-at-lille": ("alice", False, "bob"),
    "lille-provides-declared-at-gand": ("bob", False, "alice"),
    "gand-provides-declared-at-gand": ("bob", True, "alice"),
    "gand-provides-to-roubaix": ("chloe", False, "bob"),
}


@pytest.mark.parametrize("direction", list(DIRECTIONS))
def test_a_cross_exchange_settles_in_both_ledgers(chambers: Chambers, direction: str) -> None:
    declarer_name, as_provider, other_name = DIRECTIONS[direction]
    declarer: Trader = getattr(chambers, declarer_name)
    other: Trader = getattr(chambers, other_name)
    provider, beneficiary = (declarer, other) if as_provider else (other, declarer)
    minutes = 45
    before = chambers.snapshot()

    exchange = declare(declarer, as_provider, other, minutes)
    assert exchange["state"] == "proposed"
    copy_ = other.wait_exchange(exchange["id"])
    assert (copy_["provider"], copy_["beneficiary"]) == (provider.actor, beneficiary.actor)
    assert copy_["minutes"] == minutes and copy_["key"]
    settle(declarer, other, exchange)

    after = chambers.snapshot()
    p_node, b_node = provider.node, beneficiary.node
    expected = dict(before)
    expected[provider.username] += minutes
    expected[beneficiary.username] -= minutes
    expected[f"{p_node.name}:{b_node.chamber()}"] -= minutes  # the other chamber owes more
    expected[f"{b_node.name}:{p_node.chamber()}"] += minutes
    assert after == expected
    assert chambers.mirror(p_node, b_node) == -chambers.mirror(b_node, p_node)
    assert_ledgers_agree(*chambers.all)

    # Both chambers keep the whole story: the members' activities and both chambers'.
    histories = []
    for trader in (declarer, other):
        key = trader.exchange(exchange["id"])["key"]  # type: ignore[index]
        detail = trader.api("GET", f"/api/v1/exchanges/{key}").json()
        histories.append(set(detail["activities"]))
    offers = other.node.sql(
        "SELECT prepare_activity_id, decision_activity_id FROM clearing_settlements s "
        "JOIN clearing_exchanges e ON e.id = s.exchange_id WHERE e.uri = ?",
        exchange["id"],
    )
    ((prepare, decision),) = offers
    for history in histories:
        assert {prepare, decision} <= history


def test_trading_needs_both_chambers_to_agree(chambers: Chambers) -> None:
    """Lille added Roubaix, Roubaix did not add Lille: Roubaix's members cannot name Lille's,
    and a Lille member's declaration is refused at once (Lille knows Roubaix has not confirmed
    the partnership): nothing is stored, nothing is sent, nothing expires later."""
    lille, gand, roubaix = chambers.all
    refused = chambers.chloe.provide(chambers.alice, 30)
    assert refused.status_code == 422, refused.text
    assert "partner" in refused.text
    on_lille = chambers.partners(lille)
    assert on_lille[roubaix.chamber()]["confirmed"] is False
    assert on_lille[gand.chamber()]["confirmed"] is True
    listed = {line.split()[0]: line for line in lille.cli("partner", "list").splitlines()}
    assert listed[gand.chamber()].endswith("confirmed both ways")
    assert "not confirmed yet" in listed[roubaix.chamber()]
    before = chambers.snapshot()
    exchanges = len(chambers.alice.exchanges())
    declared = chambers.alice.provide(chambers.chloe, 30)
    assert declared.status_code == 422, declared.text
    assert declared.json()["field"] == "beneficiary"
    assert "has not added this chamber as a partner" in declared.json()["error"]
    assert len(chambers.alice.exchanges()) == exchanges
    assert roubaix.proxy is not None
    assert not roubaix.proxy.seen(activity("Offer", "EconomicEvent"))
    assert chambers.snapshot() == before
    assert_ledgers_agree(*chambers.all)


# -- limits refuse cleanly on both sides ---------------------------------------------------


def refused_at_decider(
    chambers: Chambers, declarer: Trader, as_provider: bool, other: Trader, minutes: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The counterparty accepts, their chamber prepares, the declarer's chamber refuses: the
    two copies of the exchange as they end."""
    before = chambers.snapshot()
    exchange = declare(declarer, as_provider, other, minutes)
    copy_ = other.wait_exchange(exchange["id"], ("proposed",))
    response = other.act(copy_["key"], "accept")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "settling"
    wait_settled(*chambers.all)
    there = other.exchange(exchange["id"])
    here = declarer.exchange(exchange["id"])
    assert there is not None and here is not None
    assert there["state"] == "proposed" and here["state"] == "proposed"
    assert chambers.snapshot() == before
    assert_ledgers_agree(*chambers.all)
    return here, there


def refused_at_preparer(
    chambers: Chambers, declarer: Trader, as_provider: bool, other: Trader, minutes: int
) -> str:
    """The counterparty's own chamber refuses the acceptance at once: the message (409)."""
    before = chambers.snapshot()
    exchange = declare(declarer, as_provider, other, minutes)
    copy_ = other.wait_exchange(exchange["id"], ("proposed",))
    response = other.act(copy_["key"], "accept")
    assert response.status_code == 409, response.text
    assert other.exchange(exchange["id"])["state"] == "proposed"  # type: ignore[index]
    assert declarer.exchange(exchange["id"])["state"] == "proposed"  # type: ignore[index]
    assert in_flight(*chambers.all) == []
    assert chambers.snapshot() == before
    assert_ledgers_agree(*chambers.all)
    return str(response.json())


def settlement_reasons(node: NodeProcess, uri: str) -> list[str]:
    return [
        reason
        for (reason,) in node.sql(
            "SELECT s.reason FROM clearing_settlements s "
            "JOIN clearing_exchanges e ON e.id = s.exchange_id WHERE e.uri = ?",
            uri,
        )
    ]


def public_refusals(trader: Trader, uri: str) -> list[str]:
    """The reasons of the chambers' ``Reject`` in the exchange's public history (its AS2
    document on the member's own node)."""
    key = trader.exchange(uri)["key"]  # type: ignore[index]
    document = trader.node.api("GET", f"/exchanges/{key}", headers={"Accept": AS2}).json()
    return [
        str(item.get("content", ""))
        for item in document.get("history", [])
        if isinstance(item, dict) and item.get("type") == "Reject" and is_decision(item)
    ]


def test_the_deciding_chamber_refuses_beyond_its_credit_line(chambers: Chambers) -> None:
    """Chloe (Roubaix) did 2 h for Bob (Gand); Roubaix lets Gand owe it only 1 h. Chloe
    declares, Bob accepts: Gand prepares, Roubaix refuses, both ledgers stay as they were."""
    here, there = refused_at_decider(chambers, chambers.chloe, True, chambers.bob, 120)
    assert "credit line" in there["comment"], there
    assert any("credit line" in r for r in settlement_reasons(chambers.roubaix, here["id"]))
    for trader in (chambers.chloe, chambers.bob):
        assert any("credit line" in r for r in public_refusals(trader, here["id"]))


def test_the_preparing_chamber_refuses_beyond_the_credit_line(chambers: Chambers) -> None:
    """Bob declares that Chloe did 2 h for him; Chloe accepts on Roubaix: Roubaix itself
    refuses at once (Gand may owe it 1 h only)."""
    message = refused_at_preparer(chambers, chambers.bob, False, chambers.chloe, 120)
    assert "credit line" in message


def test_the_deciding_chamber_refuses_below_a_members_floor(chambers: Chambers) -> None:
    """Dirk (Gand, floor -1 h) declares that Alice (Lille) did 2 h for him; Alice accepts:
    Lille prepares, Gand refuses (Dirk's floor)."""
    here, there = refused_at_decider(chambers, chambers.dirk, False, chambers.alice, 120)
    assert "floor" in there["comment"], there
    assert any("floor" in r for r in settlement_reasons(chambers.gand, here["id"]))
    for trader in (chambers.dirk, chambers.alice):
        assert any("floor" in r for r in public_refusals(trader, here["id"]))


def test_the_preparing_chamber_refuses_below_a_members_floor(chambers: Chambers) -> None:
    """Alice declares 2 h for Dirk; Dirk accepts on Gand: his own chamber refuses at once."""
    message = refused_at_preparer(chambers, chambers.alice, True, chambers.dirk, 120)
    assert "floor" in message


# -- forged, altered and replayed activities -------------------------------------------------


class Mallory:
    """An actor on a host of her own (loopback), with her own keys, valid signatures and bad
    intentions: she can sign HTTP requests and Data Integrity proofs."""

    def __init__(self) -> None:
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ed = ed25519.Ed25519PrivateKey.generate()
        documents: dict[str, bytes] = {}
        self.documents = documents

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 -- http.server's names
                body = documents.get(self.path.split("#")[0], b"")
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", AS2)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.uri = f"{self.base}/users/mallory"
        self.key_id = f"{self.uri}#main-key"
        self.ed_key_id = f"{self.uri}#ed25519-key"
        documents["/users/mallory"] = json.dumps(
            {
                "@context": [
                    "https://www.w3.org/ns/activitystreams",
                    "https://w3id.org/security/v1",
                ],
                "id": self.uri,
                "type": "Person",
                "preferredUsername": "mallory",
                "inbox": f"{self.uri}/inbox",
                "publicKey": {
                    "id": self.key_id,
                    "owner": self.uri,
                    "publicKeyPem": rsa_public_pem(self.rsa),
                },
                "assertionMethod": [
                    {
                        "id": self.ed_key_id,
                        "type": "Multikey",
                        "controller": self.uri,
                        "publicKeyMultibase": public_key_to_multibase(self.ed.public_key()),
                    }
                ],
            }
        ).encode()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def post(
        self, url: str, document: dict[str, Any] | bytes, *, key_id: str | None = None
    ) -> httpx.Response:
        """POST with an HTTP signature by Mallory's key (announced as ``key_id``)."""
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        headers = {"Content-Type": AS2}
        headers.update(
            sign_cavage(
                "POST",
                url,
                headers,
                body,
                self.rsa,
                key_id or self.key_id,
                datetime.now(UTC),
            )
        )
        return httpx.post(url, content=body, headers=headers, timeout=30, verify=tls())

    def prove(self, document: dict[str, Any], verification_method: str) -> dict[str, Any]:
        """Replace the document's proof by one made with Mallory's Ed25519 key."""
        bare = {k: v for k, v in document.items() if k != "proof"}
        return sign_eddsa_jcs_2022(bare, self.ed, verification_method, created=datetime.now(UTC))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def mallory() -> Iterator[Mallory]:
    rogue = Mallory()
    yield rogue
    rogue.close()


def a_settled_exchange(chambers: Chambers) -> tuple[Request, Request]:
    """Alice (Lille) did 30 min for Bob (Gand), Bob accepted: Gand's signed settlement ``Offer``
    as Lille received it, and Lille's signed ``Accept`` as Gand received it."""
    exchange = declare(chambers.alice, True, chambers.bob, 30)
    settle(chambers.alice, chambers.bob, exchange)
    assert chambers.lille.proxy is not None and chambers.gand.proxy is not None
    offers = [
        r
        for r in chambers.lille.proxy.seen(SETTLEMENT_OFFER)
        if r.json["object"]["exchange"] == exchange["id"]
    ]
    decisions = [
        r
        for r in chambers.gand.proxy.seen(DECISION)
        if r.json["result"].get("exchange") == exchange["id"]
    ]
    assert offers and decisions
    return offers[0], decisions[0]


def unchanged(chambers: Chambers, before: dict[str, int], settlements: int) -> None:
    assert chambers.snapshot() == before
    count = sum(
        node.sql("SELECT COUNT(*) FROM clearing_settlements")[0][0] for node in chambers.all
    )
    assert count == settlements
    assert in_flight(*chambers.all) == []
    assert_ledgers_agree(*chambers.all)


def settlements_count(chambers: Chambers) -> int:
    return sum(node.sql("SELECT COUNT(*) FROM clearing_settlements")[0][0] for node in chambers.all)


def chamber_keys(node: NodeProcess) -> tuple[str, str]:
    """The chamber actor's RSA key id and Ed25519 (Multikey) id."""
    document = httpx.get(node.chamber(), headers={"Accept": AS2}, verify=tls()).json()
    methods = document["assertionMethod"]
    multikey = methods[0] if isinstance(methods, list) else methods
    return document["publicKey"]["id"], multikey["id"]


def test_a_forged_or_altered_settlement_is_refused(chambers: Chambers, mallory: Mallory) -> None:
    offer, _ = a_settled_exchange(chambers)
    inbox = chambers.lille.url + offer.path
    genuine = offer.json
    rsa_key, ed_key = chamber_keys(chambers.gand)

    # A fresh exchange, still open, that a forged settlement could try to post.
    target = declare(chambers.alice, True, chambers.bob, 40)
    chambers.bob.wait_exchange(target["id"], ("proposed",))
    before, settlements = chambers.snapshot(), settlements_count(chambers)

    # 1. Gand's real Offer, minutes altered (new ids so it is not a mere duplicate), relayed
    #    by Mallory with her own valid HTTP signature: Gand's proof no longer verifies.
    altered = copy.deepcopy(genuine)
    altered["id"] += "-altered"
    altered["object"]["id"] += "-altered"
    altered["object"]["minutes"] = 600
    # 2. The same, pointed at the open exchange, re-signed with Mallory's key but claiming
    #    to be Gand's chamber key.
    retargeted = copy.deepcopy(altered)
    retargeted["id"] += "-2"
    retargeted["object"]["id"] += "-2"
    retargeted["object"]["exchange"] = target["id"]
    retargeted["context"] = target["id"]
    retargeted["object"]["minutes"] = 40
    wrong_key = mallory.prove(retargeted, ed_key)
    # 3. Re-signed by Mallory's own key (the proof verifies, but is not Gand's).
    own_key = mallory.prove({**retargeted, "id": retargeted["id"] + "-3"}, mallory.ed_key_id)
    # 4. Mallory's HTTP signature announced as Gand's chamber key.
    answers = {
        "altered": mallory.post(inbox, altered),
        "wrong key": mallory.post(inbox, wrong_key),
        "mallory's proof": mallory.post(inbox, own_key),
        "http signature with a wrong key": mallory.post(inbox, altered, key_id=rsa_key),
        # 5. Mallory settling in her own name: she is no partner of Lille.
        "not a partner": mallory.post(
            inbox,
            {
                "@context": "https://www.w3.org/ns/activitystreams",
                "id": f"{mallory.uri}/offers/1",
                "type": "Offer",
                "actor": mallory.uri,
                "to": [chambers.lille.chamber()],
                "object": {
                    **retargeted["object"],
                    "id": f"{mallory.uri}/settlements/1",
                },
            },
        ),
    }
    for name, response in answers.items():
        assert 400 <= response.status_code < 500, (name, response.status_code, response.text)
    assert answers["http signature with a wrong key"].status_code == 401
    unchanged(chambers, before, settlements)
    assert chambers.alice.exchange(target["id"])["state"] == "proposed"  # type: ignore[index]


def test_a_replayed_activity_has_no_effect(chambers: Chambers, mallory: Mallory) -> None:
    offer, decision = a_settled_exchange(chambers)
    before, settlements = chambers.snapshot(), settlements_count(chambers)

    def verbatim(node: NodeProcess, request: Request) -> httpx.Response:
        headers = [(k, v) for k, v in request.headers if k.lower() not in ("connection",)]
        return httpx.post(
            node.url + request.target, content=request.body, headers=headers, verify=tls()
        )

    exchange_uri = offer.json["object"]["exchange"]
    assert chambers.gand.proxy is not None
    (declaration,) = [
        r
        for r in chambers.gand.proxy.seen(activity("Offer", "EconomicEvent"))
        if r.json["object"]["id"] == exchange_uri
    ]
    copies = chambers.gand.sql("SELECT COUNT(*) FROM clearing_exchanges")

    answers = [
        # the very same requests, signatures and all: the settlement's Offer, the decision,
        # and Alice's declaration of the exchange
        verbatim(chambers.lille, offer),
        verbatim(chambers.gand, decision),
        verbatim(chambers.gand, declaration),
        # the same signed activities, relayed by another actor with a valid HTTP signature
        mallory.post(chambers.lille.url + offer.path, offer.body),
        mallory.post(chambers.gand.url + decision.path, decision.body),
        mallory.post(chambers.gand.url + declaration.path, declaration.body),
    ]
    for response in answers:
        assert response.status_code == 202, response.text  # known already: nothing to do
    assert chambers.gand.sql("SELECT COUNT(*) FROM clearing_exchanges") == copies
    assert chambers.bob.exchange(exchange_uri)["state"] == "posted"  # type: ignore[index]
    # and sent to the third chamber, which has nothing to do with it
    to_roubaix = mallory.post(chambers.roubaix.url + offer.path, offer.body)
    assert to_roubaix.status_code in (202, 403, 404, 422), to_roubaix.text
    unchanged(chambers, before, settlements)


def test_only_the_deciding_chamber_decides(chambers: Chambers, mallory: Mallory) -> None:
    """While Gand waits for Lille's decision, forged decisions reach Gand: Mallory's own, and
    one in Lille's name that Lille did not sign. Gand keeps waiting; Lille's decision posts."""
    lille_proxy = chambers.lille.proxy
    assert lille_proxy is not None
    held = lille_proxy.delay(SETTLEMENT_OFFER, times=1)
    exchange = declare(chambers.alice, True, chambers.bob, 25)
    copy_ = chambers.bob.wait_exchange(exchange["id"], ("proposed",))
    before = chambers.snapshot()
    assert chambers.bob.act(copy_["key"], "accept").status_code == 200
    (offer,) = held.wait_hits(1)
    settlement = offer.json["object"]["id"]
    inbox = chambers.gand.url + offer.path

    def decision(kind: str, actor: str, n: int) -> dict[str, Any]:
        return {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{actor}/forged/{n}",
            "type": kind,
            "actor": actor,
            "to": [chambers.gand.chamber()],
            "object": offer.json["id"],
            "context": exchange["id"],
            "result": {"type": "Settlement", "id": settlement, "state": "committed"},
        }

    _, lille_ed_key = chamber_keys(chambers.lille)
    in_lilles_name = decision("Accept", chambers.lille.chamber(), 3)
    answers = [
        mallory.post(inbox, decision("Accept", mallory.uri, 1)),
        mallory.post(inbox, decision("Reject", mallory.uri, 2)),
        mallory.post(inbox, mallory.prove(in_lilles_name, lille_ed_key)),
        mallory.post(inbox, mallory.prove(in_lilles_name, mallory.ed_key_id)),
    ]
    for response in answers:
        assert response.status_code in (401, 403), response.text
    assert chambers.bob.exchange(exchange["id"])["state"] == "settling"  # type: ignore[index]
    assert in_flight(chambers.gand), "Gand should still wait for Lille"
    assert chambers.snapshot() == before

    held.release()
    chambers.bob.wait_exchange(exchange["id"], ("posted",))
    chambers.alice.wait_exchange(exchange["id"], ("posted",))
    wait_settled(*chambers.all)
    assert_ledgers_agree(*chambers.all)
