"""HTTP signatures for server-to-server requests: draft-cavage-12 and RFC 9421.

A pure module: it takes a method, a URL (or a path, the host then comes from the
``Host`` header), headers, the body bytes, keys and ``now``, and returns headers to add
(signing) or a ``VerificationResult`` that says why a request failed (verifying). It does
no I/O: ``verify_request`` asks a caller-supplied ``resolve_key(key_id)`` for the public
key, and ``averify_request`` awaits an async one.

Strictness follows Mastodon (``app/lib/signed_request.rb``): the signature date must be
within ``max_skew`` of ``now``, ``host`` must be signed on GET, the body digest on POST,
and RFC 9421 signatures must carry ``created``, ``@method`` and ``@target-uri`` (or
``@authority`` with ``@path``).

Key rotation: a ``reason == "invalidSignature"`` result means the key did not verify;
the caller may refetch the key for ``result.key_id`` and call again once.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from node.activitypub import _structured_fields as sf
from node.activitypub._http_message import (
    DigestCheck,
    FailureReason,
    HeaderFields,
    HeadersInput,
    Reject,
    RequestTarget,
    carries_body,
    check_content_digest,
    check_digest,
    content_digest_header,
    encode,
    http_date,
    request_target,
    sha256_digest_header,
    signature_base,
    utc,
)
from node.activitypub._signing import PrivateKey, rfc9421_signature_base, sign_cavage, sign_rfc9421

__all__ = [
    "DEFAULT_MAX_SKEW",
    "AsyncKeyResolver",
    "DigestCheck",
    "FailureReason",
    "HeadersInput",
    "KeyResolver",
    "PrivateKey",
    "PublicKey",
    "Scheme",
    "VerificationResult",
    "averify_request",
    "check_content_digest",
    "check_digest",
    "content_digest_header",
    "http_date",
    "rfc9421_signature_base",
    "sha256_digest_header",
    "sign_cavage",
    "sign_rfc9421",
    "signature_key_ids",
    "verify_request",
]

PublicKey: TypeAlias = rsa.RSAPublicKey | ed25519.Ed25519PublicKey
KeyResolver: TypeAlias = Callable[[str], PublicKey | None]
AsyncKeyResolver: TypeAlias = Callable[[str], Awaitable[PublicKey | None]]
Scheme: TypeAlias = Literal["cavage", "rfc9421"]

DEFAULT_MAX_SKEW = timedelta(hours=12)

_RFC9421_ALGS = ("rsa-v1_5-sha256", "rsa-pss-sha512", "ed25519")
_CAVAGE_ALGS = ("rsa-sha256", "hs2019")
_MAX_LABELS = 4  # RFC 9421 signatures looked at per request; each may cost a key lookup
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_CAVAGE_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|({_TOKEN}))\s*')


@dataclass(frozen=True)
class VerificationResult:
    """The outcome of ``verify_request``: ``ok``, or the ``reason`` it failed and why."""

    ok: bool
    reason: FailureReason | None
    key_id: str | None
    scheme: Scheme | None
    message: str


# --- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Candidate:
    """A signature that passed every check but the cryptographic one."""

    scheme: Scheme
    key_id: str
    algorithm: str | None  # as declared: cavage "rsa-sha256"/"hs2019", RFC 9421 alg or None
    signature: bytes
    messages: tuple[bytes, ...]  # the signed bytes; more than one for legacy variants

    def failure(self, reason: FailureReason, message: str) -> VerificationResult:
        return VerificationResult(False, reason, self.key_id, self.scheme, message)

    def check(self, key: object) -> VerificationResult:
        if key is None:
            return self.failure("keyFetchError", f"no public key found for {self.key_id}")
        if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            return self.failure(
                "unsupportedAlgorithm", f"key {self.key_id} is a {type(key).__name__}"
            )
        algorithms = self._algorithms(key)
        for algorithm in algorithms:
            for message in self.messages:
                if _verify(algorithm, key, self.signature, message):
                    return VerificationResult(
                        True,
                        None,
                        self.key_id,
                        self.scheme,
                        f"{self.scheme} signature by {self.key_id} verified ({algorithm})",
                    )
        return self.failure(
            "invalidSignature",
            f"{self.scheme} signature does not verify with key {self.key_id} "
            f"(tried {', '.join(algorithms) or 'no algorithm fitting the key'}); "
            "the key may have been rotated",
        )

    def _algorithms(self, key: PublicKey) -> tuple[str, ...]:
        is_rsa = isinstance(key, rsa.RSAPublicKey)
        if self.scheme == "cavage":
            if self.algorithm == "rsa-sha256":
                return ("rsa-v1_5-sha256",) if is_rsa else ()
            return ("rsa-v1_5-sha256",) if is_rsa else ("ed25519",)  # hs2019
        if self.algorithm is not None:
            return (self.algorithm,)
        return ("rsa-v1_5-sha256", "rsa-pss-sha512") if is_rsa else ("ed25519",)


def _verify(algorithm: str, key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if algorithm == "rsa-v1_5-sha256":
                key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
                return True
            if algorithm == "rsa-pss-sha512":
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=64)
                key.verify(signature, message, pss, hashes.SHA512())
                return True
        elif algorithm == "ed25519":
            key.verify(signature, message)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


def _check_time(
    created: datetime, expires: datetime | None, now: datetime, max_skew: timedelta
) -> None:
    if abs(now - created) > max_skew:
        direction = "in the future" if created > now else "old"
        raise Reject(
            "staleDate",
            f"signature date {created.isoformat()} is {abs(now - created)} {direction}; "
            f"at most {max_skew} is accepted",
        )
    if expires is not None and now > expires:
        raise Reject("staleDate", f"signature expired at {expires.isoformat()}")


def _epoch(value: object, what: str) -> datetime:
    try:
        seconds = float(value) if isinstance(value, str) else value
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(what)
        return datetime.fromtimestamp(seconds, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        raise Reject("malformedSignature", f"{what} {value!r} is not a Unix time") from None


def _parse_cavage(raw: str) -> dict[str, str]:
    text = raw.strip()
    if text[:10].lower() == "signature ":  # old node-http-signature added this prefix
        text = text[10:]
    params: dict[str, str] = {}
    pos = 0
    while True:
        match = _CAVAGE_PARAM.match(text, pos)
        if match is None:
            raise Reject("malformedSignature", f"cannot parse Signature parameters: {raw!r}")
        name = match.group(1).lower()
        if name in params:
            raise Reject("malformedSignature", f"Signature parameter {name!r} appears twice")
        token, quoted = match.group(3), match.group(2)
        params[name] = token if token is not None else re.sub(r"\\(.)", r"\1", quoted)
        pos = match.end()
        if pos == len(text):
            return params
        if text[pos] != ",":
            raise Reject("malformedSignature", f"cannot parse Signature parameters: {raw!r}")
        pos += 1


def _cavage_candidate(
    method: str,
    target: RequestTarget,
    fields: HeaderFields,
    raw: str,
    body: bytes,
    now: datetime,
    max_skew: timedelta,
    needs_digest: bool,
) -> _Candidate:
    params = _parse_cavage(raw)
    key_id, signature_b64 = params.get("keyid"), params.get("signature")
    if not key_id or not signature_b64:
        raise Reject("malformedSignature", "keyId and signature are required")
    try:
        signature = base64.b64decode(signature_b64, validate=True)
    except binascii.Error:
        raise Reject("malformedSignature", "signature is not valid base64") from None
    algorithm = params.get("algorithm", "hs2019").lower()
    if algorithm not in _CAVAGE_ALGS:
        raise Reject("unsupportedAlgorithm", f"algorithm {algorithm!r}: only rsa-sha256 and hs2019")
    signed = params.get("headers", "(created)" if algorithm == "hs2019" else "date")
    names = signed.lower().split()
    for pseudo in ("(created)", "(expires)"):
        if pseudo in names and algorithm != "hs2019":
            raise Reject("malformedSignature", f"{pseudo} cannot be signed with rsa-sha256")
        if pseudo in names and pseudo[1:-1] not in params:
            raise Reject("malformedSignature", f"{pseudo} is signed but its parameter is missing")
    if "date" not in names and "(created)" not in names:
        raise Reject("missingRequiredHeader", "the Date header or (created) must be signed")
    if "(request-target)" not in names and "digest" not in names:
        raise Reject("missingRequiredHeader", "(request-target) or Digest must be signed")
    if method.upper() in ("GET", "HEAD") and "host" not in names:
        raise Reject("missingRequiredHeader", f"the Host header must be signed on {method}")
    if needs_digest and "digest" not in names:
        raise Reject("missingRequiredHeader", "the Digest header must be signed with a body")

    if algorithm == "hs2019" and "created" in params:
        created = _epoch(params["created"], "created")
    else:
        date = fields.get("date")
        if date is None:
            raise Reject("missingRequiredHeader", "the Date header is missing")
        try:
            created = utc(parsedate_to_datetime(date))
        except (TypeError, ValueError, IndexError, OverflowError):
            raise Reject("malformedSignature", f"Date {date!r} is not an HTTP date") from None
    expires = _epoch(params["expires"], "expires") if "expires" in params else None
    _check_time(created, expires, now, max_skew)

    if "digest" in names:
        digest = fields.get("digest")
        if digest is None:
            raise Reject("missingRequiredHeader", "Digest is signed but the header is missing")
        checked = check_digest(digest, body)
        if not checked.ok:
            raise Reject("digestMismatch", checked.message)

    def signing_string(path_and_query: str) -> bytes:
        lines = []
        for name in names:
            if name == "(request-target)":
                value: str | None = f"{method.lower()} {path_and_query}"
            elif name in ("(created)", "(expires)"):
                value = params[name[1:-1]]
            elif name == "host":
                value = fields.get("host") or target.authority
            else:
                value = fields.get(name)
            if value is None:
                raise Reject("missingRequiredHeader", f"signed header {name!r} is missing")
            lines.append(f"{name}: {value}")
        return encode("\n".join(lines))

    messages = [signing_string(target.path_and_query)]
    if target.query and "(request-target)" in names:
        # Mastodon before 4.3 left the query out of (request-target); Mastodon accepts both.
        messages.append(signing_string(target.path))
    return _Candidate("cavage", key_id, algorithm, signature, tuple(messages))


def _rfc9421_candidate(
    method: str,
    target: RequestTarget,
    fields: HeaderFields,
    member: sf.Item | sf.InnerList,
    signature_member: sf.Item | sf.InnerList,
    body: bytes,
    now: datetime,
    max_skew: timedelta,
    needs_digest: bool,
) -> _Candidate:
    if not isinstance(member, sf.InnerList):
        raise Reject("malformedSignature", "a Signature-Input member must be an inner list")
    if not isinstance(signature_member, sf.Item) or not isinstance(signature_member.value, bytes):
        raise Reject("malformedSignature", "a Signature member must be a byte sequence")
    params = member.params
    key_id = params.get("keyid")
    if not isinstance(key_id, str) or not key_id:
        raise Reject("malformedSignature", "the keyid parameter is required")
    alg = params.get("alg")
    if alg is not None and (not isinstance(alg, str) or alg not in _RFC9421_ALGS):
        raise Reject(
            "unsupportedAlgorithm", f"alg {alg!r}: supported are {', '.join(_RFC9421_ALGS)}"
        )
    if "created" not in params:
        raise Reject("missingRequiredHeader", "the created parameter is required")
    covered = {item.value for item in member.items if isinstance(item.value, str)}
    if "@method" not in covered:
        raise Reject("missingRequiredHeader", "@method must be covered")
    if "@target-uri" not in covered and not {"@authority", "@path"} <= covered:
        raise Reject(
            "missingRequiredHeader", "@target-uri (or @authority and @path) must be covered"
        )
    if needs_digest and "content-digest" not in covered:
        raise Reject("missingRequiredHeader", "Content-Digest must be covered with a body")

    created = _epoch(params["created"], "created")
    expires = _epoch(params["expires"], "expires") if "expires" in params else None
    _check_time(created, expires, now, max_skew)

    if "content-digest" in covered:
        digest = fields.get("content-digest")
        if digest is None:
            raise Reject("missingRequiredHeader", "Content-Digest is covered but missing")
        checked = check_content_digest(digest, body)
        if not checked.ok:
            raise Reject("digestMismatch", checked.message)

    base = signature_base(method, target, fields, member)
    return _Candidate("rfc9421", key_id, alg, signature_member.value, (base,))


def _prepare(
    method: str,
    url: str,
    headers: HeadersInput,
    body: bytes | None,
    now: datetime,
    max_skew: timedelta,
    require_digest_for_body: bool,
) -> VerificationResult | list[_Candidate]:
    """Every check that needs no key: a failure, or the signatures left to verify."""
    fields = HeaderFields(headers)
    target = request_target(url, fields)
    now = utc(now)
    payload = body or b""
    needs_digest = require_digest_for_body and carries_body(method, body)
    signature_input = fields.get("signature-input")
    if signature_input is not None:
        return _prepare_rfc9421(
            method, target, fields, signature_input, payload, now, max_skew, needs_digest
        )
    raw = _cavage_header(fields)
    if raw is None:
        return VerificationResult(
            False, "noSignature", None, None, "the request has no Signature or Signature-Input"
        )
    try:
        candidate = _cavage_candidate(
            method, target, fields, raw, payload, now, max_skew, needs_digest
        )
    except Reject as exc:
        key_id = _cavage_key_id(raw)
        return VerificationResult(False, exc.reason, key_id, "cavage", exc.message)
    return [candidate]


def _cavage_header(fields: HeaderFields) -> str | None:
    raw = fields.get("signature")
    if raw is None:
        authorization = fields.get("authorization") or ""
        if authorization[:10].lower() == "signature ":
            raw = authorization[10:]
    return raw


def _cavage_key_id(raw: str) -> str | None:
    try:
        return _parse_cavage(raw).get("keyid")
    except Reject:
        return None


def _prepare_rfc9421(
    method: str,
    target: RequestTarget,
    fields: HeaderFields,
    signature_input: str,
    body: bytes,
    now: datetime,
    max_skew: timedelta,
    needs_digest: bool,
) -> VerificationResult | list[_Candidate]:
    def fail(reason: FailureReason, message: str, key_id: str | None = None) -> VerificationResult:
        return VerificationResult(False, reason, key_id, "rfc9421", message)

    signature_header = fields.get("signature")
    if signature_header is None:
        return fail("malformedSignature", "Signature-Input without a Signature header")
    try:
        inputs = sf.parse_dictionary(signature_input)
        signatures = sf.parse_dictionary(signature_header)
    except sf.StructuredFieldError as exc:
        return fail("malformedSignature", f"not a structured dictionary: {exc}")
    candidates: list[_Candidate] = []
    failures: list[VerificationResult] = []
    for label, member in list(inputs.items())[:_MAX_LABELS]:
        if label not in signatures:
            continue
        try:
            candidates.append(
                _rfc9421_candidate(
                    method,
                    target,
                    fields,
                    member,
                    signatures[label],
                    body,
                    now,
                    max_skew,
                    needs_digest,
                )
            )
        except Reject as exc:
            key_id = member.params.get("keyid")
            failures.append(
                fail(
                    exc.reason,
                    f"{label}: {exc.message}",
                    key_id if isinstance(key_id, str) else None,
                )
            )
    if candidates:
        return candidates
    if failures:
        return failures[0]
    return fail("malformedSignature", "no label appears in both Signature-Input and Signature")


def signature_key_ids(headers: HeadersInput) -> list[str]:
    """The key ids a request's signatures name, to fetch keys before ``verify_request``."""
    fields = HeaderFields(headers)
    signature_input = fields.get("signature-input")
    if signature_input is None:
        raw = _cavage_header(fields)
        key_id = _cavage_key_id(raw) if raw is not None else None
        return [key_id] if key_id else []
    try:
        inputs = sf.parse_dictionary(signature_input)
    except sf.StructuredFieldError:
        return []
    key_ids: list[str] = []
    for member in list(inputs.values())[:_MAX_LABELS]:
        named = member.params.get("keyid")
        if isinstance(named, str) and named and named not in key_ids:
            key_ids.append(named)
    return key_ids


def _key_error(candidate: _Candidate, exc: Exception) -> VerificationResult:
    return candidate.failure(
        "keyFetchError", f"fetching key {candidate.key_id} failed: {type(exc).__name__}: {exc}"
    )


def verify_request(
    method: str,
    url: str,
    headers: HeadersInput,
    body: bytes | None,
    *,
    resolve_key: KeyResolver,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    require_digest_for_body: bool = True,
) -> VerificationResult:
    """Verify a request signed with draft-cavage-12 or RFC 9421 (``Signature-Input``).

    ``url`` is the URL the client asked for (or its path; the host then comes from the
    ``Host`` header and the scheme is https). ``resolve_key(key_id)`` returns the public
    key or ``None``; an exception it raises becomes ``keyFetchError``.
    """
    prepared = _prepare(method, url, headers, body, now, max_skew, require_digest_for_body)
    if isinstance(prepared, VerificationResult):
        return prepared
    failures: list[VerificationResult] = []
    for candidate in prepared:
        try:
            key = resolve_key(candidate.key_id)
        except Exception as exc:  # the resolver's failure is the sender's problem to know
            result = _key_error(candidate, exc)
        else:
            result = candidate.check(key)
        if result.ok:
            return result
        failures.append(result)
    return failures[0]


async def averify_request(
    method: str,
    url: str,
    headers: HeadersInput,
    body: bytes | None,
    *,
    resolve_key: AsyncKeyResolver,
    now: datetime,
    max_skew: timedelta = DEFAULT_MAX_SKEW,
    require_digest_for_body: bool = True,
) -> VerificationResult:
    """``verify_request`` with an async ``resolve_key``."""
    prepared = _prepare(method, url, headers, body, now, max_skew, require_digest_for_body)
    if isinstance(prepared, VerificationResult):
        return prepared
    failures: list[VerificationResult] = []
    for candidate in prepared:
        try:
            key = await resolve_key(candidate.key_id)
        except Exception as exc:  # the resolver's failure is the sender's problem to know
            result = _key_error(candidate, exc)
        else:
            result = candidate.check(key)
        if result.ok:
            return result
        failures.append(result)
    return failures[0]
