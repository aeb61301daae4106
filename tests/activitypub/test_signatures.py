"""HTTP signatures: digests, signing, the specs' own vectors, and every rejection."""

from __future__ import annotations

import ast
import base64
import hashlib
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from starlette.datastructures import Headers as StarletteHeaders

from node.activitypub import _structured_fields as sf
from node.activitypub import signatures
from node.activitypub.signatures import (
    PublicKey,
    VerificationResult,
    averify_request,
    check_content_digest,
    check_digest,
    content_digest_header,
    http_date,
    rfc9421_signature_base,
    sha256_digest_header,
    sign_cavage,
    sign_rfc9421,
    signature_key_ids,
    verify_request,
)
from tests.activitypub._keys import (
    ACTOR_KEY,
    ED25519_KEY,
    OTHER_KEY,
)

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
KEY_ID = "https://lille.example/actors/alice#main-key"
INBOX = "https://gand.example/actors/bob/inbox"
OBJECT = "https://gand.example/bricks/42?page=2"
BODY = b'{"type": "Create", "actor": "https://lille.example/actors/alice"}'
HELLO = b'{"hello": "world"}'


def resolve(key_id: str) -> PublicKey | None:
    return {KEY_ID: ACTOR_KEY.public_key()}.get(key_id)


def verify(method: str, url: str, headers: Any, body: bytes, **kwargs: Any) -> VerificationResult:
    kwargs.setdefault("resolve_key", resolve)
    kwargs.setdefault("now", NOW)
    return verify_request(method, url, headers, body, **kwargs)


def signed(
    scheme: str,
    method: str = "POST",
    url: str = INBOX,
    body: bytes = BODY,
    at: datetime = NOW,
    key: rsa.RSAPrivateKey = ACTOR_KEY,
) -> dict[str, str]:
    headers = {"Content-Type": "application/activity+json"}
    signer = sign_cavage if scheme == "cavage" else sign_rfc9421
    headers.update(signer(method, url, headers, body, key, KEY_ID, at))
    return headers


def cavage_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    names: str,
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = ACTOR_KEY,
    params: str = 'algorithm="rsa-sha256"',
    path: str | None = None,
) -> dict[str, str]:
    """Sign ``names`` with our own, independent, draft-cavage signing string."""
    lines = []
    for name in names.split():
        if name == "(request-target)":
            target = path or url.split("://", 1)[1].split("/", 1)[1]
            lines.append(f"(request-target): {method.lower()} /{target.lstrip('/')}")
        elif name in ("(created)", "(expires)"):
            value = params.split(f"{name[1:-1]}=", 1)[1].split(",", 1)[0]
            lines.append(f"{name}: {value}")
        else:
            lines.append(f"{name}: {headers[name.title()]}")
    message = "\n".join(lines).encode()
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(message, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = key.sign(message)
    signature = base64.b64encode(raw).decode()
    value = f'keyId="{KEY_ID}",{params},headers="{names}",signature="{signature}"'
    return {**headers, "Signature": value}


def rfc9421_headers(
    method: str,
    url: str,
    headers: dict[str, str],
    components: list[str],
    params: sf.Parameters,
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = ACTOR_KEY,
) -> dict[str, str]:
    """Sign any component list, RSA PKCS#1 v1.5 or Ed25519, under label ``sig1``."""
    inner = sf.InnerList(tuple(sf.Item(name) for name in components), params)
    out = {**headers, "Signature-Input": f"sig1={sf.serialize_inner_list(inner)}"}
    base = rfc9421_signature_base(method, url, out)
    if isinstance(key, rsa.RSAPrivateKey):
        raw = key.sign(base, padding.PKCS1v15(), hashes.SHA256())
    else:
        raw = key.sign(base)
    out["Signature"] = f"sig1=:{base64.b64encode(raw).decode()}:"
    return out


def rfc9421_params(at: datetime = NOW, **extra: sf.BareItem) -> sf.Parameters:
    return {"created": int(at.timestamp()), "keyid": KEY_ID, **extra}


# --- digests -----------------------------------------------------------------------------


def test_sha256_digest_header__known_value() -> None:
    assert sha256_digest_header(HELLO) == "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="


def test_content_digest_header__rfc9530_byte_sequence() -> None:
    assert content_digest_header(HELLO) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


@pytest.mark.parametrize(
    "value",
    [
        "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
        "sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
        "MD5=Sd/dVLAcvNLSq16eXua5uQ==, SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
        "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=,SHA-512="
        + base64.b64encode(hashlib.sha512(HELLO).digest()).decode(),
    ],
)
def test_check_digest__accepts(value: str) -> None:
    assert check_digest(value, HELLO).ok


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("SHA-256=Y48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", "does not match"),
        ("SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=, SHA-512=AAAA", "does not match"),
        ("MD5=Sd/dVLAcvNLSq16eXua5uQ==", "no supported algorithm"),
        ("SHA-256=not base64!", "not valid base64"),
        ("", "no supported algorithm"),
    ],
)
def test_check_digest__rejects(value: str, why: str) -> None:
    result = check_digest(value, HELLO)
    assert not result.ok
    assert why in result.message


def test_check_content_digest__rfc9421_test_request_sha512() -> None:
    value = (
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHW"
        "XvJwew==:"
    )
    assert check_content_digest(value, HELLO).ok
    assert check_content_digest("SHA-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:", HELLO).ok
    assert check_content_digest(f"md5=:AAAA:, {content_digest_header(HELLO)}", HELLO).ok
    assert not check_content_digest(content_digest_header(b"other"), HELLO).ok
    not_bytes = check_content_digest("sha-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=", HELLO)
    assert "byte sequence" in not_bytes.message


# --- signing -------------------------------------------------------------------------------


def test_sign_cavage__post_is_signed_as_mastodon_does() -> None:
    added = sign_cavage("POST", OBJECT, {}, BODY, ACTOR_KEY, KEY_ID, NOW)
    assert added["Date"] == "Wed, 15 Jan 2025 12:00:00 GMT"
    assert added["Host"] == "gand.example"
    assert added["Digest"] == sha256_digest_header(BODY)
    params = dict(part.split("=", 1) for part in added["Signature"].split(","))
    assert params["keyId"] == f'"{KEY_ID}"'
    assert params["algorithm"] == '"rsa-sha256"'
    assert params["headers"] == '"(request-target) host date digest"'
    expected = (
        "(request-target): post /bricks/42?page=2\nhost: gand.example\n"
        f"date: Wed, 15 Jan 2025 12:00:00 GMT\ndigest: {added['Digest']}"
    ).encode()
    raw = base64.b64decode(params["signature"].strip('"'))
    ACTOR_KEY.public_key().verify(raw, expected, padding.PKCS1v15(), hashes.SHA256())


def test_sign_cavage__get_signs_request_target_host_date() -> None:
    added = sign_cavage("GET", OBJECT, None, None, ACTOR_KEY, KEY_ID, NOW)
    assert "Digest" not in added
    assert 'headers="(request-target) host date"' in added["Signature"]


def test_sign_cavage__needs_rsa() -> None:
    with pytest.raises(TypeError):
        sign_cavage("GET", OBJECT, None, None, ED25519_KEY, KEY_ID, NOW)  # type: ignore[arg-type]


def test_sign_rfc9421__post_covers_method_target_uri_and_content_digest() -> None:
    added = sign_rfc9421("POST", INBOX, {}, BODY, ACTOR_KEY, KEY_ID, NOW)
    assert added["Content-Digest"] == content_digest_header(BODY)
    assert added["Signature-Input"] == (
        'sig1=("@method" "@target-uri" "content-digest");created=1736942400;'
        f'keyid="{KEY_ID}";alg="rsa-v1_5-sha256"'
    )
    base = rfc9421_signature_base("POST", INBOX, added)
    assert base.decode() == (
        '"@method": POST\n'
        f'"@target-uri": {INBOX}\n'
        f'"content-digest": {added["Content-Digest"]}\n'
        f'"@signature-params": {added["Signature-Input"].removeprefix("sig1=")}'
    )
    raw = sf.parse_dictionary(added["Signature"])["sig1"]
    assert isinstance(raw, sf.Item) and isinstance(raw.value, bytes)
    ACTOR_KEY.public_key().verify(raw.value, base, padding.PKCS1v15(), hashes.SHA256())


def test_sign_rfc9421__get_has_no_content_digest() -> None:
    added = sign_rfc9421("GET", OBJECT, None, None, ACTOR_KEY, KEY_ID, NOW)
    assert "Content-Digest" not in added
    assert added["Signature-Input"].startswith('sig1=("@method" "@target-uri");created=')


def test_sign_rfc9421__ed25519_key_and_custom_label() -> None:
    added = sign_rfc9421("POST", INBOX, {}, BODY, ED25519_KEY, KEY_ID, NOW, label="proof")
    assert added["Signature-Input"].startswith("proof=(")
    assert added["Signature-Input"].endswith(';alg="ed25519"')
    result = verify("POST", INBOX, added, BODY, resolve_key=lambda _: ED25519_KEY.public_key())
    assert result.ok, result.message


def test_sign_rfc9421__label_must_be_a_structured_field_key() -> None:
    with pytest.raises(ValueError):
        sign_rfc9421("GET", INBOX, None, None, ACTOR_KEY, KEY_ID, NOW, label="Sig 1")


def test_http_date__naive_means_utc() -> None:
    assert http_date(datetime(2021, 4, 20, 2, 7, 55)) == "Tue, 20 Apr 2021 02:07:55 GMT"


# --- verification: what is accepted --------------------------------------------------------


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
@pytest.mark.parametrize(("method", "url", "body"), [("POST", INBOX, BODY), ("GET", OBJECT, b"")])
def test_verify__round_trip(scheme: str, method: str, url: str, body: bytes) -> None:
    result = verify(method, url, signed(scheme, method, url, body), body)
    assert result == VerificationResult(True, None, KEY_ID, scheme, result.message)  # type: ignore[arg-type]
    assert KEY_ID in result.message


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
@pytest.mark.parametrize("offset", [timedelta(hours=-11, minutes=-59), timedelta(hours=11)])
def test_verify__date_within_twelve_hours(scheme: str, offset: timedelta) -> None:
    assert verify("POST", INBOX, signed(scheme, at=NOW + offset), BODY).ok


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_verify__path_and_host_header_instead_of_url(scheme: str) -> None:
    headers = signed(scheme, "GET", OBJECT, b"")
    headers["Host"] = "gand.example"
    assert verify("GET", "/bricks/42?page=2", headers, b"").ok


def test_verify__headers_as_pairs_in_any_case_and_multiple_lines() -> None:
    headers = signed("cavage")
    pairs = [(name.upper(), value) for name, value in headers.items()]
    assert verify("POST", INBOX, pairs, BODY).ok
    pairs = [(name.lower(), value) for name, value in headers.items()]
    pairs.append(("accept", "application/activity+json"))
    pairs.append(("accept", "application/ld+json"))
    assert verify("POST", INBOX, pairs, BODY).ok


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_verify__starlette_and_httpx_headers(scheme: str) -> None:
    raw = [(name.lower().encode(), value.encode()) for name, value in signed(scheme).items()]
    assert verify("POST", INBOX, StarletteHeaders(raw=raw), BODY).ok
    assert verify("POST", INBOX, httpx.Headers(signed(scheme)), BODY).ok


def test_verify__cavage_in_authorization_header() -> None:
    headers = signed("cavage")
    headers["Authorization"] = "Signature " + headers.pop("Signature")
    assert verify("POST", INBOX, headers, BODY).ok


def test_verify__cavage_with_buggy_signature_prefix() -> None:
    headers = signed("cavage")
    headers["Signature"] = "Signature " + headers["Signature"]
    assert verify("POST", INBOX, headers, BODY).ok


def test_verify__cavage_request_target_without_query_like_old_mastodon() -> None:
    headers = {"Host": "gand.example", "Date": http_date(NOW)}
    headers = cavage_headers(
        "GET", OBJECT, headers, "(request-target) host date", path="/bricks/42"
    )
    assert verify("GET", OBJECT, headers, b"").ok


def test_verify__cavage_hs2019_with_rsa_created_and_expires() -> None:
    created, expires = int(NOW.timestamp()) - 60, int(NOW.timestamp()) + 300
    headers = {"Host": "gand.example", "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers(
        "POST",
        INBOX,
        headers,
        "(request-target) (created) (expires) host digest",
        params=f'algorithm="hs2019",created={created},expires={expires}',
    )
    assert verify("POST", INBOX, headers, BODY).ok


def test_verify__cavage_hs2019_with_ed25519() -> None:
    headers = {"Host": "gand.example", "Date": http_date(NOW), "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers(
        "POST",
        INBOX,
        headers,
        "(request-target) host date digest",
        ED25519_KEY,
        'algorithm="hs2019"',
    )
    result = verify("POST", INBOX, headers, BODY, resolve_key=lambda _: ED25519_KEY.public_key())
    assert result.ok, result.message


def test_verify__rfc9421_authority_and_path_instead_of_target_uri() -> None:
    headers = rfc9421_headers(
        "GET", OBJECT, {}, ["@method", "@authority", "@path", "@query"], rfc9421_params()
    )
    assert verify("GET", OBJECT, headers, b"").ok


def test_verify__rfc9421_every_derived_component() -> None:
    components = ["@method", "@target-uri", "@authority", "@scheme", "@request-target"]
    components += ["@path", "@query", "content-digest", "content-type"]
    base_headers = {"Content-Type": "application/activity+json"}
    base_headers["Content-Digest"] = content_digest_header(BODY)
    headers = rfc9421_headers("POST", OBJECT, base_headers, components, rfc9421_params())
    base = rfc9421_signature_base("POST", OBJECT, headers).decode()
    assert '"@scheme": https\n' in base
    assert '"@request-target": /bricks/42?page=2\n' in base
    assert verify("POST", OBJECT, headers, BODY).ok


def test_verify__rfc9421_several_labels_one_good() -> None:
    headers = signed("rfc9421")
    good_input, good_signature = headers["Signature-Input"], headers["Signature"]
    bad = sign_rfc9421("POST", INBOX, {}, BODY, OTHER_KEY, KEY_ID, NOW, label="other")
    headers["Signature-Input"] = f"{bad['Signature-Input']}, {good_input}"
    headers["Signature"] = f"{bad['Signature']}, {good_signature}"
    assert verify("POST", INBOX, headers, BODY).ok


async def test_averify_request__async_resolver() -> None:
    async def resolve_async(key_id: str) -> PublicKey | None:
        return resolve(key_id)

    for scheme in ("cavage", "rfc9421"):
        result = await averify_request(
            "POST", INBOX, signed(scheme), BODY, resolve_key=resolve_async, now=NOW
        )
        assert result.ok, result.message


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_signature_key_ids__tells_which_keys_to_prefetch(scheme: str) -> None:
    assert signature_key_ids(signed(scheme)) == [KEY_ID]
    assert signature_key_ids({}) == []
    assert signature_key_ids({"Signature-Input": "sig1=("}) == []


def test_verify__key_rotation_invalid_then_refetched_key() -> None:
    headers = signed("cavage")
    stale = verify("POST", INBOX, headers, BODY, resolve_key=lambda _: OTHER_KEY.public_key())
    assert (stale.ok, stale.reason, stale.key_id) == (False, "invalidSignature", KEY_ID)
    fresh = {stale.key_id: ACTOR_KEY.public_key()}
    assert verify("POST", INBOX, headers, BODY, resolve_key=fresh.get).ok


# --- verification: every rejection -----------------------------------------------------------


def test_reject__no_signature() -> None:
    result = verify("POST", INBOX, {"Date": http_date(NOW)}, BODY)
    assert result == VerificationResult(False, "noSignature", None, None, result.message)


@pytest.mark.parametrize(
    "header",
    [
        'keyId="x",signature=',
        'keyId="x" signature="AAAA"',
        'algorithm="rsa-sha256",signature="AAAA"',
        f'keyId="{KEY_ID}",keyId="{KEY_ID}",signature="AAAA"',
        f'keyId="{KEY_ID}",signature="%%%"',
    ],
)
def test_reject__malformed_cavage(header: str) -> None:
    headers = {**signed("cavage"), "Signature": header}
    assert verify("POST", INBOX, headers, BODY).reason == "malformedSignature"


@pytest.mark.parametrize(
    ("signature_input", "signature"),
    [
        ("sig1=(", "sig1=:AAAA:"),
        ('sig1=("@method"', "sig1=:AAAA:"),
        (f'sig1=("@method" "@target-uri");created=1736942400;keyid="{KEY_ID}"', "sig1=AAAA"),
        (f'sig1=("@method" "@target-uri");created=1736942400;keyid="{KEY_ID}"', "sig1=:%%:"),
        ('sig1=("@method" "@target-uri");created=1736942400', "sig1=:AAAA:"),
        (f'sig1=("@method" "@target-uri");created=1736942400;keyid="{KEY_ID}"', "sig2=:AAAA:"),
        (f'sig1="@method";created=1736942400;keyid="{KEY_ID}"', "sig1=:AAAA:"),
        (f"sig1=(@method);created=1736942400;keyid={KEY_ID!r}", "sig1=:AAAA:"),
    ],
)
def test_reject__malformed_rfc9421(signature_input: str, signature: str) -> None:
    headers = {"Signature-Input": signature_input, "Signature": signature}
    result = verify("GET", OBJECT, headers, b"")
    assert (result.reason, result.scheme) == ("malformedSignature", "rfc9421")


def test_reject__signature_input_without_signature() -> None:
    headers = signed("rfc9421")
    del headers["Signature"]
    assert verify("POST", INBOX, headers, BODY).reason == "malformedSignature"


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_reject__wrong_digest_header(scheme: str) -> None:
    headers = signed(scheme)
    if scheme == "cavage":
        headers["Digest"] = sha256_digest_header(b"something else")
    else:
        headers["Content-Digest"] = content_digest_header(b"something else")
    assert verify("POST", INBOX, headers, BODY).reason == "digestMismatch"


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_reject__tampered_body(scheme: str) -> None:
    result = verify("POST", INBOX, signed(scheme), BODY.replace(b"Create", b"Delete"))
    assert result.reason == "digestMismatch"
    assert "computed" in result.message


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
@pytest.mark.parametrize("offset", [timedelta(hours=-13), timedelta(hours=13)])
def test_reject__stale_date(scheme: str, offset: timedelta) -> None:
    result = verify("POST", INBOX, signed(scheme, at=NOW + offset), BODY)
    assert (result.reason, result.key_id) == ("staleDate", KEY_ID)
    assert ("old" if offset < timedelta(0) else "future") in result.message


def test_reject__stale_date_with_a_custom_skew() -> None:
    headers = signed("cavage", at=NOW - timedelta(minutes=10))
    result = verify("POST", INBOX, headers, BODY, max_skew=timedelta(minutes=5))
    assert result.reason == "staleDate"


def test_reject__unparseable_date() -> None:
    headers = {"Host": "gand.example", "Date": "yesterday", "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers("POST", INBOX, headers, "(request-target) host date digest")
    assert verify("POST", INBOX, headers, BODY).reason == "malformedSignature"


def test_reject__cavage_missing_host_on_get() -> None:
    headers = cavage_headers("GET", OBJECT, {"Date": http_date(NOW)}, "(request-target) date")
    result = verify("GET", OBJECT, headers, b"")
    assert result.reason == "missingRequiredHeader"
    assert "Host" in result.message


def test_reject__cavage_missing_digest_on_post() -> None:
    headers = {"Host": "gand.example", "Date": http_date(NOW), "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers("POST", INBOX, headers, "(request-target) host date")
    result = verify("POST", INBOX, headers, BODY)
    assert result.reason == "missingRequiredHeader"
    assert "Digest" in result.message


def test_reject__cavage_date_not_signed() -> None:
    headers = {"Host": "gand.example", "Date": http_date(NOW), "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers("POST", INBOX, headers, "(request-target) host digest")
    assert verify("POST", INBOX, headers, BODY).reason == "missingRequiredHeader"


def test_reject__cavage_signed_header_absent() -> None:
    headers = {"Host": "gand.example", "Date": http_date(NOW), "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers(
        "POST", INBOX, {**headers, "Accept": "*/*"}, "(request-target) host date digest accept"
    )
    del headers["Accept"]
    assert verify("POST", INBOX, headers, BODY).reason == "missingRequiredHeader"


def test_reject__rfc9421_missing_content_digest_on_post() -> None:
    headers = rfc9421_headers("POST", INBOX, {}, ["@method", "@target-uri"], rfc9421_params())
    result = verify("POST", INBOX, headers, BODY)
    assert result.reason == "missingRequiredHeader"


@pytest.mark.parametrize(
    ("components", "params"),
    [
        (["@target-uri"], rfc9421_params()),
        (["@method", "@path"], rfc9421_params()),
        (["@method", "@target-uri"], {"keyid": KEY_ID}),
    ],
)
def test_reject__rfc9421_weak_coverage(components: list[str], params: sf.Parameters) -> None:
    headers = rfc9421_headers("GET", OBJECT, {}, components, params)
    assert verify("GET", OBJECT, headers, b"").reason == "missingRequiredHeader"


def test_reject__rfc9421_covered_header_absent() -> None:
    components = ["@method", "@target-uri", "x-missing"]
    headers = rfc9421_headers("GET", OBJECT, {"X-Missing": "1"}, components, rfc9421_params())
    del headers["X-Missing"]
    assert verify("GET", OBJECT, headers, b"").reason == "missingRequiredHeader"


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_reject__wrong_key(scheme: str) -> None:
    headers = signed(scheme, key=OTHER_KEY)
    result = verify("POST", INBOX, headers, BODY)
    assert (result.ok, result.reason, result.key_id, result.scheme) == (
        False,
        "invalidSignature",
        KEY_ID,
        scheme,
    )


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_reject__signed_for_another_url(scheme: str) -> None:
    headers = signed(scheme, "GET", OBJECT, b"")
    assert verify("GET", OBJECT.replace("42", "43"), headers, b"").reason == "invalidSignature"


def test_reject__cavage_key_type_does_not_fit_algorithm() -> None:
    headers = signed("cavage")
    result = verify("POST", INBOX, headers, BODY, resolve_key=lambda _: ED25519_KEY.public_key())
    assert result.reason == "invalidSignature"


def test_reject__cavage_unsupported_algorithm() -> None:
    headers = {"Host": "gand.example", "Date": http_date(NOW), "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers(
        "POST",
        INBOX,
        headers,
        "(request-target) host date digest",
        params='algorithm="hmac-sha256"',
    )
    assert verify("POST", INBOX, headers, BODY).reason == "unsupportedAlgorithm"


def test_reject__rfc9421_unsupported_algorithm() -> None:
    params = rfc9421_params(alg="ecdsa-p256-sha256")
    headers = rfc9421_headers("GET", OBJECT, {}, ["@method", "@target-uri"], params)
    assert verify("GET", OBJECT, headers, b"").reason == "unsupportedAlgorithm"


def test_reject__unsupported_key_type() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
    result = verify("POST", INBOX, signed("rfc9421"), BODY, resolve_key=lambda _: ec_key)
    assert result.reason == "unsupportedAlgorithm"


def test_reject__cavage_expired() -> None:
    created, expires = int(NOW.timestamp()) - 600, int(NOW.timestamp()) - 1
    headers = {"Host": "gand.example", "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers(
        "POST",
        INBOX,
        headers,
        "(request-target) (created) (expires) host digest",
        params=f'algorithm="hs2019",created={created},expires={expires}',
    )
    result = verify("POST", INBOX, headers, BODY)
    assert result.reason == "staleDate"
    assert "expired" in result.message


def test_reject__rfc9421_expired() -> None:
    params = rfc9421_params(NOW - timedelta(minutes=10), expires=int(NOW.timestamp()) - 1)
    headers = rfc9421_headers("GET", OBJECT, {}, ["@method", "@target-uri"], params)
    result = verify("GET", OBJECT, headers, b"")
    assert result.reason == "staleDate"
    assert "expired" in result.message


def test_reject__created_pseudo_header_with_rsa_sha256() -> None:
    created = int(NOW.timestamp())
    headers = {"Host": "gand.example", "Date": http_date(NOW), "Digest": sha256_digest_header(BODY)}
    headers = cavage_headers(
        "POST",
        INBOX,
        headers,
        "(request-target) (created) host date digest",
        params=f'algorithm="rsa-sha256",created={created}',
    )
    assert verify("POST", INBOX, headers, BODY).reason == "malformedSignature"


@pytest.mark.parametrize("scheme", ["cavage", "rfc9421"])
def test_reject__key_not_found(scheme: str) -> None:
    result = verify("POST", INBOX, signed(scheme), BODY, resolve_key=lambda _: None)
    assert (result.reason, result.key_id) == ("keyFetchError", KEY_ID)


def test_reject__resolver_raises() -> None:
    def broken(key_id: str) -> PublicKey | None:
        raise ConnectionError("gand.example is down")

    result = verify("POST", INBOX, signed("cavage"), BODY, resolve_key=broken)
    assert result.reason == "keyFetchError"
    assert "gand.example is down" in result.message


# --- module hygiene ---------------------------------------------------------------------------

PURE_MODULES = ("signatures", "_signing", "_http_message", "_structured_fields")
FORBIDDEN = ("httpx", "starlette", "sqlalchemy")


def test_public_names_are_declared() -> None:
    for name in signatures.__all__:
        assert hasattr(signatures, name), name


def test_signatures_module_imports_no_io_library() -> None:
    package = Path(signatures.__file__).parent
    for module in PURE_MODULES:
        tree = ast.parse((package / f"{module}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module == "node.activitypub":
                imported = [f"node.activitypub.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            else:
                continue
            for name in imported:
                assert name.split(".")[0] not in FORBIDDEN, f"{module} imports {name}"
                if name.startswith("node."):
                    assert name.removeprefix("node.activitypub.") in PURE_MODULES, (
                        f"{module} imports {name}, which is not known to be pure"
                    )


def test_signatures_module_loads_no_io_library_at_run_time() -> None:
    # Stub the packages so that whatever node/__init__.py imports does not count.
    package = Path(signatures.__file__).parent
    code = f"""
import sys, types
for name, path in (("node", {str(package.parent)!r}), ("node.activitypub", {str(package)!r})):
    module = types.ModuleType(name)
    module.__path__ = [path]
    sys.modules[name] = module
import node.activitypub.signatures
print(",".join(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
