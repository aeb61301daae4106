"""Forwarded activities: accepted when signed by their own actor's object proof, not otherwise."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from starlette.applications import Starlette

from node.activitypub import multikey
from node.activitypub.models import StoredActivity
from node.activitypub.proofs import sign_eddsa_jcs_2022, sign_rsa_signature_2017
from node.db import utcnow
from tests.activitypub._keys import OTHER_KEY
from tests.activitypub._remote import (
    BOB,
    CAROL,
    LILLE,
    FakeRemote,
    activity_body,
    actor_document,
    count,
    signed_post,
)

CAROL_ED25519 = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


@pytest.fixture
def remote() -> FakeRemote:
    fake = FakeRemote()
    fake.add(actor_document(BOB))
    carol = actor_document(CAROL, OTHER_KEY)
    carol["assertionMethod"] = [
        {
            "id": f"{CAROL}#ed25519-key",
            "type": "Multikey",
            "controller": CAROL,
            "publicKeyMultibase": multikey.public_key_to_multibase(CAROL_ED25519.public_key()),
        }
    ]
    fake.add(carol)
    return fake


def carols_create() -> dict:  # type: ignore[type-arg]
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{CAROL}/activities/1",
        "type": "Create",
        "actor": CAROL,
        "to": [LILLE],
        "object": {
            "id": f"{CAROL}/notes/1",
            "type": "Note",
            "attributedTo": CAROL,
            "content": "<p>Bonjour Lille</p>",
            "to": [LILLE],
        },
    }


async def test_forwarded_with_the_actors_data_integrity_proof_is_accepted(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    signed = sign_eddsa_jcs_2022(
        carols_create(), CAROL_ED25519, f"{CAROL}#ed25519-key", created=utcnow()
    )
    response = await signed_post(client, activity_body(signed))  # HTTP-signed by bob
    assert response.status_code == 202, response.text
    assert await count(app, StoredActivity, StoredActivity.actor_uri == CAROL) == 1


async def test_forwarded_with_an_rsa_signature_2017_is_accepted(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    signed = sign_rsa_signature_2017(
        carols_create(), OTHER_KEY, f"{CAROL}#main-key", created=utcnow() - timedelta(minutes=1)
    )
    response = await signed_post(client, activity_body(signed))
    assert response.status_code == 202, response.text
    assert response.json()["reason"] == "accepted"
    assert await count(app, StoredActivity, StoredActivity.actor_uri == CAROL) == 1


async def test_forwarded_with_a_tampered_proof_is_refused(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    signed = sign_eddsa_jcs_2022(
        carols_create(), CAROL_ED25519, f"{CAROL}#ed25519-key", created=utcnow()
    )
    signed["object"]["content"] = "<p>Autre chose</p>"
    response = await signed_post(client, activity_body(signed))
    assert response.status_code == 403
    assert response.json()["reason"] == "actorMismatch"
    assert await count(app, StoredActivity) == 0


async def test_forwarded_with_a_proof_by_someone_else_is_refused(
    app: Starlette, client: httpx.AsyncClient, remote: FakeRemote
) -> None:
    """Bob signs carol's activity with his own key: still not carol's word."""
    bob_ed = ed25519.Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
    signed = sign_eddsa_jcs_2022(carols_create(), bob_ed, f"{BOB}#ed25519-key", created=utcnow())
    response = await signed_post(client, activity_body(signed))
    assert response.status_code == 403
    assert await count(app, StoredActivity) == 0
