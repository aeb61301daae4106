"""The specs' own examples: RFC 9421 appendix B.2 and draft-cavage-12 appendix C."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from node.activitypub import _structured_fields as sf
from node.activitypub.signatures import (
    PublicKey,
    VerificationResult,
    rfc9421_signature_base,
    verify_request,
)
from tests.activitypub._keys import (
    CAVAGE_TEST_KEY,
    RFC9421_ED25519_PUBLIC,
    RFC9421_RSA_PSS_PUBLIC,
)

HELLO = b'{"hello": "world"}'


def verify(method: str, url: str, headers: Any, body: bytes, **kwargs: Any) -> VerificationResult:
    return verify_request(method, url, headers, body, **kwargs)


# --- RFC 9421 appendix B.2 (test-request) ---------------------------------------------------

RFC9421_REQUEST = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": (
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHW"
        "XvJwew==:"
    ),
    "Content-Length": "18",
}
RFC9421_URL = "https://example.com/foo?param=Value&Pet=dog"
RFC9421_NOW = datetime.fromtimestamp(1618884473, UTC)


def unwrap(text: str) -> str:
    """Undo RFC 8792 single-slash line wrapping."""
    return re.sub(r"\\\n\s*", "", text.strip())


B21_INPUT = 'sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"'
B21_SIGNATURE = """sig-b21=:d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopem\\
  LJcWDy/lkbbHAve4cRAtx31Iq786U7it++wgGxbtRxf8Udx7zFZsckzXaJMkA7ChG\\
  52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR72rgFWhzx\\
  2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6\\
  UnCh8jYzuVG5WSb/QEVPnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3\\
  +7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==:"""
B22_INPUT = (
    'sig-b22=("@authority" "content-digest" "@query-param";name="Pet");created=1618884473;'
    'keyid="test-key-rsa-pss";tag="header-example"'
)
B22_SIGNATURE = """sig-b22=:LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQ\\
  EdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvuJyE5qH7KT8UCMkSowOB4+ECxCmT\\
  8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SA\\
  RYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd\\
  4je2U/lankenQ99PZfB4jY3I5rSV2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoK\\
  UqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==:"""
B23_INPUT = (
    'sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest" '
    '"content-length");created=1618884473;keyid="test-key-rsa-pss"'
)
B23_SIGNATURE = """sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yB\\
  iMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+qRpRRU5p2voTp768ZrCUb38K0fU\\
  xN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1\\
  pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9\\
  bpG6A9BmzhuzF8Eim5f8ui9eH8LZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5Z\\
  JzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:"""
B26_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");'
    'created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = """sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1\\
  u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"""


def rfc_request(signature_input: str, signature: str) -> dict[str, str]:
    return {**RFC9421_REQUEST, "Signature-Input": signature_input, "Signature": unwrap(signature)}


def rfc_signature(headers: Mapping[str, str]) -> bytes:
    member = next(iter(sf.parse_dictionary(headers["Signature"]).values()))
    assert isinstance(member, sf.Item) and isinstance(member.value, bytes)
    return member.value


def verify_pss(signature: bytes, base: bytes) -> None:
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
    RFC9421_RSA_PSS_PUBLIC.verify(signature, base, pss, hashes.SHA512())


def test_rfc9421_b21__minimal_signature_base_and_signature() -> None:
    headers = rfc_request(B21_INPUT, B21_SIGNATURE)
    base = rfc9421_signature_base("POST", RFC9421_URL, headers)
    assert base == (
        b'"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss"'
        b';nonce="b3k2pp5k7z-50gnwp.yemd"'
    )
    verify_pss(rfc_signature(headers), base)
    # It covers nothing, so our policy refuses it before fetching any key.
    result = verify(
        "POST",
        RFC9421_URL,
        headers,
        HELLO,
        resolve_key=lambda _: RFC9421_RSA_PSS_PUBLIC,
        now=RFC9421_NOW,
    )
    assert (result.reason, result.key_id) == ("missingRequiredHeader", "test-key-rsa-pss")


def test_rfc9421_b22__query_param_and_content_digest() -> None:
    headers = rfc_request(B22_INPUT, B22_SIGNATURE)
    base = rfc9421_signature_base("POST", RFC9421_URL, headers)
    assert base.decode() == "\n".join(
        [
            '"@authority": example.com',
            f'"content-digest": {RFC9421_REQUEST["Content-Digest"]}',
            '"@query-param";name="Pet": dog',
            f'"@signature-params": {B22_INPUT.removeprefix("sig-b22=")}',
        ]
    )
    verify_pss(rfc_signature(headers), base)


def test_rfc9421_b23__full_coverage_passes_verify_request() -> None:
    headers = rfc_request(B23_INPUT, B23_SIGNATURE)
    result = verify(
        "POST",
        RFC9421_URL,
        headers,
        HELLO,
        resolve_key=lambda key_id: RFC9421_RSA_PSS_PUBLIC if key_id == "test-key-rsa-pss" else None,
        now=RFC9421_NOW,
    )
    assert result.ok, result.message
    assert "rsa-pss-sha512" in result.message  # no alg: inferred from the key


def test_rfc9421_b26__ed25519() -> None:
    headers = rfc_request(B26_INPUT, B26_SIGNATURE)
    assert rfc9421_signature_base("POST", RFC9421_URL, headers).decode() == "\n".join(
        [
            '"date": Tue, 20 Apr 2021 02:07:55 GMT',
            '"@method": POST',
            '"@path": /foo',
            '"@authority": example.com',
            '"content-type": application/json',
            '"content-length": 18',
            f'"@signature-params": {B26_INPUT.removeprefix("sig-b26=")}',
        ]
    )
    options: dict[str, Any] = {"resolve_key": lambda _: RFC9421_ED25519_PUBLIC, "now": RFC9421_NOW}
    lenient = verify("POST", RFC9421_URL, headers, HELLO, require_digest_for_body=False, **options)
    assert lenient.ok, lenient.message
    strict = verify("POST", RFC9421_URL, headers, HELLO, **options)
    assert strict.reason == "missingRequiredHeader"
    assert "Content-Digest" in strict.message


# --- draft-cavage-http-signatures-12 appendix C ---------------------------------------------

CAVAGE_NOW = datetime(2014, 1, 5, 21, 31, 40, tzinfo=UTC)
CAVAGE_REQUEST = {
    "Host": "example.com",
    "Date": "Sun, 05 Jan 2014 21:31:40 GMT",
    "Content-Type": "application/json",
    "Digest": "SHA-256=X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=",
    "Content-Length": "18",
}
CAVAGE_URL = "https://example.com/foo?param=value&pet=dog"


def resolve_cavage_test_key(key_id: str) -> PublicKey | None:
    return CAVAGE_TEST_KEY.public_key() if key_id == "Test" else None


def test_draft_cavage_c2__basic_test() -> None:
    signature = (
        "qdx+H7PHHDZgy4y/Ahn9Tny9V3GP6YgBPyUXMmoxWtLbHpUnXS2mg2+SbrQDMCJypxBLSPQR2aAjn7ndmw2iicw3"
        "HMbe8VfEdKFYRqzic+efkb3nndiv/x1xSHDJWeSWkx3ButlYSuBskLu6kd9Fswtemr3lgdDEmn04swr2Os0="
    )
    headers = {
        **CAVAGE_REQUEST,
        "Signature": f'keyId="Test",algorithm="rsa-sha256",headers="(request-target) host date",'
        f'signature="{signature}"',
    }
    options: dict[str, Any] = {"resolve_key": resolve_cavage_test_key, "now": CAVAGE_NOW}
    lenient = verify("POST", CAVAGE_URL, headers, HELLO, require_digest_for_body=False, **options)
    assert lenient.ok, lenient.message
    strict = verify("POST", CAVAGE_URL, headers, HELLO, **options)
    assert strict.reason == "missingRequiredHeader"  # Mastodon wants the digest signed on POST


def test_draft_cavage_c1__default_test_signs_only_date_and_is_refused() -> None:
    signature = (
        "SjWJWbWN7i0wzBvtPl8rbASWz5xQW6mcJmn+ibttBqtifLN7Sazz6m79cNfwwb8DMJ5cou1s7uEGKKCs+FLEEaDV"
        "5lp7q25WqS+lavg7T8hc0GppauB6hbgEKTwblDHYGEtbGmtdHgVCk9SuS13F0hZ8FD0k/5OxEPXe5WozsbM="
    )
    message = b"date: Sun, 05 Jan 2014 21:31:40 GMT"
    raw = base64.b64decode(signature)
    CAVAGE_TEST_KEY.public_key().verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
    headers = {
        **CAVAGE_REQUEST,
        "Signature": f'keyId="Test",algorithm="rsa-sha256",signature="{signature}"',
    }
    result = verify(
        "POST",
        CAVAGE_URL,
        headers,
        HELLO,
        resolve_key=resolve_cavage_test_key,
        now=CAVAGE_NOW,
        require_digest_for_body=False,
    )
    assert result.reason == "missingRequiredHeader"
    assert "(request-target)" in result.message
