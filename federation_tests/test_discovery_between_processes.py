"""Two real chamber processes on loopback find each other the way fediverse servers do."""

import pytest

from federation_tests.harness import http_get

pytestmark = pytest.mark.federation


def test_a_served_chamber_is_discoverable_over_http(make_node) -> None:  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    gand = make_node("gand")
    lille.cli("member", "add", "marie", "--display-name", "Marie")
    for node in (lille, gand):
        finger = http_get(
            node.url + "/.well-known/webfinger",
            params={"resource": f"acct:{node.name}@127.0.0.1:{node.port}"},
        )
        assert finger.status_code == 200
        self_link = next(link for link in finger.json()["links"] if link["rel"] == "self")
        actor = http_get(self_link["href"], headers={"Accept": "application/activity+json"})
        assert actor.status_code == 200
        assert actor.json()["id"] == self_link["href"]
        assert actor.json()["type"] == "Group"
    marie = http_get(
        lille.url + "/.well-known/webfinger",
        params={"resource": f"acct:marie@127.0.0.1:{lille.port}"},
    ).json()
    assert marie["subject"] == f"acct:marie@127.0.0.1:{lille.port}"
    # Each chamber only knows its own accounts.
    assert (
        http_get(
            gand.url + "/.well-known/webfinger",
            params={"resource": f"acct:marie@127.0.0.1:{lille.port}"},
        ).status_code
        == 404
    )


def test_a_node_survives_a_kill_and_keeps_its_keys(make_node) -> None:  # type: ignore[no-untyped-def]
    lille = make_node("lille")
    accept = {"Accept": "application/activity+json"}
    before = http_get(lille.url + "/", headers=accept).json()["publicKey"]["publicKeyPem"]
    lille.kill()
    lille.start()
    after = http_get(lille.url + "/", headers=accept).json()["publicKey"]["publicKeyPem"]
    assert before == after
    assert http_get(lille.url + "/nodeinfo/2.1").json()["software"]["name"] == "archipel"
