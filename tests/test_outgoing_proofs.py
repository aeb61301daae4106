"""What we send carries a Data Integrity proof that verifies from public documents only."""

import httpx

from node.activitypub import multikey
from node.activitypub.actors import get_local_actor
from node.activitypub.notes import publish_note
from node.activitypub.proofs import verify_proof
from node.db import session_scope


async def test_published_activity_verifies_with_the_public_actor_document(
    app,
    client: httpx.AsyncClient,  # type: ignore[no-untyped-def]
) -> None:
    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        actor = await get_local_actor(session, "lille")
        assert actor is not None
        stored = await publish_note(node.federation, session, actor, "Assemblée jeudi")
    activity = stored.document
    assert activity["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert activity["proof"]["verificationMethod"] == "https://lille.test/actors/lille#ed25519-key"

    # A third party: only the actor document, fetched over HTTP.
    public = (
        await client.get("/actors/lille", headers={"Accept": "application/activity+json"})
    ).json()
    keys = {
        m["id"]: multikey.public_key_from_multibase(m["publicKeyMultibase"])
        for m in public["assertionMethod"]
    }
    result = verify_proof(activity, keys.get)
    assert result.ok, result.message

    tampered = {**activity, "object": {**activity["object"], "content": "<p>Autre chose</p>"}}
    assert verify_proof(tampered, keys.get).reason == "invalidSignature"

    # The public activity is served at its id, proof included.
    path = activity["id"].removeprefix("https://lille.test")
    served = await client.get(path, headers={"Accept": "application/activity+json"})
    assert served.status_code == 200
    assert served.json()["proof"] == activity["proof"]
