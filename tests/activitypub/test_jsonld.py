"""Offline JSON-LD processing (node.activitypub.jsonld)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pyld import jsonld as pyld_jsonld

from node.activitypub import jsonld
from node.activitypub.jsonld import (
    ARCHIPEL_NAMESPACE,
    AS2_CONTEXT,
    DATA_INTEGRITY_V2_CONTEXT,
    MULTIKEY_V1_CONTEXT,
    SECURITY_V1_CONTEXT,
    JsonLdError,
    UnknownContextError,
    archipel_context_bytes,
    archipel_terms,
    canonize,
    default_context,
    expand,
    install_offline_loader,
    offline_document_loader,
)

AS = "https://www.w3.org/ns/activitystreams#"
SEC = "https://w3id.org/security#"
ARC = ARCHIPEL_NAMESPACE
XSD = "http://www.w3.org/2001/XMLSchema#"
VF = "https://w3id.org/valueflows/ont/vf#"
OM2 = "http://www.ontology-of-units-of-measure.org/resource/om-2/"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def restore_pyld_loader() -> Iterator[None]:
    previous = pyld_jsonld.get_document_loader()
    yield
    pyld_jsonld.set_document_loader(previous)


def _node(doc: dict[str, Any]) -> dict[str, Any]:
    expanded = expand(doc)
    assert len(expanded) == 1
    node = expanded[0]
    assert isinstance(node, dict)
    return node


def test_public_names_are_declared() -> None:
    for name in jsonld.__all__:
        assert hasattr(jsonld, name), name


def test_import__reads_no_package_data() -> None:
    code = (
        "import node.activitypub.jsonld as j\n"
        "assert j._read_context_file.cache_info().currsize == 0\n"
        "assert j._parsed_context_file.cache_info().currsize == 0\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("url", sorted(jsonld.bundled_context_urls()))
def test_offline_loader__serves_every_bundled_context(url: str) -> None:
    remote = offline_document_loader(url)
    assert remote["documentUrl"] == url
    assert remote["contentType"] == "application/ld+json"
    assert "@context" in remote["document"]
    # and pyld accepts it as a context
    assert expand({"@context": url, "@id": "https://example.org/x"}) == []


@pytest.mark.parametrize(
    "url",
    [
        "http://www.w3.org/ns/activitystreams",
        "https://www.w3.org/ns/activitystreams#",
        "https://www.w3.org/ns/activitystreams/",
        "HTTPS://WWW.W3.ORG/ns/activitystreams",
        "http://w3id.org/security/v1/",
    ],
)
def test_offline_loader__normalises_scheme_case_slash_and_fragment(url: str) -> None:
    assert offline_document_loader(url)["documentUrl"] in {AS2_CONTEXT, SECURITY_V1_CONTEXT}


def test_offline_loader__serves_litepub_for_any_pleroma_host() -> None:
    remote = offline_document_loader("https://pleroma.example/schemas/litepub-0.1.jsonld")
    assert remote["documentUrl"] == "https://pleroma.example/schemas/litepub-0.1.jsonld"
    doc = {
        "@context": ["https://pleroma.example/schemas/litepub-0.1.jsonld", {"@language": "und"}],
        "id": "https://pleroma.example/objects/1",
        "type": "Note",
        "sensitive": False,
        "webfinger": "alice@pleroma.example",
    }
    node = _node(doc)
    assert node["@type"] == [AS + "Note"]
    assert node[AS + "sensitive"] == [{"@value": False}]
    assert "https://purl.archive.org/socialweb/webfinger#webfinger" in node


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/context.jsonld",
        "https://www.w3.org/ns/activitystreams?x=1",
        "https://www.w3.org:8443/ns/activitystreams",
        "https://user@www.w3.org/ns/activitystreams",
        "ftp://www.w3.org/ns/activitystreams",
        "file:///etc/passwd",
        "https://www.w3.org/ns/activitystreams/extra",
    ],
)
def test_offline_loader__refuses_anything_else_with_the_url_in_the_message(url: str) -> None:
    with pytest.raises(UnknownContextError) as caught:
        offline_document_loader(url)
    assert isinstance(caught.value, JsonLdError)
    assert caught.value.url == url
    assert url in str(caught.value)
    assert "never fetched" in str(caught.value)


def test_offline_loader__returns_copies() -> None:
    first = offline_document_loader(AS2_CONTEXT)
    first["document"]["@context"]["Note"] = "https://evil.example/Note"
    assert offline_document_loader(AS2_CONTEXT)["document"]["@context"]["Note"] == "as:Note"


def test_expand__unknown_context_raises_a_clear_error_and_opens_no_socket() -> None:
    doc = {"@context": [AS2_CONTEXT, "https://evil.example/ns"], "type": "Note"}
    with pytest.raises(UnknownContextError, match="https://evil.example/ns"):
        expand(doc)
    with pytest.raises(UnknownContextError, match="https://evil.example/ns"):
        canonize(doc)


def test_expand__nested_unknown_context_is_refused_too() -> None:
    doc = {
        "@context": AS2_CONTEXT,
        "type": "Create",
        "object": {"@context": "https://evil.example/inner", "type": "Note"},
    }
    with pytest.raises(UnknownContextError, match="https://evil.example/inner"):
        expand(doc)


def test_install_offline_loader__is_idempotent_and_protects_plain_pyld_calls(
    restore_pyld_loader: None,
) -> None:
    install_offline_loader()
    install_offline_loader()
    assert pyld_jsonld.get_document_loader() is offline_document_loader
    with pytest.raises(JsonLdError):
        pyld_jsonld.expand({"@context": "https://evil.example/ns", "name": "x"})


def test_archipel_terms__match_the_served_document() -> None:
    served = json.loads(archipel_context_bytes())
    assert served == {"@context": archipel_terms()}
    assert jsonld.ARCHIPEL_TERMS == archipel_terms()
    assert archipel_terms()["archipel"] == "https://archipel.social/ns#"


def test_archipel_terms__are_copies() -> None:
    archipel_terms()["category"] = "https://evil.example/category"
    assert archipel_terms()["category"] == "archipel:category"


def test_default_context__order_and_no_protected_term_conflict() -> None:
    context = default_context()
    assert context[:5] == [
        AS2_CONTEXT,
        SECURITY_V1_CONTEXT,
        DATA_INTEGRITY_V2_CONTEXT,
        jsonld.DID_V1_CONTEXT,
        MULTIKEY_V1_CONTEXT,
    ]
    assert context[5] == archipel_terms()
    # an actor using every family of terms at once expands without a redefinition error
    actor = {
        "@context": context,
        "id": "https://lille.example/actors/chamber",
        "type": "Group",
        "manuallyApprovesFollowers": True,
        "discoverable": True,
        "featured": "https://lille.example/actors/chamber/featured",
        "publicKey": {
            "id": "https://lille.example/actors/chamber#main-key",
            "owner": "https://lille.example/actors/chamber",
            "publicKeyPem": "-----BEGIN PUBLIC KEY-----...",
        },
        "assertionMethod": [
            {
                "id": "https://lille.example/actors/chamber#ed25519-key",
                "type": "Multikey",
                "controller": "https://lille.example/actors/chamber",
                "publicKeyMultibase": "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2",
            }
        ],
        "attachment": [{"type": "PropertyValue", "name": "Charte", "value": "https://x.example"}],
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-jcs-2022",
            "created": "2024-05-01T10:00:00Z",
            "verificationMethod": "https://lille.example/actors/chamber#ed25519-key",
            "proofPurpose": "assertionMethod",
            "proofValue": "z3P6rHMUaWG6e3Ac6xYFht8aEvoVXndgKTtEY8k",
        },
    }
    node = _node(actor)
    assert node[AS + "manuallyApprovesFollowers"] == [{"@value": True}]
    assert node["http://joinmastodon.org/ns#discoverable"] == [{"@value": True}]
    assert node["http://joinmastodon.org/ns#featured"] == [
        {"@id": "https://lille.example/actors/chamber/featured"}
    ]
    assert node[SEC + "publicKey"][0][SEC + "publicKeyPem"]
    key = node[SEC + "assertionMethod"][0]
    assert key["@type"] == [SEC + "Multikey"]
    assert key[SEC + "publicKeyMultibase"][0]["@type"] == SEC + "multibase"
    proof = node[SEC + "proof"][0]["@graph"][0]
    assert proof["@type"] == [SEC + "DataIntegrityProof"]
    assert proof[SEC + "proofPurpose"] == [{"@id": SEC + "assertionMethod"}]
    value = node[AS + "attachment"][0]
    assert value["@type"] == ["http://schema.org#PropertyValue"]
    assert value["http://schema.org#value"] == [{"@value": "https://x.example"}]


def test_default_context__expands_a_brick_to_our_iris() -> None:
    brick = {
        "@context": default_context(),
        "id": "https://lille.example/bricks/42",
        "type": "Article",
        "name": "Compost collectif",
        "category": "method",
        "categoryLabel": {"fr": "Méthode", "en": "Method"},
        "version": 3,
        "ratingAverage": 4.5,
        "ratingCount": 12,
        "license": "https://creativecommons.org/licenses/by-sa/4.0/",
        "chamber": "https://lille.example/actors/chamber",
        "sensitive": False,
        "tag": [
            {"type": "Hashtag", "name": "#compost", "href": "https://lille.example/tags/compost"}
        ],
    }
    node = _node(brick)
    assert node["@type"] == [AS + "Article"]
    assert node[ARC + "category"] == [{"@value": "method"}]
    assert {"@value": "Méthode", "@language": "fr"} in node[ARC + "categoryLabel"]
    assert node[ARC + "version"] == [{"@value": 3, "@type": XSD + "integer"}]
    assert node[ARC + "ratingAverage"] == [{"@value": 4.5}]
    assert node[ARC + "ratingCount"] == [{"@value": 12, "@type": XSD + "nonNegativeInteger"}]
    assert node["https://schema.org/license"] == [
        {"@id": "https://creativecommons.org/licenses/by-sa/4.0/"}
    ]
    assert node[ARC + "chamber"] == [{"@id": "https://lille.example/actors/chamber"}]
    assert node[AS + "sensitive"] == [{"@value": False}]
    assert node[AS + "tag"][0]["@type"] == [AS + "Hashtag"]


def test_default_context__expands_a_review_and_an_exchange() -> None:
    review = _node(
        {
            "@context": default_context(),
            "type": ["Note", "Review"],
            "inReplyTo": "https://lille.example/bricks/42",
            "rating": 5,
        }
    )
    assert review["@type"] == [AS + "Note", ARC + "Review"]
    assert review[ARC + "rating"] == [{"@value": 5, "@type": XSD + "integer"}]

    exchange = _node(
        {
            "@context": default_context(),
            "id": "https://lille.example/exchanges/7",
            "type": ["Exchange", "EconomicEvent"],
            "action": "vf:work",
            "provider": "https://lille.example/members/ana",
            "receiver": "https://gand.example/members/bram",
            "effortQuantity": {"hasNumericalValue": 1.5, "hasUnit": "om2:hour"},
            "minutes": 90,
            "state": "confirmed",
            "hasPointInTime": "2024-05-01T10:00:00Z",
        }
    )
    assert exchange["@type"] == [ARC + "Exchange", VF + "EconomicEvent"]
    assert exchange[VF + "action"] == [{"@id": VF + "work"}]
    assert exchange[VF + "provider"] == [{"@id": "https://lille.example/members/ana"}]
    assert exchange[VF + "receiver"] == [{"@id": "https://gand.example/members/bram"}]
    quantity = exchange[VF + "effortQuantity"][0]
    assert quantity[OM2 + "hasUnit"] == [{"@id": OM2 + "hour"}]
    assert quantity[OM2 + "hasNumericalValue"] == [{"@value": 1.5}]
    assert exchange[ARC + "minutes"] == [{"@value": 90, "@type": XSD + "integer"}]
    assert exchange[ARC + "state"] == [{"@value": "confirmed"}]
    assert exchange[VF + "hasPointInTime"] == [
        {"@value": "2024-05-01T10:00:00Z", "@type": XSD + "dateTime"}
    ]


def test_expand__a_mastodon_style_document() -> None:
    doc = {
        "@context": [
            AS2_CONTEXT,
            SECURITY_V1_CONTEXT,
            {
                "toot": "http://joinmastodon.org/ns#",
                "Emoji": "toot:Emoji",
                "focalPoint": {"@container": "@list", "@id": "toot:focalPoint"},
                "Hashtag": "as:Hashtag",
            },
        ],
        "id": "https://mastodon.example/users/alice/statuses/1",
        "type": "Note",
        "content": "<p>hello</p>",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
    }
    node = _node(doc)
    assert node[AS + "content"] == [{"@value": "<p>hello</p>"}]
    assert node[AS + "to"] == [{"@id": AS + "Public"}]


def test_expand__identity_v1_for_rsa_signature_2017() -> None:
    node = _node(
        {
            "@context": "https://w3id.org/identity/v1",
            "creator": "https://example.com/users/alice#main-key",
            "created": "2018-12-22T18:23:12Z",
        }
    )
    assert node["http://purl.org/dc/terms/creator"] == [
        {"@id": "https://example.com/users/alice#main-key"}
    ]


def test_canonize__is_urdna2015_nquads_independent_of_key_order() -> None:
    doc = {"@context": AS2_CONTEXT, "id": "https://a.example/1", "type": "Note", "name": "x"}
    reordered = {"name": "x", "type": "Note", "id": "https://a.example/1", "@context": AS2_CONTEXT}
    nquads = canonize(doc)
    assert nquads == canonize(reordered)
    assert nquads == (
        "<https://a.example/1> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> "
        "<https://www.w3.org/ns/activitystreams#Note> .\n"
        '<https://a.example/1> <https://www.w3.org/ns/activitystreams#name> "x" .\n'
    )


def test_canonize__labels_blank_nodes_canonically() -> None:
    doc = {
        "@context": AS2_CONTEXT,
        "type": "Create",
        "object": {"type": "Note", "name": "b"},
    }
    assert "_:c14n0" in canonize(doc)


def test_expand__does_not_mutate_its_input() -> None:
    doc = {"@context": default_context(), "type": "Note", "name": "x"}
    snapshot = json.dumps(doc, sort_keys=True)
    expand(doc)
    canonize(doc)
    assert json.dumps(doc, sort_keys=True) == snapshot


def test_expand__invalid_json_ld_raises_json_ld_error() -> None:
    with pytest.raises(JsonLdError):
        expand({"@context": {"id": "@id"}, "@id": 5})
