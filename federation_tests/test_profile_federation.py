"""A member's profile between two real chambers: Gand's member follows Lille's; Lille's member
changes her display name; Gand's pages name her anew after one delivery."""

from __future__ import annotations

from typing import Any

import pytest

from federation_tests.harness import http_get, http_post, http_request, wait_for
from federation_tests.test_bricks_federation import auth, federated

pytestmark = pytest.mark.federation
AS2 = {"Accept": "application/activity+json"}
HTML = {"Accept": "text/html"}


def test_a_new_display_name_reaches_a_follower_node_and_its_pages(make_node) -> None:  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    gand = make_node("gand")
    lille.cli("member", "add", "marie", "--display-name", "Marie")
    gand.cli("member", "add", "piet")
    marie, piet = lille.token("marie"), gand.token("piet")
    marie_uri = f"{lille.url}/actors/marie"

    followed = http_post(
        gand.url + "/api/v1/follows",
        json={"handle": f"@marie@127.0.0.1:{lille.port}"},
        headers=auth(piet),
        timeout=30,
    )
    assert followed.status_code == 202, followed.text
    wait_for(
        lambda: (
            f"{gand.url}/actors/piet"
            in http_get(f"{marie_uri}/followers?page=true", headers=AS2).json()["orderedItems"]
        ),
        what="lille to accept piet's follow",
    )
    created = http_post(
        lille.url + "/api/v1/bricks",
        json={
            "title": "Le jardin partagé",
            "category": "methode",
            "summary": "Trois saisons.",
            "body": "Des voisins.",
        },
        headers=auth(marie),
    )
    assert created.status_code == 201, created.text
    brick_id = created.json()["id"]
    copy: dict[str, Any] = wait_for(lambda: federated(gand, brick_id), what="the brick on gand")
    page_url = f"{gand.url}/bricks/{copy['key']}"
    before = http_get(page_url, headers=HTML)
    assert before.status_code == 200
    handle = f"@marie@127.0.0.1:{lille.port}"
    assert f'>Marie</a> <span class="handle">{handle}</span>' in before.text  # people.py
    assert "Marie Curie-Sklodowska" not in before.text

    renamed = http_request(
        "PATCH",
        lille.url + "/api/v1/members/me",
        json={"display_name": "Marie Curie-Sklodowska"},
        headers=auth(marie),
    )
    assert renamed.status_code == 200, renamed.text
    wait_for(
        lambda: "Marie Curie-Sklodowska" in http_get(page_url, headers=HTML).text,
        what="gand's brick page to show the new name",
    )
    label = f"Marie Curie-Sklodowska (127.0.0.1:{lille.port})"
    assert [a["name"] for a in federated(gand, brick_id)["authors"]] == [label]  # type: ignore[index]
    assert "Marie Curie-Sklodowska" in http_get(f"{gand.url}/bricks", headers=HTML).text
    # One delivery cycle: the actor's Update went out once, to gand, at the first attempt.
    deliveries = lille.sql(
        "SELECT jobs.state, jobs.attempts FROM jobs JOIN activities"
        " ON jobs.activity_pk = activities.id WHERE jobs.kind = 'deliver'"
        " AND activities.activity_type = 'Update' AND activities.object_id = ?",
        marie_uri,
    )
    assert deliveries == [("done", 1)], deliveries
