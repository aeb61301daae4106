"""Bricks between three real chambers: Gand's chamber follows Lille's; Roubaix follows nobody.

A Lille member publishes a brick with every field; it reaches Gand's catalogue through the
chamber's Announce; an edit and a delete follow it; a Gand member's review (a reply with a
rating) reaches Lille's brick page and the author's profile; Roubaix shows nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from federation_tests import harness
from federation_tests.harness import NodeProcess, http_get, http_post, http_request

pytestmark = pytest.mark.federation
AS2 = {"Accept": "application/activity+json"}


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something true (see ``harness.wait_for``)."""
    return harness.wait_for(condition, timeout, what)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def federated(node: NodeProcess, brick_id: str) -> dict[str, Any] | None:
    """The node's full copy of the brick ``brick_id``, or None."""
    listing = http_get(node.url + "/api/v1/bricks", params={"scope": "federated"})
    listing.raise_for_status()
    for item in listing.json()["items"]:
        if item["id"] == brick_id:
            detail = http_get(f"{node.url}/api/v1/bricks/{item['key']}")
            if detail.status_code == 404:
                return None  # deleted between the two requests
            detail.raise_for_status()
            return dict(detail.json())
    return None


def test_bricks_travel_between_chambers(make_node) -> None:  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    gand = make_node("gand")
    roubaix = make_node("roubaix")
    lille.cli("member", "add", "marie", "--display-name", "Marie")
    gand.cli("member", "add", "piet")
    marie, piet = lille.token("marie"), gand.token("piet")

    gand.cli("follow", f"@lille@127.0.0.1:{lille.port}")
    wait_for(
        lambda: (
            f"{gand.url}/actors/gand"
            in http_get(f"{lille.url}/actors/lille/followers?page=true", headers=AS2).json()[
                "orderedItems"
            ]
        ),
        what="lille to accept gand's follow",
    )

    fields = {
        "title": "Le jardin partagé",
        "category": "methode",
        "summary": "Comment ouvrir un jardin partagé en trois saisons.",
        "body": "# Étapes\n\n1. Un terrain\n2. Des voisins\n\n**La charte** d'abord.",
        "tags": "jardin, quartier",
        "links": "https://example.org/jardins",
    }
    created = http_post(
        lille.url + "/api/v1/bricks",
        data=fields,
        files={"files": ("plan.pdf", b"%PDF-1.4 plan du jardin", "application/pdf")},
        headers=auth(marie),
    )
    assert created.status_code == 201, created.text
    brick_id, lille_key = created.json()["id"], created.json()["key"]

    copy = wait_for(lambda: federated(gand, brick_id), what="the brick to reach gand")
    assert copy["title"] == fields["title"] and copy["summary"] == fields["summary"]
    assert copy["category"] == "methode" and copy["tags"] == ["jardin", "quartier"]
    assert copy["local"] is False and copy["url"] == brick_id
    assert "<strong>La charte</strong>" in copy["content"] and "<ol>" in copy["content"]
    assert copy["links"] == [
        {"href": "https://example.org/jardins", "name": "https://example.org/jardins"}
    ]
    assert copy["files"][0]["name"] == "plan.pdf"
    assert copy["files"][0]["mediaType"] == "application/pdf"
    assert http_get(copy["files"][0]["href"]).content == b"%PDF-1.4 plan du jardin"
    assert copy["licence"] == "https://creativecommons.org/licenses/by-sa/4.0/"
    assert copy["authors"][0]["id"] == f"{lille.url}/actors/marie"
    assert copy["version"] == 1
    page = http_get(f"{gand.url}/bricks", headers={"Accept": "text/html"})
    assert fields["title"] in page.text

    edited = http_request(
        "PATCH",
        f"{lille.url}/api/v1/bricks/{lille_key}",
        json={"title": "Le jardin des voisins"},
        headers=auth(marie),
    )
    assert edited.status_code == 200, edited.text
    wait_for(
        lambda: (federated(gand, brick_id) or {}).get("title") == "Le jardin des voisins",
        what="the edit to reach gand",
    )
    assert federated(gand, brick_id)["version"] == 2  # type: ignore[index]

    gand_key = federated(gand, brick_id)["key"]  # type: ignore[index]
    review = http_post(
        f"{gand.url}/api/v1/bricks/{gand_key}/reviews",
        json={"rating": 4, "comment": "Utilisé au Rabot, très clair."},
        headers=auth(piet),
        timeout=30,
    )
    assert review.status_code == 201, review.text
    wait_for(
        lambda: (
            "Utilisé au Rabot, très clair."
            in http_get(f"{lille.url}/bricks/{lille_key}", headers={"Accept": "text/html"}).text
        ),
        what="the reply on lille's brick page",
    )
    profile = http_get(f"{lille.url}/actors/marie", headers=AS2).json()
    assert profile["ratingAverage"] == 4.0 and profile["ratingCount"] == 1

    deleted = http_request("DELETE", f"{lille.url}/api/v1/bricks/{lille_key}", headers=auth(marie))
    assert deleted.status_code == 204
    wait_for(lambda: federated(gand, brick_id) is None, what="the delete to reach gand")

    assert http_get(roubaix.url + "/api/v1/bricks").json()["items"] == []
