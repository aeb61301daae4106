"""Object proofs (node.activitypub.proofs): W3C vectors, Mastodon's RsaSignature2017, refusals."""

from __future__ import annotations

import copy
import hashlib
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyld.documentloader.frozen import FrozenDocumentLoader

from node.activitypub import jsonld, proofs
from node.activitypub.multikey import multibase_encode, private_key_from_multibase
from node.activitypub.proofs import (
    ProofError,
    ProofResult,
    sign_eddsa_jcs_2022,
    sign_eddsa_rdfc_2022,
    sign_rsa_signature_2017,
    verify_proof,
)

# --- fixtures: W3C vc-di-eddsa test vectors ------------------------------------------------------

W3C_SECRET = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"  # TestVectors/keyPair.json
W3C_VM = "https://vc.example/issuers/5678#z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
W3C_CREATED = datetime(2023, 2, 24, 23, 36, 38, tzinfo=UTC)
CREDENTIALS_V2 = "https://www.w3.org/ns/credentials/v2"
EXAMPLES_V2 = "https://www.w3.org/ns/credentials/examples/v2"

# The unsigned "Alumni Credential" of TestVectors/eddsa-jcs-2022 and eddsa-rdfc-2022.
W3C_UNSIGNED: dict[str, Any] = {
    "@context": [CREDENTIALS_V2, EXAMPLES_V2],
    "id": "urn:uuid:58172aac-d8ba-11ed-83dd-0b3aef56cc33",
    "type": ["VerifiableCredential", "AlumniCredential"],
    "name": "Alumni Credential",
    "description": "A minimum viable example of an Alumni Credential.",
    "issuer": "https://vc.example/issuers/5678",
    "validFrom": "2023-01-01T00:00:00Z",
    "credentialSubject": {"id": "did:example:abcdefgh", "alumniOf": "The School of Examples"},
}

# TestVectors/eddsa-jcs-2022/signedJCS.json (current: the proof carries @context)
W3C_SIGNED_JCS: dict[str, Any] = {
    **W3C_UNSIGNED,
    "proof": {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2023-02-24T23:36:38Z",
        "verificationMethod": W3C_VM,
        "proofPurpose": "assertionMethod",
        "@context": [CREDENTIALS_V2, EXAMPLES_V2],
        "proofValue": (
            "z63t83Y53KfzJ5ZosfKTnqfMcKB2dmTrfjSaQjeNNjAD5srBowQf"
            "mWqeRb8rRjmeEuCBEsddF9LsVogtuTsijJKh4"
        ),
    },
}
# TestVectors/eddsa-jcs-2022/canonDocJCS.txt and docHashJCS.txt
W3C_CANON_DOC_JCS = (
    '{"@context":["https://www.w3.org/ns/credentials/v2","https://www.w3.org/ns/credentials/'
    'examples/v2"],"credentialSubject":{"alumniOf":"The School of Examples","id":"did:example:'
    'abcdefgh"},"description":"A minimum viable example of an Alumni Credential.","id":"urn:uuid:'
    '58172aac-d8ba-11ed-83dd-0b3aef56cc33","issuer":"https://vc.example/issuers/5678","name":'
    '"Alumni Credential","type":["VerifiableCredential","AlumniCredential"],"validFrom":'
    '"2023-01-01T00:00:00Z"}'
)
W3C_DOC_HASH_JCS = "59b7cb6251b8991add1ce0bc83107e3db9dbbab5bd2c28f687db1a03abc92f19"
# An earlier revision of signedJCS.json, signed before proofConfig carried @context.
W3C_LEGACY_JCS_PROOF_VALUE = (
    "z3P6rHMUaWG6e3Ac6xYFht8aEvoVXndgKTtEY8kzWYXzk8dKmAo2GJeZiJw4qoZ2PGp4ugdaHx3oQiLpeFBLDqP2M"
)

# TestVectors/eddsa-rdfc-2022/signedDataInt.json, proofCanonDataInt.txt, combinedHashDataInt.txt
W3C_RDFC_PROOF_VALUE = (
    "z21EVs3eXERqTn4acNHT9viboqgzUaQ3kTmhPT3eA8qrVPE7CrQq78WkzctnMX5W4CrzcKnHw8V6dvy5pgWYCU5e9"
)
W3C_RDFC_PROOF_CANON = (
    '_:c14n0 <http://purl.org/dc/terms/created> "2023-02-24T23:36:38Z"'
    "^^<http://www.w3.org/2001/XMLSchema#dateTime> .\n"
    "_:c14n0 <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> "
    "<https://w3id.org/security#DataIntegrityProof> .\n"
    '_:c14n0 <https://w3id.org/security#cryptosuite> "eddsa-rdfc-2022"'
    "^^<https://w3id.org/security#cryptosuiteString> .\n"
    "_:c14n0 <https://w3id.org/security#proofPurpose> "
    "<https://w3id.org/security#assertionMethod> .\n"
    "_:c14n0 <https://w3id.org/security#verificationMethod> <" + W3C_VM + "> .\n"
)
W3C_RDFC_COMBINED_HASH = (
    "4c4d3890a157f8d611b13c265c2c22f39aa0a567c7c7dd9ba3e45cd579784eeb"
    "517744132ae165a5349155bef0bb0cf2258fff99dfe1dbd914b938d775a36017"
)

# RSA key pair published as a test fixture by transmute-industries/RsaSignature2017.
RSA_PRIVATE_PEM = b"""-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAxiD/F5M/LPKsNeTV1R55dtsQRYqP0835BuxuYyAeTENDwpji
eFZHztrmpPFqnfPgGlW3aDfN84PfC5F+LznB1EmWlfQwWTTTb7VurlMmHOgQx9c+
2+Yg22cgPGh8qTxUALZFpQ+DHVBU59FXbzpZKeF2go9fqvJvYaxcf5Sq1pu/Y62k
plCVxmow508agslRvqAzowsHvB/Dp5wETaXiyvXeqCFSEmTDCu3CCnu4HuwwP+H3
KNSuAPZtcjOlCxrvO50RvzT5RnnRITuTi4oimIJMQoIX6N/RZzgFRofsTBKqbjFs
Z6hja496yLp/3KJ8egQ2srl4kt3TzHlDfKXPnQIDAQABAoIBAF1mirrjaGHZGMPj
V8a7MgmM5dPSqVDxBZd09+j06DONdjETf5e5HOrwGNDjGh7SK/BePjL8M7O7k/dR
JEpBERXxhvK0BeLX22ELB91YR1xTLi33U6O4jf7AU9sGatYhIXygcJ6KfIXiK9SI
xI4j1IrAxexwiGn/FfDWn1hpjkvSlUQr14YCCuckBXAkAAjqlcrH0xEkcFls4HAo
wn+vCaxN+tQaP9fmwbBMyILSLgmirFeZPJbtL731h677jED0Gre2PQJc2UzNnWA2
ThKlIqikTbyNAULC9u3+dtSqARD2NWTh8rhnkyiPQ3giYezWnbDX7/gEZx6ZhjmA
A5Bc0kUCgYEA9P4khD7fBQURD84boR6WsCd6VEpBuDqEzx6HDIUTwkj2VG6ftzz6
TwCZmhgnRCedutCzKqfH4TCMlXUYoXgg/8lrmwVxWCYt41NWr4cMS3GThXwEBrDN
HUu+BCEEWmUdaILXlpD7XFz2bOi45cj8jp/UQSZKC9wKIJwT2OLuydMCgYEAzwfV
zxfxGRf/MfN6nhEGVgJ03YpspIgIkLZQctZOBTPBUXsECYj85cAdPtPwXbHHqx4u
W63FqHhOBZdf8b8a8zOCTjnxiZAzlTGezeK9jMtQM5+IgEWNf46Zzt+fLnooq4Rc
GcgsNwp3xuBMKPPiCEXggUlICAEoEAB1e5E8Ks8CgYB6oBZhByMT3SRcF9rme2wL
QcdOF1jrwIanMO2By75HGcQKINDao6/aCT/YzEwjJf0h+8IiEJbQVT+Ys2Kft4Q0
43lzv3arG3kOdrFF7D+wJ2oifx94xdf02OuEH46RPFlK7WrBV1IpOfKyMo4Rndck
AEX6UhLv+rQq/FRG09eXtwKBgQC0MrqsFce5ssRh4u4gNOtR47N6vSiREQJ7iuR9
AAFKz+B9HljGP+D3zP7nl6uIsdv8Gjn5fEglugkXHsnY7iDz/Cp4EkElHkl3m4gA
5lFcAf8d38b89w0RMLq5cLTpzFQn7f4IRs4NXmQgy0we/SAJWWDuxy0WIoOPYgbf
9errywKBgQDC7NPm+2k8Mw05JRKQ+yQRhsEOh3/gDFz28w/DPqmm5Z5YOhVIK5bd
1mSEklsX8dSt5YObMcVavt6+gWi3lPkznO063BzpnPDCBTbApyaB7B8hlKy/KtbZ
zwYQC2O+AflQIvjZu3NaAAZ288V9YVz6pys9ycBweOoQuJkovLIsCg==
-----END RSA PRIVATE KEY-----
"""
RSA_CREATOR = "https://example.com/users/alice#main-key"
# Regression value: our own output for the identity/v1 document below (PKCS#1 v1.5 is
# deterministic). No independent RsaSignature2017 vector with a published key was found.
RSA_PINNED_SIGNATURE = (
    "aPGhBYG2wM+64blXTuVxw07OzSiFPbAigWypJTIOplXw0f+4VyDkFoikpXkd4KevUvJpLZSPA69SSW6IcXstqbz"
    "pPDIT3IhsvPxiyjwSAnyWgSpQmWQZneCB0LURsaMbqxXjbTDIG+5xMWnWoYgIc6b1qyQq6sIwBhVZgxl562PHyEK"
    "T8PJfIvwt/GpTm+nQB8PRbGdFNbSv/1jM6Z9y4b0wGKgQf8uFjXbCxX8ggeFdyu1PV6Kh1HJzHGlj3wpId8+VHoH"
    "0onbL/QWYp/FxZXf8xF1K4cZya3Z3gStwYV7S5TesmaDDwQm6NOA8TCuGer9sZMGbMS7MTnoTAtuMRA=="
)

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
OUR_VM = "https://lille.example/actors/chamber#ed25519-key"


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
def vc_contexts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Serve the two Verifiable Credentials contexts the W3C vectors use (tests only).

    credentials/v2 comes from pyld's own frozen copy of the published document; the
    examples/v2 context is a single @vocab mapping.
    """
    bundled = jsonld.offline_document_loader
    frozen = FrozenDocumentLoader()

    def loader(url: str, options: Any = None) -> dict[str, Any]:
        if url == EXAMPLES_V2:
            document = {"@context": {"@vocab": "https://www.w3.org/ns/credentials/examples#"}}
            return {
                "contentType": "application/ld+json",
                "contextUrl": None,
                "documentUrl": url,
                "document": document,
            }
        if url == CREDENTIALS_V2:
            return dict(frozen(url, options or {}))
        return bundled(url, options)

    monkeypatch.setattr(jsonld, "offline_document_loader", loader)


@pytest.fixture(scope="module")
def w3c_key() -> Ed25519PrivateKey:
    return private_key_from_multibase(W3C_SECRET)


@pytest.fixture(scope="module")
def rsa_key() -> RSAPrivateKey:
    key = load_pem_private_key(RSA_PRIVATE_PEM, password=None)
    assert isinstance(key, RSAPrivateKey)
    return key


@pytest.fixture(scope="module")
def our_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def _keys(**by_id: Any) -> Any:
    """A resolve_key backed by a dict of private keys (their public halves are served)."""
    return lambda key_id: by_id[key_id].public_key() if key_id in by_id else None


def _w3c(key: Ed25519PrivateKey) -> Any:
    return lambda key_id: key.public_key() if key_id == W3C_VM else None


def _brick() -> dict[str, Any]:
    return {
        "@context": jsonld.default_context(),
        "id": "https://lille.example/bricks/42",
        "type": "Article",
        "attributedTo": "https://lille.example/members/ana",
        "name": "Compost collectif",
        "summary": "Comment organiser un compost de quartier.",
        "category": "method",
        "version": 3,
        "license": "https://creativecommons.org/licenses/by-sa/4.0/",
        "published": "2024-05-01T10:00:00Z",
    }


def test_public_names_are_declared() -> None:
    for name in proofs.__all__:
        assert hasattr(proofs, name), name


def test_proofs_and_multikey__import_no_io_framework() -> None:
    code = (
        "import sys\n"
        "import node.activitypub.proofs, node.activitypub.multikey\n"
        "bad = {'sqlalchemy', 'httpx', 'starlette'} & {m.split('.')[0] for m in sys.modules}\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- eddsa-jcs-2022 ------------------------------------------------------------------------------


def test_sign_eddsa_jcs_2022__reproduces_the_w3c_vector(w3c_key: Ed25519PrivateKey) -> None:
    signed = sign_eddsa_jcs_2022(W3C_UNSIGNED, w3c_key, W3C_VM, created=W3C_CREATED)
    assert signed == W3C_SIGNED_JCS
    assert "proof" not in W3C_UNSIGNED  # input untouched


def test_eddsa_jcs_2022__intermediate_values_match_the_w3c_vector() -> None:
    canonical = rfc8785.dumps(W3C_UNSIGNED)
    assert canonical.decode() == W3C_CANON_DOC_JCS
    assert hashlib.sha256(canonical).hexdigest() == W3C_DOC_HASH_JCS


def test_verify_proof__accepts_the_w3c_jcs_vector(w3c_key: Ed25519PrivateKey) -> None:
    result = verify_proof(W3C_SIGNED_JCS, _w3c(w3c_key), now=NOW)
    assert result == ProofResult(
        True, "verified", W3C_VM, "eddsa-jcs-2022 proof verified", "eddsa-jcs-2022"
    )
    assert result.verification_methods == (W3C_VM,)


def test_verify_proof__accepts_the_earlier_jcs_vector_without_proof_context(
    w3c_key: Ed25519PrivateKey,
) -> None:
    legacy = copy.deepcopy(W3C_SIGNED_JCS)
    del legacy["proof"]["@context"]
    legacy["proof"]["proofValue"] = W3C_LEGACY_JCS_PROOF_VALUE
    result = verify_proof(legacy, _w3c(w3c_key))
    assert result.ok and "pre-2024" in result.message
    # the fallback never applies when the proof names its @context
    assert not verify_proof(
        {**legacy, "proof": {**legacy["proof"], "@context": []}}, _w3c(w3c_key)
    ).ok


def test_verify_proof__jcs_tampered_field_is_invalid(w3c_key: Ed25519PrivateKey) -> None:
    tampered = copy.deepcopy(W3C_SIGNED_JCS)
    tampered["credentialSubject"]["alumniOf"] = "The School of Forgeries"
    result = verify_proof(tampered, _w3c(w3c_key))
    assert (result.ok, result.reason) == (False, "invalidSignature")
    assert result.verification_method == W3C_VM


def test_verify_proof__jcs_tampered_proof_option_is_invalid(w3c_key: Ed25519PrivateKey) -> None:
    tampered = copy.deepcopy(W3C_SIGNED_JCS)
    tampered["proof"]["created"] = "2023-02-24T23:36:39Z"
    assert verify_proof(tampered, _w3c(w3c_key)).reason == "invalidSignature"


def test_verify_proof__wrong_key_is_invalid(w3c_key: Ed25519PrivateKey) -> None:
    other = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    result = verify_proof(W3C_SIGNED_JCS, lambda _: other.public_key())
    assert result.reason == "invalidSignature"


@pytest.mark.parametrize("resolver", [lambda _: None, lambda key_id: {}[key_id]])
def test_verify_proof__unknown_key(resolver: Any) -> None:
    result = verify_proof(W3C_SIGNED_JCS, resolver)
    assert (result.ok, result.reason, result.verification_method) == (
        False,
        "keyNotFound",
        W3C_VM,
    )
    assert W3C_VM in result.message


def test_verify_proof__rsa_key_for_an_eddsa_proof(rsa_key: RSAPrivateKey) -> None:
    result = verify_proof(W3C_SIGNED_JCS, lambda _: rsa_key.public_key())
    assert result.reason == "wrongKeyType"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"cryptosuite": "ecdsa-jcs-2019"}, "unsupportedCryptosuite"),
        ({"cryptosuite": "bbs-2023"}, "unsupportedCryptosuite"),
        ({"type": "Ed25519Signature2020"}, "unsupportedCryptosuite"),
        ({"proofPurpose": "authentication"}, "malformed"),
        ({"proofValue": "uAAAA"}, "malformed"),
        ({"proofValue": "z1111"}, "malformed"),
        ({"proofValue": 12}, "malformed"),
        ({"verificationMethod": None}, "malformed"),
        ({"created": "yesterday"}, "malformed"),
        ({"previousProof": "urn:uuid:1"}, "malformed"),
        ({"@context": ["https://www.w3.org/ns/activitystreams"]}, "malformed"),
    ],
)
def test_verify_proof__refusals(
    w3c_key: Ed25519PrivateKey, change: dict[str, Any], reason: str
) -> None:
    document = copy.deepcopy(W3C_SIGNED_JCS)
    document["proof"].update(change)
    result = verify_proof(document, _w3c(w3c_key))
    assert (result.ok, result.reason) == (False, reason), result.message


def test_verify_proof__no_proof() -> None:
    assert verify_proof(W3C_UNSIGNED, lambda _: None).reason == "noProof"
    assert verify_proof({**W3C_UNSIGNED, "proof": []}, lambda _: None).reason == "noProof"
    assert verify_proof([], lambda _: None).reason == "malformed"  # type: ignore[arg-type]
    assert verify_proof({"proof": "x"}, lambda _: None).reason == "malformed"


def test_verify_proof__times_are_checked_only_when_now_is_given(
    our_key: Ed25519PrivateKey,
) -> None:
    signed = sign_eddsa_jcs_2022(_brick(), our_key, OUR_VM, created=NOW)
    resolve = _keys(**{OUR_VM: our_key})
    early = verify_proof(signed, resolve, now=NOW - timedelta(hours=1))
    assert (early.ok, early.reason) == (False, "malformed")
    assert "in the future" in early.message
    assert verify_proof(signed, resolve, now=NOW - proofs.MAX_CLOCK_SKEW + timedelta(seconds=1)).ok
    assert verify_proof(signed, resolve).ok  # no clock: signature only


def test_verify_proof__expired_proof(our_key: Ed25519PrivateKey) -> None:
    document = _brick()
    proof = {
        "type": "DataIntegrityProof",
        "cryptosuite": "eddsa-jcs-2022",
        "created": "2024-06-01T12:00:00Z",
        "expires": "2024-06-02T00:00:00Z",
        "verificationMethod": OUR_VM,
        "proofPurpose": "assertionMethod",
        "@context": document["@context"],
    }
    digest = hashlib.sha256(rfc8785.dumps(proof)).digest()
    digest += hashlib.sha256(rfc8785.dumps(document)).digest()
    signed = {**document, "proof": {**proof, "proofValue": multibase_encode(our_key.sign(digest))}}
    resolve = _keys(**{OUR_VM: our_key})
    assert verify_proof(signed, resolve, now=NOW).ok
    late = verify_proof(signed, resolve, now=NOW + timedelta(days=2))
    assert (late.ok, late.reason) == (False, "expired")


def test_sign_eddsa_jcs_2022__a_second_signature_makes_a_proof_set(
    our_key: Ed25519PrivateKey, w3c_key: Ed25519PrivateKey
) -> None:
    once = sign_eddsa_jcs_2022(_brick(), our_key, OUR_VM, created=NOW)
    twice = sign_eddsa_jcs_2022(once, w3c_key, W3C_VM, created=NOW)
    assert isinstance(twice["proof"], list) and len(twice["proof"]) == 2
    resolve = _keys(**{OUR_VM: our_key, W3C_VM: w3c_key})
    result = verify_proof(twice, resolve)
    assert result.ok and result.message == "all 2 proofs verified"
    assert result.verification_methods == (OUR_VM, W3C_VM)
    assert all(r.ok for r in result.proofs)

    broken = copy.deepcopy(twice)
    broken["proof"][1]["proofValue"] = once["proof"]["proofValue"]
    failed = verify_proof(broken, resolve)
    assert (failed.ok, failed.reason, failed.verification_method) == (
        False,
        "invalidSignature",
        W3C_VM,
    )
    assert failed.message.startswith("proof 2 of 2 failed")
    assert [r.ok for r in failed.proofs] == [True, False]


def test_sign_eddsa_jcs_2022__bad_local_input(our_key: Ed25519PrivateKey, rsa_key: Any) -> None:
    with pytest.raises(ProofError, match="timezone-aware"):
        sign_eddsa_jcs_2022(_brick(), our_key, OUR_VM, created=datetime(2024, 1, 1))
    with pytest.raises(ProofError, match="Ed25519PrivateKey"):
        sign_eddsa_jcs_2022(_brick(), rsa_key, OUR_VM, created=NOW)
    with pytest.raises(ProofError, match="JCS"):
        sign_eddsa_jcs_2022({"x": float("nan")}, our_key, OUR_VM, created=NOW)
    with pytest.raises(ProofError, match="verification_method"):
        sign_eddsa_jcs_2022(_brick(), our_key, "", created=NOW)


def test_sign_eddsa_jcs_2022__created_is_utc_to_the_second(our_key: Ed25519PrivateKey) -> None:
    brussels = timezone(timedelta(hours=2))
    created = datetime(2024, 6, 1, 16, 0, 0, 123456, tzinfo=brussels)
    signed = sign_eddsa_jcs_2022(_brick(), our_key, OUR_VM, created=created)
    assert signed["proof"]["created"] == "2024-06-01T14:00:00Z"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.text(min_size=1, max_size=8), json_values, max_size=5))
def test_eddsa_jcs_2022__round_trip_and_tamper_any_document(
    our_key: Ed25519PrivateKey, body: dict[str, Any]
) -> None:
    body.pop("proof", None)
    signed = sign_eddsa_jcs_2022(body, our_key, OUR_VM, created=NOW)
    resolve = _keys(**{OUR_VM: our_key})
    assert verify_proof(signed, resolve).ok
    tampered = dict(signed, extra_field_added_later=True)
    assert verify_proof(tampered, resolve).reason == "invalidSignature"


# --- eddsa-rdfc-2022 -----------------------------------------------------------------------------


def _w3c_rdfc_signed() -> dict[str, Any]:
    return {
        **W3C_UNSIGNED,
        "proof": {
            "type": "DataIntegrityProof",
            "cryptosuite": "eddsa-rdfc-2022",
            "created": "2023-02-24T23:36:38Z",
            "verificationMethod": W3C_VM,
            "proofPurpose": "assertionMethod",
            "proofValue": W3C_RDFC_PROOF_VALUE,
        },
    }


def test_verify_proof__accepts_the_w3c_rdfc_vector(
    vc_contexts: None, w3c_key: Ed25519PrivateKey
) -> None:
    result = verify_proof(_w3c_rdfc_signed(), _w3c(w3c_key), now=NOW)
    assert (result.ok, result.reason, result.cryptosuite) == (True, "verified", "eddsa-rdfc-2022")


def test_eddsa_rdfc_2022__intermediate_values_match_the_w3c_vector(vc_contexts: None) -> None:
    proof_config = {k: v for k, v in _w3c_rdfc_signed()["proof"].items() if k != "proofValue"} | {
        "@context": W3C_UNSIGNED["@context"]
    }
    proof_canon = jsonld.canonize(proof_config)
    assert proof_canon == W3C_RDFC_PROOF_CANON
    combined = hashlib.sha256(proof_canon.encode()).hexdigest()
    combined += hashlib.sha256(jsonld.canonize(W3C_UNSIGNED).encode()).hexdigest()
    assert combined == W3C_RDFC_COMBINED_HASH


def test_sign_eddsa_rdfc_2022__reproduces_the_w3c_proof_value(
    vc_contexts: None, w3c_key: Ed25519PrivateKey
) -> None:
    signed = sign_eddsa_rdfc_2022(W3C_UNSIGNED, w3c_key, W3C_VM, created=W3C_CREATED)
    assert signed["proof"]["proofValue"] == W3C_RDFC_PROOF_VALUE
    assert signed["proof"]["@context"] == W3C_UNSIGNED["@context"]
    assert verify_proof(signed, _w3c(w3c_key)).ok


def test_verify_proof__rdfc_tampered_field_is_invalid(
    vc_contexts: None, w3c_key: Ed25519PrivateKey
) -> None:
    tampered = _w3c_rdfc_signed()
    tampered["name"] = "Forged Credential"
    assert verify_proof(tampered, _w3c(w3c_key)).reason == "invalidSignature"


def test_verify_proof__rdfc_ignores_json_only_changes(
    vc_contexts: None, w3c_key: Ed25519PrivateKey
) -> None:
    # Same RDF dataset, different JSON: key order and a single-element array.
    reshaped = _w3c_rdfc_signed()
    reshaped["credentialSubject"] = {
        "alumniOf": ["The School of Examples"],
        "id": "did:example:abcdefgh",
    }
    assert verify_proof(reshaped, _w3c(w3c_key)).ok


def test_verify_proof__rdfc_without_the_vc_contexts_names_the_missing_context(
    w3c_key: Ed25519PrivateKey,
) -> None:
    result = verify_proof(_w3c_rdfc_signed(), _w3c(w3c_key))
    assert (result.ok, result.reason) == (False, "unknownContext")
    assert CREDENTIALS_V2 in result.message


def test_eddsa_rdfc_2022__round_trip_with_our_context(our_key: Ed25519PrivateKey) -> None:
    signed = sign_eddsa_rdfc_2022(_brick(), our_key, OUR_VM, created=NOW)
    resolve = _keys(**{OUR_VM: our_key})
    assert verify_proof(signed, resolve, now=NOW).ok
    tampered = copy.deepcopy(signed)
    tampered["category"] = "concept"
    assert verify_proof(tampered, resolve).reason == "invalidSignature"


def test_sign_eddsa_rdfc_2022__needs_data_integrity_terms(our_key: Ed25519PrivateKey) -> None:
    document = {"@context": jsonld.AS2_CONTEXT, "type": "Note", "name": "x"}
    with pytest.raises(ProofError, match="data-integrity/v2"):
        sign_eddsa_rdfc_2022(document, our_key, OUR_VM, created=NOW)


def test_eddsa_rdfc_2022__terms_outside_the_context_are_not_signed(
    our_key: Ed25519PrivateKey,
) -> None:
    signed = sign_eddsa_rdfc_2022(_brick(), our_key, OUR_VM, created=NOW)
    signed["undefinedTerm"] = "added after signing"
    resolve = _keys(**{OUR_VM: our_key})
    refused = verify_proof(signed, resolve)
    assert (refused.ok, refused.reason) == (False, "malformed")
    assert "undefinedTerm" in refused.message
    allowed = verify_proof(signed, resolve, allow_uncovered_terms=True)
    assert allowed.ok and allowed.uncovered_terms == ("undefinedTerm",)
    with pytest.raises(ProofError, match="undefinedTerm"):
        sign_eddsa_rdfc_2022(signed, our_key, OUR_VM, created=NOW)


@pytest.mark.parametrize(
    "extra",
    [
        {"@graph": [{"id": "https://lille.example/x", "type": "Note"}]},
        {"@included": [{"id": "https://lille.example/x", "type": "Note"}]},
        {"object": {"@reverse": {"as:attributedTo": {"id": "https://lille.example/x"}}}},
        {"@context": [*jsonld.default_context(), {"g": "@graph"}], "g": []},
        {"@context": [*jsonld.default_context(), {"inc": {"@id": "@included"}}]},
        {"@context": [*jsonld.default_context(), {"by": {"@reverse": "as:actor"}}]},
    ],
)
def test_verify_proof__rdfc_refuses_graph_included_reverse(
    our_key: Ed25519PrivateKey, extra: dict[str, Any]
) -> None:
    signed = sign_eddsa_rdfc_2022(_brick(), our_key, OUR_VM, created=NOW)
    signed.update(extra)
    result = verify_proof(signed, _keys(**{OUR_VM: our_key}))
    assert (result.ok, result.reason) == (False, "forbiddenKeyword"), result.message
    with pytest.raises(ProofError, match="refused"):
        sign_eddsa_rdfc_2022(
            {k: v for k, v in signed.items() if k != "proof"}, our_key, OUR_VM, created=NOW
        )


def test_verify_proof__jcs_does_not_care_about_graph(our_key: Ed25519PrivateKey) -> None:
    document = {**_brick(), "@graph": [{"id": "https://lille.example/x"}]}
    signed = sign_eddsa_jcs_2022(document, our_key, OUR_VM, created=NOW)
    assert verify_proof(signed, _keys(**{OUR_VM: our_key})).ok


# --- RsaSignature2017 ----------------------------------------------------------------------------


def _mastodon_create() -> dict[str, Any]:
    return {
        "@context": [
            jsonld.AS2_CONTEXT,
            jsonld.SECURITY_V1_CONTEXT,
            {
                "toot": "http://joinmastodon.org/ns#",
                "sensitive": "as:sensitive",
                "Hashtag": "as:Hashtag",
                "atomUri": "ostatus:atomUri",
                "ostatus": "http://ostatus.org#",
            },
        ],
        "id": "https://example.com/users/alice/statuses/1/activity",
        "type": "Create",
        "actor": "https://example.com/users/alice",
        "published": "2024-05-01T10:00:00Z",
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": "https://example.com/users/alice/statuses/1",
            "type": "Note",
            "atomUri": "https://example.com/users/alice/statuses/1",
            "sensitive": False,
            "content": "<p>Bonjour #compost</p>",
            "tag": [
                {"type": "Hashtag", "name": "#compost", "href": "https://example.com/tags/compost"}
            ],
        },
    }


def test_rsa_signature_2017__pinned_regression_value(rsa_key: RSAPrivateKey) -> None:
    document = {"@context": "https://w3id.org/identity/v1", "givenName": "Alice"}
    created = datetime(2018, 12, 22, 18, 23, 12, tzinfo=UTC)
    signed = sign_rsa_signature_2017(document, rsa_key, RSA_CREATOR, created=created)
    assert signed["signature"] == {
        "type": "RsaSignature2017",
        "creator": RSA_CREATOR,
        "created": "2018-12-22T18:23:12Z",
        "signatureValue": RSA_PINNED_SIGNATURE,
    }
    result = verify_proof(signed, _keys(**{RSA_CREATOR: rsa_key}))
    assert (result.ok, result.cryptosuite, result.verification_method) == (
        True,
        "RsaSignature2017",
        RSA_CREATOR,
    )


def test_rsa_signature_2017__round_trip_on_a_mastodon_activity(rsa_key: RSAPrivateKey) -> None:
    signed = sign_rsa_signature_2017(_mastodon_create(), rsa_key, RSA_CREATOR, created=NOW)
    resolve = _keys(**{RSA_CREATOR: rsa_key})
    assert verify_proof(signed, resolve, now=NOW).ok

    tampered = copy.deepcopy(signed)
    tampered["object"]["content"] = "<p>Forged</p>"
    assert verify_proof(tampered, resolve).reason == "invalidSignature"

    with_nonce = copy.deepcopy(signed)
    with_nonce["signature"]["nonce"] = "abc"  # Mastodon hashes every option but type/id/value
    assert verify_proof(with_nonce, resolve).reason == "invalidSignature"


def test_rsa_signature_2017__refusals(rsa_key: RSAPrivateKey, our_key: Ed25519PrivateKey) -> None:
    signed = sign_rsa_signature_2017(_mastodon_create(), rsa_key, RSA_CREATOR, created=NOW)
    resolve = _keys(**{RSA_CREATOR: rsa_key})

    assert verify_proof(signed, _keys(**{RSA_CREATOR: our_key})).reason == "wrongKeyType"
    assert verify_proof(signed, lambda _: None).reason == "keyNotFound"

    cases: list[tuple[dict[str, Any], str]] = [
        ({"type": "Ed25519Signature2018"}, "unsupportedCryptosuite"),
        ({"signatureValue": "not base64!"}, "malformed"),
        ({"creator": None}, "malformed"),
    ]
    for change, reason in cases:
        broken = copy.deepcopy(signed)
        broken["signature"].update(change)
        assert verify_proof(broken, resolve).reason == reason, change

    graph = copy.deepcopy(signed)
    graph["@graph"] = [graph.pop("object")]
    assert verify_proof(graph, resolve).reason == "forbiddenKeyword"

    unknown = copy.deepcopy(signed)
    unknown["@context"] = [*unknown["@context"], "https://mastodon.example/ns"]
    result = verify_proof(unknown, resolve)
    assert (result.reason, "https://mastodon.example/ns" in result.message) == (
        "unknownContext",
        True,
    )


def test_verify_proof__prefers_proof_over_signature(
    rsa_key: RSAPrivateKey, our_key: Ed25519PrivateKey
) -> None:
    signed = sign_eddsa_jcs_2022(_brick(), our_key, OUR_VM, created=NOW)
    both = sign_rsa_signature_2017(signed, rsa_key, RSA_CREATOR, created=NOW)
    result = verify_proof(both, _keys(**{OUR_VM: our_key, RSA_CREATOR: rsa_key}))
    assert result.cryptosuite == "eddsa-jcs-2022"
