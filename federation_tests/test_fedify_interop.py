"""Interop with a real third-party ActivityPub server: the Fedify 2.3.6 peer (fedify_peer/).

Each test starts one chamber (``archipel serve``) and gets the module's Fedify peer on
127.0.0.1 as new (it forgets what earlier tests did), and checks what each side actually
recorded: the peer's ``/_control/`` API says how Fedify (and its own explicit checks) judged
our signatures; our collections and API say what we did.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from federation_tests.fedify import (  # noqa: F401  (pytest fixtures)
    FedifyPeer,
    fedify_node_binary_fixture,
    fedify_peer_fixture,
    fedify_peer_process_fixture,
    wait_for,
)
from federation_tests.harness import NodeProcess, http_get, http_post

pytestmark = pytest.mark.federation
AS2 = {"Accept": "application/activity+json"}
RFC9421 = "rfc9421"
CAVAGE = "draft-cavage-http-signatures-12"


def collection(url: str) -> list[str]:
    page = http_get(url + "?page=true", headers=AS2, timeout=10)
    page.raise_for_status()
    return list(page.json()["orderedItems"])


def inbox_items(node: NodeProcess, token: str) -> list[dict[str, Any]]:
    response = http_get(
        node.url + "/api/v1/inbox", headers={"Authorization": f"Bearer {token}"}, timeout=10
    )
    response.raise_for_status()
    return list(response.json()["items"])


def received(peer: FedifyPeer, type_: str, actor: str) -> list[dict[str, Any]]:
    """Deliveries of ``type_`` by ``actor`` that the peer has finished judging (a record is
    listed as soon as the request arrives, and completed when Fedify has answered)."""
    return [
        r
        for r in peer.get("received", type=type_)
        if r["actor"] == actor and r["fedify"]["status"] is not None
    ]


def sent_by_kind(peer: FedifyPeer, kind: str) -> list[dict[str, Any]]:
    return [s for s in peer.get("sent") if s["kind"].startswith(kind)]


def first_attempt_ok(record: dict[str, Any], scheme: str) -> None:
    """The first POST used ``scheme`` and got a 2xx: no double-knock fallback happened."""
    first = record["attempts"][0]
    assert first["scheme"] == scheme, record["attempts"]
    assert first["status"] is not None and 200 <= first["status"] < 300, record["attempts"]
    assert len(record["attempts"]) == 1, record["attempts"]
    assert record["ok"] is True, record


# --- 1. The Fedify actor follows our chamber -----------------------------------------------


@pytest.fixture
def fedify_follows_chamber(make_node, fedify_peer: FedifyPeer):  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    chamber = f"{lille.url}/actors/lille"
    alice = fedify_peer.actor("alice")["id"]
    status, sent = fedify_peer.post("follow", {"target": chamber})
    assert status == 200 and sent["ok"], sent
    first_attempt_ok(sent, RFC9421)  # our inbox took Fedify's RFC 9421 signature at once
    wait_for(
        lambda: [f for f in fedify_peer.get("following") if f["state"] == "accepted"],
        what="Fedify to record our Accept",
    )
    return lille, chamber, alice, sent


def test_fedify_follows_our_chamber_and_gets_accepted(fedify_follows_chamber, fedify_peer) -> None:  # type: ignore[no-untyped-def]
    lille, chamber, alice, follow = fedify_follows_chamber
    (following,) = fedify_peer.get("following")
    assert following["id"] == chamber and following["state"] == "accepted", following
    assert following["follow_id"] == follow["follow_id"]

    (accept,) = wait_for(lambda: received(fedify_peer, "Accept", chamber), what="the Accept")
    assert accept["fedify"]["verified"] is True and accept["fedify"]["listener"] == "Accept"
    assert accept["http_signature"]["verified"] is True, accept["http_signature"]
    assert accept["note"].endswith("matched by Follow id"), accept["note"]

    assert alice in collection(f"{chamber}/followers")


# --- 2. Our chamber publishes to its Fedify follower ---------------------------------------


def test_our_create_reaches_fedify_with_valid_signature_and_proof(
    fedify_follows_chamber, fedify_peer
) -> None:  # type: ignore[no-untyped-def]
    lille, chamber, alice, _ = fedify_follows_chamber
    lille.cli("announce", "Assemblée jeudi à la Fedify")

    (create,) = wait_for(
        lambda: received(fedify_peer, "Create", chamber),
        what="our Create to reach Fedify",
    )
    assert create["fedify"]["verified"] is True and create["fedify"]["listener"] == "Create", (
        create["fedify"]
    )
    assert create["raw"]["object"]["content"] == "<p>Assemblée jeudi à la Fedify</p>"

    http_sig = create["http_signature"]
    assert http_sig["present"] and http_sig["verified"] is True, http_sig
    assert http_sig["scheme"] == RFC9421, http_sig
    assert http_sig["owner"] == chamber, http_sig

    actor_doc = http_get(chamber, headers=AS2, timeout=10).json()
    methods = actor_doc.get("assertionMethod") or []
    methods = methods if isinstance(methods, list) else [methods]
    method_ids = {m["id"] if isinstance(m, dict) else m for m in methods}

    proof = create["proof"]
    assert proof["present"] is True, f"our Create carries no Data Integrity proof: {create['raw']}"
    assert proof["error"] is None and proof["verified"] is True, proof
    (one,) = proof["proofs"]
    assert one["cryptosuite"] == "eddsa-jcs-2022", one
    assert one["proof_purpose"] == "assertionMethod", one
    assert one["verified"] is True and one["controller"] == chamber, one
    assert one["verification_method"] in method_ids, (one, methods)


# --- 3. Our member follows the Fedify actor, which then writes to her ----------------------


@pytest.fixture
def marie_follows_fedify(make_node, fedify_peer: FedifyPeer):  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    lille.cli("member", "add", "marie")
    token = lille.token("marie")
    alice = fedify_peer.actor("alice")
    marie = f"{lille.url}/actors/marie"
    response = http_post(
        lille.url + "/api/v1/follows",
        json={"handle": "@" + alice["handle"]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
    assert response.status_code == 202, response.text
    assert response.json() == {"target": alice["id"], "state": "pending"}
    wait_for(
        lambda: [f for f in fedify_peer.get("followers") if f["id"] == marie],
        what="Fedify to record marie as a follower",
    )
    wait_for(
        lambda: alice["id"] in collection(f"{marie}/following"),
        what="lille to record Fedify's Accept",
    )
    # The peer logs its send once our 202 is back, possibly after we list the follow.
    (accept,) = wait_for(lambda: sent_by_kind(fedify_peer, "Accept"), what="the Accept sent")
    first_attempt_ok(accept, RFC9421)
    (follow,) = wait_for(lambda: received(fedify_peer, "Follow", marie), what="the Follow")
    assert follow["http_signature"]["verified"] is True, follow["http_signature"]
    assert follow["proof"]["verified"] is True, follow["proof"]
    return lille, token, marie, alice


@pytest.mark.parametrize("spec", [RFC9421, CAVAGE])
def test_fedify_create_to_our_member_is_accepted(
    marie_follows_fedify, fedify_peer, spec: str
) -> None:  # type: ignore[no-untyped-def]
    lille, token, marie, alice = marie_follows_fedify
    content = f"Bonjour de Fedify ({spec})"
    status, sent = fedify_peer.post("send", {"to": marie, "content": content, "specVersion": spec})
    assert status == 200, sent
    assert sent["spec_requested"] == spec, sent
    first_attempt_ok(sent, spec)

    items = wait_for(
        lambda: [i for i in inbox_items(lille, token) if i["id"] == sent["activity_id"]],
        what="the Create in our inbox API",
    )
    (item,) = items
    assert item["type"] == "Create" and item["actor"] == alice["id"], item
    assert item["object"] == sent["object_id"], item
    assert item["activity"]["object"]["content"] == content, item


# --- 4. Deliveries without a valid signature are refused -----------------------------------


def test_unsigned_or_tampered_delivery_is_refused(marie_follows_fedify, fedify_peer) -> None:  # type: ignore[no-untyped-def]
    """The control API only sends signed activities, so we replay what Fedify put on the
    wire, without its HTTP signature: forged content (proof and LD signature then broken),
    and a bare unsigned Create."""
    lille, token, marie, alice = marie_follows_fedify
    status, sent = fedify_peer.post("send", {"to": marie, "content": "authentique"})
    assert status == 200 and sent["ok"], sent
    inbox = sent["attempts"][0]["url"]

    tampered = json.loads(json.dumps(sent["json"]))
    tampered["id"] = f"{alice['id']}/activities/{uuid.uuid4()}"
    tampered["object"]["content"] = "forgé"
    bare = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{alice['id']}/activities/{uuid.uuid4()}",
        "type": "Create",
        "actor": alice["id"],
        "to": [marie],
        "object": {
            "id": f"{alice['id']}/notes/{uuid.uuid4()}",
            "type": "Note",
            "attributedTo": alice["id"],
            "to": [marie],
            "content": "non signé",
        },
    }
    for forged in (tampered, bare):
        response = http_post(
            inbox,
            content=json.dumps(forged),
            headers={"Content-Type": "application/activity+json"},
            timeout=10,
        )
        assert response.status_code == 401, (response.status_code, response.text)

    ids = {i["id"] for i in inbox_items(lille, token)}
    assert sent["activity_id"] in ids
    assert tampered["id"] not in ids and bare["id"] not in ids
