"""Follows and durable delivery between real chamber processes over HTTP on 127.0.0.1."""

from __future__ import annotations

import time

import httpx
import pytest

from federation_tests.harness import (
    NodeProcess,
    http_get,
    http_request,
    pending_deliveries,
    wait_for,
)

pytestmark = pytest.mark.federation
AS2 = {"Accept": "application/activity+json"}


def collection(url: str) -> list[str]:
    page = http_get(url + "?page=true", headers=AS2)
    page.raise_for_status()
    return list(page.json()["orderedItems"])


def received_notes(node: NodeProcess, token: str) -> list[str]:
    response = http_get(node.url + "/api/v1/inbox", headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    notes = []
    for item in response.json()["items"]:
        obj = item["activity"].get("object")
        if item["type"] == "Create" and isinstance(obj, dict):
            notes.append(obj["content"])
    return notes


def failed_attempts(node: NodeProcess) -> int:
    """The attempts of the delivery still waiting to get through (0: none waits)."""
    rows = node.sql("SELECT MAX(attempts) FROM jobs WHERE kind = 'deliver' AND state = 'pending'")
    return int(rows[0][0] or 0)


def follow(node: NodeProcess, token: str, handle: str, undo: bool = False) -> httpx.Response:
    return http_request(
        "DELETE" if undo else "POST",
        node.url + "/api/v1/follows",
        json={"handle": handle},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


@pytest.fixture
def lille_follows_gand(make_node):  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    gand = make_node("gand")
    lille.cli("member", "add", "marie")
    token = lille.token("marie")
    response = follow(lille, token, f"@gand@127.0.0.1:{gand.port}")
    assert response.status_code == 202, response.text
    assert response.json()["state"] == "pending"
    marie = f"{lille.url}/actors/marie"
    wait_for(
        lambda: marie in collection(f"{gand.url}/actors/gand/followers"),
        what="gand to list marie as a follower",
    )
    wait_for(
        lambda: f"{gand.url}/actors/gand" in collection(f"{marie}/following"),
        what="lille to record gand's Accept",
    )
    return lille, gand, token


def test_follow_accept_publish_undo(lille_follows_gand) -> None:  # type: ignore[no-untyped-def]
    lille, gand, token = lille_follows_gand
    gand.cli("announce", "Assemblée jeudi")
    wait_for(
        lambda: "<p>Assemblée jeudi</p>" in received_notes(lille, token),
        what="the note to reach lille",
    )

    assert follow(lille, token, f"{gand.url}/actors/gand", undo=True).status_code == 200
    wait_for(
        lambda: collection(f"{gand.url}/actors/gand/followers") == [],
        what="gand to drop the follower after Undo",
    )
    gand.cli("announce", "Après le départ")
    # a delivery would be queued with the note: once none is left, it would have arrived
    wait_for(lambda: pending_deliveries(gand) == 0, what="gand's deliveries to end")
    assert "<p>Après le départ</p>" not in received_notes(lille, token)


def test_a_node_that_was_down_receives_after_it_comes_back(lille_follows_gand) -> None:  # type: ignore[no-untyped-def]
    lille, gand, token = lille_follows_gand
    lille.kill()
    gand.cli("announce", "Pendant la panne")
    wait_for(lambda: failed_attempts(gand) >= 2, what="two failed attempts against the dead port")
    lille.start()
    wait_for(
        lambda: "<p>Pendant la panne</p>" in received_notes(lille, token),
        timeout=60,
        what="the note to arrive after the restart",
    )
    assert received_notes(lille, token).count("<p>Pendant la panne</p>") == 1
    # The note came through retries: its delivery failed while lille was down.
    attempts = gand.sql("SELECT MAX(attempts) FROM jobs WHERE kind = 'deliver'")[0][0]
    assert attempts >= 2, attempts


def test_killing_the_sender_mid_burst_loses_nothing(lille_follows_gand) -> None:  # type: ignore[no-untyped-def]
    lille, gand, token = lille_follows_gand
    gand.stop()
    texts = [f"Message {i}" for i in range(15)]
    for text in texts:
        gand.cli("announce", text)
    gand.start()
    time.sleep(0.3)  # deliveries under way
    gand.kill()
    gand.start()
    expected = {f"<p>{t}</p>" for t in texts}
    wait_for(
        lambda: expected <= set(received_notes(lille, token)),
        timeout=60,
        what="every note of the burst",
    )
    notes = received_notes(lille, token)
    assert len([n for n in notes if n in expected]) == len(expected)  # none twice
