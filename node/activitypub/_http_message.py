"""The request model HTTP signatures work on: header fields, the target URL, digests, and
the RFC 9421 signature base. Private to ``node.activitypub.signatures``; pure.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal, TypeAlias
from urllib.parse import parse_qsl, quote, urlsplit

from node.activitypub import _structured_fields as sf

__all__ = [
    "DigestCheck",
    "FailureReason",
    "HeaderFields",
    "HeadersInput",
    "Reject",
    "RequestTarget",
    "b64",
    "carries_body",
    "check_content_digest",
    "check_digest",
    "content_digest_header",
    "encode",
    "http_date",
    "request_target",
    "sha256_digest_header",
    "signature_base",
    "utc",
]

HeadersInput: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
FailureReason: TypeAlias = Literal[
    "noSignature",
    "malformedSignature",
    "unsupportedAlgorithm",
    "missingRequiredHeader",
    "digestMismatch",
    "staleDate",
    "keyFetchError",
    "invalidSignature",
]

_DIGESTS: dict[str, Callable[[bytes], Any]] = {
    "sha-256": hashlib.sha256,
    "sha-512": hashlib.sha512,
}
_DEFAULT_PORTS = {"http": "80", "https": "443"}


class Reject(Exception):
    """A check failed; carries the reason and message a ``VerificationResult`` needs."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason: FailureReason = reason
        self.message = message


@dataclass(frozen=True)
class DigestCheck:
    """The outcome of comparing a ``Digest`` or ``Content-Digest`` header to a body."""

    ok: bool
    message: str


# --- header fields and target ---------------------------------------------------------------


class HeaderFields:
    """Header fields by lowercase name; several lines of one field are kept in order."""

    def __init__(self, headers: HeadersInput | None) -> None:
        self._fields: dict[str, list[str]] = {}
        if headers is None:
            return
        pairs: Iterable[tuple[Any, Any]]
        multi_items = getattr(headers, "multi_items", None)
        if callable(multi_items):
            pairs = multi_items()
        elif isinstance(headers, Mapping):
            pairs = headers.items()
        else:
            pairs = headers
        for name, value in pairs:
            self.add(_text(name), _text(value))

    def add(self, name: str, value: str) -> None:
        self._fields.setdefault(name.lower(), []).append(value)

    def replace(self, name: str, value: str) -> None:
        self._fields[name.lower()] = [value]

    def get(self, name: str) -> str | None:
        """The field value: each line trimmed, lines joined with ``", "`` (RFC 9421 §2.1)."""
        values = self._fields.get(name.lower())
        if values is None:
            return None
        return ", ".join(value.strip(" \t") for value in values)


def _text(value: Any) -> str:
    return value.decode("latin-1") if isinstance(value, bytes | bytearray) else str(value)


@dataclass(frozen=True)
class RequestTarget:
    """Where a request goes: the parts of its URL that signatures cover."""

    scheme: str
    authority: str
    path: str
    query: str | None  # without "?"; None when the URL has no "?"

    @property
    def path_and_query(self) -> str:
        return self.path if self.query is None else f"{self.path}?{self.query}"

    @property
    def uri(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path_and_query}"


def request_target(url: str, fields: HeaderFields) -> RequestTarget:
    """Split ``url``; a bare path takes its authority from ``Host`` and the scheme https.

    The authority is lowercased and loses a default port, as in an effective request URI.
    """
    parts = urlsplit(url)
    scheme = (parts.scheme or "https").lower()
    netloc = parts.netloc or fields.get("host") or ""
    authority = netloc.rsplit("@", 1)[-1].lower()
    default_port = _DEFAULT_PORTS.get(scheme)
    if default_port and authority.endswith(f":{default_port}"):
        authority = authority[: -len(default_port) - 1]
    query = parts.query if "?" in url.split("#", 1)[0] else None
    return RequestTarget(scheme, authority, parts.path or "/", query)


def utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def http_date(now: datetime) -> str:
    """Format ``now`` as an HTTP date (``Tue, 20 Apr 2021 02:07:55 GMT``)."""
    return format_datetime(utc(now), usegmt=True)


def carries_body(method: str, body: bytes | None) -> bool:
    """Whether the body needs a digest: a non-empty body, or any POST (as Mastodon wants)."""
    return bool(body) or method.upper() == "POST"


def b64(data: bytes) -> str:
    """Standard base64 with padding, as text."""
    return base64.b64encode(data).decode("ascii")


def encode(text: str) -> bytes:
    """The bytes that get signed: latin-1 (header bytes as on the wire), else UTF-8."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8")


# --- digests -----------------------------------------------------------------------------


def sha256_digest_header(body: bytes) -> str:
    """A ``Digest`` header value (RFC 3230, as Mastodon sends it): ``SHA-256=<base64>``."""
    return "SHA-256=" + b64(hashlib.sha256(body).digest())


def content_digest_header(body: bytes) -> str:
    """A ``Content-Digest`` header value (RFC 9530): ``sha-256=:<base64>:``."""
    return "sha-256=:" + b64(hashlib.sha256(body).digest()) + ":"


def check_digest(header_value: str, body: bytes) -> DigestCheck:
    """Compare a ``Digest`` header to ``body``.

    Algorithm names are case-insensitive; sha-256 and sha-512 are understood, others are
    skipped. Every understood algorithm must match, and at least one must be offered.
    """
    return _check_digests(header_value, body, header="Digest", structured=False)


def check_content_digest(header_value: str, body: bytes) -> DigestCheck:
    """Compare a ``Content-Digest`` header (``sha-256=:..:, sha-512=:..:``) to ``body``."""
    return _check_digests(header_value, body, header="Content-Digest", structured=True)


def _check_digests(header_value: str, body: bytes, *, header: str, structured: bool) -> DigestCheck:
    offered: list[str] = []
    matched: list[str] = []
    for member in header_value.split(","):
        name, _, value = member.strip().partition("=")
        name = name.strip().lower()
        if not name:
            continue
        offered.append(name)
        if name not in _DIGESTS:
            continue
        value = value.split(";", 1)[0].strip() if structured else value.strip()
        if structured:
            if len(value) < 2 or value[0] != ":" or value[-1] != ":":
                return DigestCheck(False, f"{header} {name} is not a :base64: byte sequence")
            value = value[1:-1]
        try:
            given = base64.b64decode(value, validate=True)
        except binascii.Error:
            return DigestCheck(False, f"{header} {name} value {value!r} is not valid base64")
        expected = _DIGESTS[name](body).digest()
        if not hmac.compare_digest(given, expected):
            return DigestCheck(
                False,
                f"{header} {name} does not match the body: computed {b64(expected)}, given {value}",
            )
        matched.append(name)
    if not matched:
        return DigestCheck(
            False,
            f"{header} offers no supported algorithm (offered: {', '.join(offered) or 'none'};"
            f" supported: {', '.join(_DIGESTS)})",
        )
    return DigestCheck(True, f"{header} {', '.join(matched)} matches the body")


# --- RFC 9421 signature base ---------------------------------------------------------


def signature_base(
    method: str, target: RequestTarget, fields: HeaderFields, covered: sf.InnerList
) -> bytes:
    """The RFC 9421 §2.5 signature base of ``covered`` (its components and parameters).

    Raises ``Reject``: ``missingRequiredHeader`` when a covered field or query parameter is
    absent, ``malformedSignature`` for identifiers it cannot or must not derive.
    """
    lines: list[str] = []
    seen: set[str] = set()
    for item in covered.items:
        if not isinstance(item.value, str) or isinstance(item.value, sf.Token):
            raise Reject("malformedSignature", "covered components must be quoted strings")
        identifier = sf.serialize_item(item)
        if identifier in seen:
            raise Reject("malformedSignature", f"component {identifier} is covered twice")
        seen.add(identifier)
        for value in _component_values(method, target, fields, item.value, item.params):
            if "\n" in value or "\r" in value:
                raise Reject("malformedSignature", f"component {identifier} spans lines")
            lines.append(f"{identifier}: {value}")
    lines.append(f'"@signature-params": {sf.serialize_inner_list(covered)}')
    return encode("\n".join(lines))


def _component_values(
    method: str, target: RequestTarget, fields: HeaderFields, name: str, params: sf.Parameters
) -> list[str]:
    if not name.startswith("@"):
        if params:
            raise Reject(
                "malformedSignature",
                f"component parameters {sorted(params)} on {name!r} are not supported",
            )
        if name != name.lower():
            raise Reject("malformedSignature", f"field name {name!r} must be lowercase")
        value = fields.get(name)
        if value is None:
            raise Reject("missingRequiredHeader", f"covered header {name!r} is missing")
        return [value]
    if set(params) - ({"name"} if name == "@query-param" else set()):
        raise Reject("malformedSignature", f"parameters {sorted(params)} on {name} unsupported")
    derived = {
        "@method": method.upper(),
        "@target-uri": target.uri,
        "@authority": target.authority,
        "@scheme": target.scheme,
        "@request-target": target.path_and_query,
        "@path": target.path,
        "@query": "?" + (target.query or ""),
    }
    if name in derived:
        return [derived[name]]
    if name == "@query-param":
        wanted = params.get("name")
        if not isinstance(wanted, str):
            raise Reject("malformedSignature", "@query-param needs a name parameter")
        values = [
            quote(value, safe="")
            for key, value in parse_qsl(target.query or "", keep_blank_values=True)
            if quote(key, safe="") == wanted
        ]
        if not values:
            raise Reject("missingRequiredHeader", f"query parameter {wanted!r} is missing")
        return values
    raise Reject("malformedSignature", f"derived component {name} is not supported here")
