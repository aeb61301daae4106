import socket

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from node.activitypub import multikey
from node.activitypub.actors import get_local_actor
from node.activitypub.jsonld import expand
from node.activitypub.keys import load_rsa_public_pem, unseal_ed25519, unseal_rsa
from tests.test_discovery import add_member

AS2 = "https://www.w3.org/ns/activitystreams#"
SEC = "https://w3id.org/security#"
AS2_ACCEPTS = [
    "application/activity+json",
    'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    "application/ld+json",
    'application/activity+json, application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
]
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened while expanding a document")

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("accept", AS2_ACCEPTS)
async def test_root_with_as2_accept_is_the_chamber_actor(
    client: httpx.AsyncClient, accept: str
) -> None:
    response = await client.get("/", headers={"Accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/activity+json")
    assert "Accept" in response.headers["vary"]
    actor = response.json()
    assert actor["id"] == "https://lille.test/actors/lille"
    assert actor["type"] == "Group"
    assert actor["name"] == "Chambre des communs de Lille"


async def test_root_with_browser_accept_is_the_home_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Chambre des communs de Lille</h1>" in response.text
    assert "@lille@lille.test" in response.text


async def test_no_accept_header_gets_html(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Accept": ""})
    assert response.headers["content-type"].startswith("text/html")


async def test_member_actor_document(app, client, settings) -> None:  # type: ignore[no-untyped-def]
    await add_member(app, settings, "marie")
    response = await client.get("/actors/marie", headers={"Accept": "application/activity+json"})
    assert response.status_code == 200
    actor = response.json()
    assert actor["type"] == "Person"
    assert actor["preferredUsername"] == "marie"
    assert actor["inbox"] == "https://lille.test/actors/marie/inbox"
    assert actor["endpoints"]["sharedInbox"] == "https://lille.test/inbox"
    assert actor["url"] == "https://lille.test/@marie"
    assert actor["publicKey"]["id"] == "https://lille.test/actors/marie#main-key"
    assert actor["publicKey"]["owner"] == actor["id"]
    method = actor["assertionMethod"][0]
    assert method["type"] == "Multikey" and method["controller"] == actor["id"]

    node = app.state.node
    async with node.sessionmaker() as session:
        stored = await get_local_actor(session, "marie")
    assert stored is not None
    # The published keys are the public halves of the stored private keys.
    rsa_private = unseal_rsa(stored.rsa_private_sealed, node.box)
    assert rsa_private.key_size == 2048
    published_rsa = load_rsa_public_pem(actor["publicKey"]["publicKeyPem"])
    assert published_rsa.public_numbers() == rsa_private.public_key().public_numbers()
    ed_private = unseal_ed25519(stored.ed25519_private_sealed, node.box)
    published_ed = multikey.public_key_from_multibase(method["publicKeyMultibase"])
    assert isinstance(published_ed, ed25519.Ed25519PublicKey)
    assert published_ed.public_bytes_raw() == ed_private.public_key().public_bytes_raw()
    # Nothing private is served.
    assert "PRIVATE" not in response.text and "sealed" not in response.text


async def test_actor_documents_expand_offline(app, client, settings, no_network) -> None:  # type: ignore[no-untyped-def]
    await add_member(app, settings, "marie")
    for path in ("/actors/marie", "/actors/lille"):
        actor = (await client.get(path, headers={"Accept": "application/activity+json"})).json()
        [expanded] = expand(actor)
        assert expanded["@id"] == actor["id"]
        assert expanded["http://www.w3.org/ns/ldp#inbox"][0]["@id"] == actor["inbox"]
        assert expanded[SEC + "publicKey"][0][SEC + "publicKeyPem"][0]["@value"].startswith(
            "-----BEGIN PUBLIC KEY-----"
        )
        assert expanded[SEC + "assertionMethod"][0]["@type"] == [SEC + "Multikey"]
        assert AS2 + "manuallyApprovesFollowers" in expanded


async def test_actor_url_in_a_browser_redirects_to_the_profile(app, client, settings) -> None:  # type: ignore[no-untyped-def]
    await add_member(app, settings, "marie")
    response = await client.get("/actors/marie", headers={"Accept": BROWSER_ACCEPT})
    assert response.status_code == 303
    assert response.headers["location"] == "https://lille.test/@marie"
    page = await client.get("/@marie", headers={"Accept": BROWSER_ACCEPT})
    assert page.status_code == 200
    assert "<h1>Marie</h1>" in page.text
    assert 'type="application/activity+json" href="https://lille.test/actors/marie"' in page.text


async def test_profile_url_negotiates_to_the_actor(app, client, settings) -> None:  # type: ignore[no-untyped-def]
    await add_member(app, settings, "marie")
    response = await client.get("/@marie", headers={"Accept": "application/activity+json"})
    assert response.json()["id"] == "https://lille.test/actors/marie"


async def test_unknown_actor_is_404_in_json_and_html(client: httpx.AsyncClient) -> None:
    as_json = await client.get("/actors/nobody", headers={"Accept": "application/activity+json"})
    assert as_json.status_code == 404
    assert as_json.json()["error"] == "no actor named 'nobody' on this node"
    as_html = await client.get("/@nobody", headers={"Accept": BROWSER_ACCEPT})
    assert as_html.status_code == 404
    assert as_html.headers["content-type"].startswith("text/html")
    assert "no actor named" in as_html.text


async def test_unknown_path_and_wrong_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nothing-here")).status_code == 404
    response = await client.delete("/.well-known/webfinger")
    assert response.status_code == 405
    assert "error" in response.json()


async def test_our_context_is_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/ns/archipel/v1")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/ld+json")
    assert "@context" in response.json()


async def test_pages_follow_accept_language(client: httpx.AsyncClient) -> None:
    french = await client.get("/", headers={"Accept": BROWSER_ACCEPT, "Accept-Language": "fr"})
    english = await client.get("/", headers={"Accept": BROWSER_ACCEPT, "Accept-Language": "en"})
    assert '<html lang="fr">' in french.text and "Suivre cette chambre" in french.text
    assert '<html lang="en">' in english.text and "Follow this chamber" in english.text
    default = await client.get("/", headers={"Accept": BROWSER_ACCEPT})
    assert '<html lang="fr">' in default.text
