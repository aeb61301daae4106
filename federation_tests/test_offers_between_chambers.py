"""Offers and needs between three real chambers: a Gand offer reaches Lille, which follows
Gand, through Gand's Announce; a Lille member finds it in Lille's federated offers and
declares the exchange from it, which the Gand member accepts; Roubaix, which nobody in Lille
follows, is not in Lille's list; a closed offer leaves it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from federation_tests.harness import NodeProcess, Trader, http_get, wait_for, wait_settled

pytestmark = pytest.mark.federation
AS2 = {"Accept": "application/activity+json"}


def _in_parallel(*jobs: Any) -> list[Any]:
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [f.result() for f in [pool.submit(job) for job in jobs]]


def _followers(url: str) -> list[str]:
    page = http_get(url + "/followers?page=true", headers=AS2, timeout=30)
    page.raise_for_status()
    return list(page.json()["orderedItems"])


def _federated(node: NodeProcess, **params: str) -> list[dict[str, Any]]:
    response = http_get(
        node.url + "/api/v1/offers", params={"scope": "federated", **params}, timeout=30
    )
    response.raise_for_status()
    return list(response.json()["items"])


def _publish(trader: Trader, **offer: Any) -> dict[str, Any]:
    made = trader.api("POST", "/api/v1/offers", json=offer)
    assert made.status_code == 201, made.text
    return dict(made.json())


def test_a_gand_offer_found_in_lille_and_answered_by_an_exchange(make_node) -> None:  # type: ignore[no-untyped-def]
    lille, gand, roubaix = _in_parallel(
        *(lambda n=name: make_node(n) for name in ("lille", "gand", "roubaix"))
    )
    lille.add_partner(gand, 600)
    gand.add_partner(lille, 600)
    gand.wait_partnered(lille)
    alice, lotte, chloe = _in_parallel(
        lambda: lille.add_trader("alice"),
        lambda: gand.add_trader("lotte"),
        lambda: roubaix.add_trader("chloe"),
    )
    followed = alice.api("POST", "/api/v1/follows", json={"handle": f"@gand@{gand.handle_host}"})
    assert followed.status_code in (200, 201, 202), followed.text
    wait_for(lambda: alice.actor in _followers(gand.chamber()), what="Gand to accept Alice")

    offer = _publish(
        lotte,
        kind="offer",
        title="Vertaling NL-FR",
        description="Ik vertaal je brieven van het Nederlands naar het Frans.",
        tags=["vertaling", "traduction"],
        minutes=90,
    )
    _publish(
        chloe,
        kind="offer",
        title="Réparation de vélos",
        description="Chambres à air et freins.",
        tags=["velo"],
    )
    (found,) = wait_for(
        lambda: _federated(lille, q="vertaal"), what="Gand's offer in Lille's federated offers"
    )
    assert found["id"] == offer["id"] and found["kind"] == "offer"
    assert found["title"] == "Vertaling NL-FR" and found["minutes"] == 90
    assert found["author"]["id"] == lotte.actor and found["chamber"]["id"] == gand.chamber()
    assert _federated(lille, tag="traduction")[0]["id"] == offer["id"]
    assert _federated(lille, chamber=f"127.0.0.1:{gand.port}")[0]["id"] == offer["id"]
    assert [i["id"] for i in _federated(lille)] == [offer["id"]]  # Roubaix: nobody follows it

    declared = alice.api(
        "POST",
        "/api/v1/exchanges",
        json={
            "provider": found["author"]["id"],
            "minutes": found["minutes"],
            "description": found["title"],
            "offer": found["id"],
        },
    )
    assert declared.status_code == 201, declared.text
    exchange = declared.json()
    assert exchange["offer"] == offer["id"] and exchange["provider"] == lotte.actor
    copy = lotte.wait_exchange(exchange["id"], ("proposed",))
    accepted = lotte.act(copy["key"], "accept")
    assert accepted.status_code == 200, accepted.text
    alice.wait_exchange(exchange["id"], ("posted",))
    wait_settled(lille, gand)
    assert alice.balance() == -90 and lotte.balance() == 90

    closed = lotte.api("POST", f"/api/v1/offers/{offer['key']}/close")
    assert closed.status_code == 200, closed.text
    wait_for(lambda: not _federated(lille), what="the closed offer to leave Lille's list")
