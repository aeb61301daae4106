"""The Fedify interop peer receives an offer (a FEP-0837 Proposal that is also a Note) and
reads it with Fedify's own vocabulary (its ``Proposal`` class): its name, its summary ("Je
propose : ..."), its content with the description and the hashtags, its author."""

from __future__ import annotations

from typing import Any

import pytest

from federation_tests.fedify import (  # noqa: F401  (pytest fixtures)
    FedifyPeer,
    fedify_node_binary_fixture,
    fedify_peer_fixture,
    fedify_peer_process_fixture,
    read_with_fedify,
    wait_for,
)
from federation_tests.harness import http_post

pytestmark = pytest.mark.federation


def test_fedify_reads_an_offer_as_a_proposal(
    make_node, fedify_peer: FedifyPeer, fedify_node_binary: str
) -> None:  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    lille.cli("member", "add", "marie")
    token = lille.token("marie")
    marie = f"{lille.url}/actors/marie"
    status, sent = fedify_peer.post("follow", {"target": marie})
    assert status == 200 and sent["ok"], sent
    wait_for(
        lambda: [f for f in fedify_peer.get("following") if f["state"] == "accepted"],
        what="Fedify to record our Accept",
    )
    offer = {
        "kind": "offer",
        "title": "Traduction NL-FR",
        "description": "Je traduis vos courriers du néerlandais vers le français.",
        "tags": ["traduction"],
        "minutes": 90,
    }
    created = http_post(
        lille.url + "/api/v1/offers", json=offer, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    offer_id = created.json()["id"]

    def received() -> list[dict[str, Any]]:
        return [
            r
            for r in fedify_peer.get("received", type="Create")
            if (r.get("raw") or {}).get("object", {}).get("id") == offer_id
            and r["fedify"]["status"] is not None
        ]

    (record,) = wait_for(received, what="marie's Create of the offer")
    assert record["fedify"]["verified"] is True, record["fedify"]
    assert record["fedify"]["listener"] == "Create"
    proposal = record["raw"]["object"]
    assert proposal["type"] == ["Note", "Proposal"] and proposal["purpose"] == "offer"
    read = read_with_fedify(
        fedify_node_binary,
        "fedify_read_object.mjs",
        {"@context": record["raw"]["@context"], **proposal},
    )
    # Fedify knows FEP-0837: it reads the object as its own Proposal class (software that
    # does not takes the Note), with the AS2 fields any reader shows.
    assert read["class"] == "Proposal"
    assert read["id"] == offer_id and read["url"] == offer_id and read["attributedTo"] == marie
    assert read["name"] == "Traduction NL-FR"
    assert read["summary"] == "Je propose : Traduction NL-FR · 1 h 30"  # the chamber speaks French
    assert "Je traduis vos courriers du néerlandais vers le français." in read["content"]
    assert read["tags"] == [
        {"type": "Hashtag", "name": "#traduction", "href": f"{lille.url}/offers?tag=traduction"}
    ]
