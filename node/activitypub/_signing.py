"""Signing requests: draft-cavage-12 and RFC 9421 (pure; ``node.activitypub.signatures``
offers these with the verification)."""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from node.activitypub import _structured_fields as sf
from node.activitypub._http_message import (
    HeaderFields,
    HeadersInput,
    Reject,
    b64,
    carries_body,
    content_digest_header,
    http_date,
    request_target,
    sha256_digest_header,
    signature_base,
    utc,
)

__all__ = ["PrivateKey", "rfc9421_signature_base", "sign_cavage", "sign_rfc9421"]

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sign_cavage(
    method: str,
    url: str,
    headers: HeadersInput | None,
    body: bytes | None,
    private_key: rsa.RSAPrivateKey,
    key_id: str,
    now: datetime,
) -> dict[str, str]:
    """Sign as Mastodon does (draft-cavage-12, rsa-sha256); return the headers to set.

    Returns ``Date``, ``Host``, ``Digest`` (POST or a non-empty body) and ``Signature``
    over ``(request-target) host date [digest]``. The request-target keeps the query.
    """
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise TypeError("draft-cavage signing needs an RSA private key")
    fields = HeaderFields(headers)
    target = request_target(url, fields)
    added = {"Date": http_date(now), "Host": fields.get("host") or target.authority}
    names = ["(request-target)", "host", "date"]
    lines = [
        f"(request-target): {method.lower()} {target.path_and_query}",
        f"host: {added['Host']}",
        f"date: {added['Date']}",
    ]
    if carries_body(method, body):
        added["Digest"] = sha256_digest_header(body or b"")
        names.append("digest")
        lines.append(f"digest: {added['Digest']}")
    signature = private_key.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
    added["Signature"] = (
        f'keyId={_quoted(key_id)},algorithm="rsa-sha256",'
        f'headers="{" ".join(names)}",signature="{b64(signature)}"'
    )
    return added


def sign_rfc9421(
    method: str,
    url: str,
    headers: HeadersInput | None,
    body: bytes | None,
    private_key: PrivateKey,
    key_id: str,
    now: datetime,
    *,
    label: str = "sig1",
) -> dict[str, str]:
    """Sign with RFC 9421; return the headers to set.

    Returns ``Content-Digest`` (POST or a non-empty body), ``Signature-Input`` and
    ``Signature`` under ``label``, covering ``("@method" "@target-uri" ["content-digest"])``
    with ``created``, ``keyid`` and ``alg`` (``rsa-v1_5-sha256`` or ``ed25519``).
    """
    if isinstance(private_key, rsa.RSAPrivateKey):
        alg = "rsa-v1_5-sha256"
    elif isinstance(private_key, ed25519.Ed25519PrivateKey):
        alg = "ed25519"
    else:
        raise TypeError("RFC 9421 signing needs an RSA or Ed25519 private key")
    sf.parse_dictionary(f"{label}=?1")  # the label must be a structured-field key
    fields = HeaderFields(headers)
    target = request_target(url, fields)
    added: dict[str, str] = {}
    components = ["@method", "@target-uri"]
    if carries_body(method, body):
        added["Content-Digest"] = content_digest_header(body or b"")
        fields.replace("content-digest", added["Content-Digest"])
        components.append("content-digest")
    params: sf.Parameters = {"created": int(utc(now).timestamp()), "keyid": key_id, "alg": alg}
    covered = sf.InnerList(tuple(sf.Item(name) for name in components), params)
    base = signature_base(method, target, fields, covered)
    if isinstance(private_key, rsa.RSAPrivateKey):
        signature = private_key.sign(base, padding.PKCS1v15(), hashes.SHA256())
    else:
        signature = private_key.sign(base)
    added["Signature-Input"] = f"{label}={sf.serialize_inner_list(covered)}"
    added["Signature"] = f"{label}=:{b64(signature)}:"
    return added


def rfc9421_signature_base(
    method: str, url: str, headers: HeadersInput, *, label: str | None = None
) -> bytes:
    """The RFC 9421 signature base for ``label`` (default: the first label) of a request.

    For debugging and tests; raises ``ValueError`` when it cannot be built.
    """
    fields = HeaderFields(headers)
    try:
        inputs = sf.parse_dictionary(fields.get("signature-input") or "")
    except sf.StructuredFieldError as exc:
        raise ValueError(f"Signature-Input is not a structured dictionary: {exc}") from exc
    chosen = label if label is not None else next(iter(inputs), None)
    member = inputs.get(chosen) if chosen is not None else None
    if not isinstance(member, sf.InnerList):
        raise ValueError(f"Signature-Input has no inner list labelled {chosen!r}")
    try:
        return signature_base(method, request_target(url, fields), fields, member)
    except Reject as exc:
        raise ValueError(exc.message) from exc
