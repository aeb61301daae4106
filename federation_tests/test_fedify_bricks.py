"""The Fedify interop peer receives a brick as an Article it can read (name, summary,
content, url, tags), parsed with Fedify's own vocabulary (``Article.fromJsonLd``)."""

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
from federation_tests.harness import http_get, http_post, http_request

pytestmark = pytest.mark.federation


def test_fedify_reads_a_brick_as_an_article(
    make_node, fedify_peer: FedifyPeer, fedify_node_binary: str
) -> None:  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    lille.cli("member", "add", "marie")
    token = lille.token("marie")
    chamber = f"{lille.url}/actors/lille"
    status, sent = fedify_peer.post("follow", {"target": chamber})
    assert status == 200 and sent["ok"], sent
    wait_for(
        lambda: [f for f in fedify_peer.get("following") if f["state"] == "accepted"],
        what="Fedify to record our Accept",
    )
    brick = {
        "title": "Le jardin partagé",
        "category": "methode",
        "summary": "Comment ouvrir un jardin partagé en trois saisons.",
        "body": "Des **voisins** et une charte.",
        "tags": ["jardin", "quartier"],
    }
    created = http_post(
        lille.url + "/api/v1/bricks", json=brick, headers={"Authorization": f"Bearer {token}"}
    )
    assert created.status_code == 201, created.text
    brick_id = created.json()["id"]

    def announced() -> list[dict[str, Any]]:
        return [
            r
            for r in fedify_peer.get("received", type="Announce")
            if (r.get("raw") or {}).get("object", {}).get("id") == brick_id
            and r["fedify"]["status"] is not None
        ]

    (record,) = wait_for(announced, what="the chamber's Announce of the brick")
    assert record["fedify"]["verified"] is True, record["fedify"]
    assert record["fedify"]["listener"] == "Announce"
    article = record["raw"]["object"]
    assert article["type"] == "Article"
    read = read_with_fedify(
        fedify_node_binary,
        "fedify_read_article.mjs",
        {"@context": record["raw"]["@context"], **article},
    )
    assert read["id"] == brick_id and read["url"] == brick_id
    assert read["name"] == brick["title"]
    assert read["summary"] == brick["summary"]
    assert read["content"].strip() == "<p>Des <strong>voisins</strong> et une charte.</p>"
    assert read["tags"] == [
        {"type": "Hashtag", "name": "#jardin", "href": f"{lille.url}/tags/jardin"},
        {"type": "Hashtag", "name": "#quartier", "href": f"{lille.url}/tags/quartier"},
    ]


def test_a_peer_following_only_the_chamber_sees_the_authors_edit_and_delete(
    make_node, fedify_peer: FedifyPeer
) -> None:  # type: ignore[no-untyped-def]
    """Issue 16: the chamber boosts the brick itself; its edit and deletion come from the author
    (as Mastodon handles them), never as ``Announce(Update)``/``Announce(Delete)``, and the
    peer's copy follows them."""
    lille = make_node("lille")
    lille.cli("member", "add", "marie")
    token = lille.token("marie")
    marie = f"{lille.url}/actors/marie"
    status, sent = fedify_peer.post("follow", {"target": f"{lille.url}/actors/lille"})
    assert status == 200 and sent["ok"], sent
    wait_for(
        lambda: [f for f in fedify_peer.get("following") if f["state"] == "accepted"],
        what="Fedify to record our Accept",
    )
    assert [f["id"] for f in fedify_peer.get("following")] == [f"{lille.url}/actors/lille"]
    headers = {"Authorization": f"Bearer {token}"}
    created = http_post(
        lille.url + "/api/v1/bricks",
        json={
            "title": "Le jardin partagé",
            "category": "methode",
            "summary": "Trois saisons.",
            "body": "Des voisins.",
        },
        headers=headers,
    )
    assert created.status_code == 201, created.text
    brick_id, key = created.json()["id"], created.json()["key"]

    def held() -> dict[str, Any] | None:
        response = http_get(f"{fedify_peer.url}/_control/object", params={"id": brick_id})
        return dict(response.json()) if response.status_code == 200 else None

    first = wait_for(held, what="the peer to hold the brick")
    assert first["via"]["type"] == "Announce" and first["owners"] == [marie]
    assert first["object"]["name"] == "Le jardin partagé"

    edited = http_request(
        "PATCH",
        f"{lille.url}/api/v1/bricks/{key}",
        json={"title": "Le jardin des voisins"},
        headers=headers,
    )
    assert edited.status_code == 200, edited.text
    updated = wait_for(lambda: (held() or {}).get("updates"), what="the edit to reach the peer")
    assert [u["actor"] for u in updated] == [marie]
    assert held()["object"]["name"] == "Le jardin des voisins"  # type: ignore[index]

    assert (
        http_request("DELETE", f"{lille.url}/api/v1/bricks/{key}", headers=headers).status_code
        == 204
    )
    gone = wait_for(lambda: (held() or {}).get("deleted"), what="the delete to reach the peer")
    assert gone is True and held()["deleted_by"]["actor"] == marie  # type: ignore[index]
    assert held()["object"] is None  # type: ignore[index]

    def about_the_brick(record: dict[str, Any]) -> bool:
        obj = (record.get("raw") or {}).get("object")
        inner = obj.get("object") if isinstance(obj, dict) else None
        return brick_id in (obj, (obj or {}).get("id") if isinstance(obj, dict) else None) or (
            brick_id in (inner, (inner or {}).get("id") if isinstance(inner, dict) else None)
        )

    wait_for(
        lambda: any(r["type"] == "Undo" for r in fedify_peer.get("received")),
        what="the chamber's Undo(Announce) after the delete",
    )
    received = [r for r in fedify_peer.get("received") if about_the_brick(r)]
    assert all(r["fedify"]["verified"] is True for r in received), received
    kinds = [(r["type"], r["actor"], r["object_type"]) for r in received]
    chamber = f"{lille.url}/actors/lille"
    # The delete and the Undo(Announce) are two deliveries: either may arrive first.
    assert kinds[:2] == [("Announce", chamber, "Article"), ("Update", marie, "Article")], kinds
    assert sorted(kinds[2:]) == [("Delete", marie, "Tombstone"), ("Undo", chamber, "Announce")]
