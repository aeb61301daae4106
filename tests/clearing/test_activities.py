"""Exchange proofs verify from public documents only: activities fetched over HTTP and the
actors' documents, no database; between two chambers, the members' activities and the two
chambers' settlement, as both chambers serve them."""

from __future__ import annotations

import copy
from typing import Any

import httpx

from node.activitypub.jsonld import default_context, expand
from node.clearing.exchanges.activities import Verification, hours_value, verify_exchange
from node.clearing.exchanges.states import ExchangeState
from node.config import Settings
from tests.clearing._chambers import IN_MODULE_LOOP, Settled, settle_between, two_chambers
from tests.harness.plugin import OpenArchipelago

from .conftest import MakeMember

AS2 = {"Accept": "application/activity+json"}


async def _public_history(client: httpx.AsyncClient) -> tuple[list[dict[str, Any]], list[Any]]:
    page = (await client.get("/ledger/activities?page=true", headers=AS2)).json()
    activities = [
        (await client.get(item["id"], headers=AS2)).json()
        for item in reversed(page["orderedItems"])
    ]
    actors = {a["actor"] for a in activities}
    documents = [(await client.get(uri, headers=AS2)).json() for uri in actors]
    return activities, documents


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_history_verifies_from_public_documents(
    client: httpx.AsyncClient, make_member: MakeMember
) -> None:
    _, alice = await make_member("alice")
    _, bob = await make_member("bob")
    created = await client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "bob", "minutes": 150, "description": "Cours de compta"},
        headers=_auth(alice),
    )
    key = created.json()["key"]
    await client.post(
        f"/api/v1/exchanges/{key}/contest", json={"comment": "2 h"}, headers=_auth(bob)
    )
    await client.post(f"/api/v1/exchanges/{key}/amend", json={"minutes": 120}, headers=_auth(alice))
    await client.post(f"/api/v1/exchanges/{key}/accept", headers=_auth(bob))

    activities, actors = await _public_history(client)
    assert [a["type"] for a in activities] == ["Offer", "TentativeReject", "Update", "Accept"]
    result = verify_exchange(activities, actors)
    assert result.ok, result.problems
    assert result.state == "posted" and result.terms is not None
    assert result.terms["minutes"] == 120

    forged = copy.deepcopy(activities)
    forged[-1]["result"]["minutes"] = 1200  # a tampered acceptance
    assert not verify_exchange(forged, actors).ok
    # an acceptance signed by the declarer herself is not an agreement
    replayed = [*activities[:-1], {**activities[0], "type": "Accept"}]
    assert not verify_exchange(replayed, actors).ok
    # without the actors' keys nothing verifies
    assert not verify_exchange(activities, []).ok


def test_hours_are_exact_for_other_software() -> None:
    assert hours_value(120) == 2
    assert hours_value(90) == "1.5"
    assert hours_value(20) == "0.333333"


# --- between two chambers: the members' activities and the chambers' settlement -------------


def _problem(result: Verification) -> str:
    assert not result.ok
    return " ".join(result.problems)


@IN_MODULE_LOOP
async def test_a_cross_chamber_history_verifies_at_both_chambers(settled: Settled) -> None:
    lille_ids = [a["id"] for a in settled.at_lille["history"]]
    assert lille_ids == [a["id"] for a in settled.at_gand["history"]]  # both hold all four
    assert [(a["type"], a["actor"]) for a in settled.at_lille["history"]] == [
        ("Offer", "https://lille.test/actors/alice"),
        ("Accept", "https://gand.test/actors/bob"),
        ("Offer", "https://gand.test/actors/gand"),
        ("Accept", "https://lille.test/actors/lille"),
    ]
    for document in (settled.at_lille, settled.at_gand):
        result = verify_exchange(
            document["history"], settled.actors, expected_state=document["state"]
        )
        assert result.ok, result.problems
        assert result.state == ExchangeState.POSTED
        assert [(s.event, s.state) for s in result.steps] == [
            ("declare", "proposed"),
            ("accept", "settling"),
            ("prepare", "settling"),
            ("commit", "posted"),
        ]
    # `history` is an ordered list in JSON-LD, each activity keeping its own context
    [expanded] = expand({**settled.at_lille, "@context": default_context()})
    [history] = expanded["https://archipel.social/ns#history"]
    assert len(history["@list"]) == 4
    # the chambers' keys are needed too: the members' alone prove only the agreement
    members = [a for a in settled.actors if a["type"] == "Person"]
    without = verify_exchange(settled.at_lille["history"], members)
    assert [s.ok for s in without.steps] == [True, True, False]


@IN_MODULE_LOOP
async def test_altered_minutes_in_the_settlement_do_not_verify(settled: Settled) -> None:
    history = copy.deepcopy(settled.at_gand["history"])
    history[2]["object"]["minutes"] = 1200
    tampered = verify_exchange(history, settled.actors)
    assert tampered.steps[-1].index == 3 and not tampered.steps[-1].ok
    assert "signature" in _problem(tampered).lower()
    # signed again by Gand's chamber itself: the proof holds, the terms do not
    history[2] = await settled.gand.sign_as("gand", history[2])
    resigned = verify_exchange(history, settled.actors)
    assert "minutes 1200 instead of 120" in _problem(resigned)
    assert resigned.steps[-1].event == "prepare"


@IN_MODULE_LOOP
async def test_a_decision_signed_by_the_wrong_chamber_does_not_verify(settled: Settled) -> None:
    history = copy.deepcopy(settled.at_gand["history"])
    decision = history[3]
    # the preparer commits its own settlement: it never decides
    history[3] = await settled.gand.sign_as("gand", {**decision, "actor": settled.gand.actor_uri})
    self_decided = verify_exchange(history, settled.actors)
    assert "decision comes from the chamber of https://lille.test/actors/alice" in _problem(
        self_decided
    )
    # Lille's name on it, Gand's key under it
    history[3] = await settled.gand.sign_as("gand", decision)
    forged = verify_exchange(history, settled.actors)
    assert "not by its actor https://lille.test/actors/lille" in _problem(forged)


@IN_MODULE_LOOP
async def test_a_missing_commit_proves_only_settling(settled: Settled) -> None:
    history = settled.at_lille["history"][:3]
    result = verify_exchange(history, settled.actors)
    assert result.ok and result.state == ExchangeState.SETTLING
    claimed = verify_exchange(history, settled.actors, expected_state="posted")
    assert "says it is posted, but its history proves settling" in _problem(claimed)
    # nor can a decision be about a settlement nobody offered
    skipped = [*history[:2], settled.at_lille["history"][3]]
    assert not verify_exchange(skipped, settled.actors).ok


async def test_a_refused_settlement_verifies_back_to_proposed(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    """Lille extends Gand 1 h only: Gand prepares 2 h, Lille refuses; both prove it."""
    async with two_chambers(archipelago, settings, credit_line=60) as (lille, gand):
        settled = await settle_between(lille, gand)
    assert [a["type"] for a in settled.at_lille["history"]] == ["Offer", "Offer", "Reject"]
    assert [a["type"] for a in settled.at_gand["history"]] == ["Offer", "Accept", "Offer", "Reject"]
    for document in (settled.at_lille, settled.at_gand):
        assert document["state"] == "proposed"
        result = verify_exchange(
            document["history"], settled.actors, expected_state=document["state"]
        )
        assert result.ok, result.problems
        assert [s.event for s in result.steps][-2:] == ["prepare", "abort"]
    # the preparer cannot turn the refusal into a commit
    history = copy.deepcopy(settled.at_gand["history"])
    history[3] = await settled.gand.sign_as(
        "gand",
        {
            **history[3],
            "type": "Accept",
            "actor": settled.gand.actor_uri,
            "result": {**history[3]["result"], "state": "committed"},
        },
    )
    assert not verify_exchange(history, settled.actors).ok
