"""Ed25519 keys as Multikey ``publicKeyMultibase`` / ``secretKeyMultibase`` strings.

Pure: no I/O. A Multikey value is multibase base58btc (prefix ``z``) over a multicodec
varint header followed by the raw key: ``0xed 0x01`` for an Ed25519 public key (32 bytes),
``0x80 0x26`` for an Ed25519 private key seed (32 bytes). See the W3C "Controlled
Identifiers" Multikey section and FEP-521a.
"""

from __future__ import annotations

from typing import Final

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

__all__ = [
    "MultikeyError",
    "ED25519_PUBLIC_HEADER",
    "ED25519_PRIVATE_HEADER",
    "MAX_ENCODED_LENGTH",
    "b58encode",
    "b58decode",
    "multibase_encode",
    "multibase_decode",
    "public_key_to_multibase",
    "public_key_from_multibase",
    "private_key_to_multibase",
    "private_key_from_multibase",
]

ED25519_PUBLIC_HEADER: Final = b"\xed\x01"
ED25519_PRIVATE_HEADER: Final = b"\x80\x26"

MAX_ENCODED_LENGTH: Final = 1024
"""Longest base58 text we decode; bounds the quadratic big-integer work on hostile input."""

_ALPHABET: Final = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX: Final = {char: value for value, char in enumerate(_ALPHABET)}
_KEY_LENGTH: Final = 32


class MultikeyError(ValueError):
    """A multibase/Multikey string (or key) that cannot be encoded or decoded."""


def b58encode(data: bytes) -> str:
    """Base58 (Bitcoin alphabet) encoding; each leading zero byte becomes ``1``."""
    zeros = len(data) - len(data.lstrip(b"\0"))
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, remainder = divmod(number, 58)
        digits.append(_ALPHABET[remainder])
    return "1" * zeros + "".join(reversed(digits))


def b58decode(text: str) -> bytes:
    """Inverse of :func:`b58encode`; raises :class:`MultikeyError` on a bad character."""
    if len(text) > MAX_ENCODED_LENGTH:
        raise MultikeyError(f"base58 text is {len(text)} characters, over {MAX_ENCODED_LENGTH}")
    number = 0
    for position, char in enumerate(text):
        value = _INDEX.get(char)
        if value is None:
            raise MultikeyError(f"invalid base58 character {char!r} at position {position}")
        number = number * 58 + value
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def multibase_encode(data: bytes) -> str:
    """Multibase base58btc: ``z`` followed by base58 of ``data``."""
    return "z" + b58encode(data)


def multibase_decode(value: str) -> bytes:
    """Decode a multibase base58btc string (the only base we accept)."""
    if not isinstance(value, str) or not value:
        raise MultikeyError("expected a non-empty multibase string")
    if value[0] != "z":
        raise MultikeyError(
            f"unsupported multibase prefix {value[0]!r}: only base58btc ('z') is accepted"
        )
    return b58decode(value[1:])


def _strip_header(value: str, header: bytes, what: str) -> bytes:
    decoded = multibase_decode(value)
    if not decoded.startswith(header):
        raise MultikeyError(
            f"not an {what}: multicodec header is {decoded[:2].hex() or 'empty'}, "
            f"expected {header.hex()}"
        )
    raw = decoded[len(header) :]
    if len(raw) != _KEY_LENGTH:
        raise MultikeyError(f"an {what} has {_KEY_LENGTH} bytes, this one has {len(raw)}")
    return raw


def public_key_to_multibase(key: Ed25519PublicKey | bytes) -> str:
    """``publicKeyMultibase`` for an Ed25519 public key (object or 32 raw bytes)."""
    if isinstance(key, Ed25519PublicKey):
        raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    elif isinstance(key, bytes | bytearray) and len(key) == _KEY_LENGTH:
        raw = bytes(key)
    else:
        raise MultikeyError("expected an Ed25519PublicKey or its 32 raw bytes")
    return multibase_encode(ED25519_PUBLIC_HEADER + raw)


def public_key_from_multibase(value: str) -> Ed25519PublicKey:
    """Parse a ``publicKeyMultibase`` holding an Ed25519 key (``z6Mk...``)."""
    raw = _strip_header(value, ED25519_PUBLIC_HEADER, "Ed25519 public key")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_to_multibase(key: Ed25519PrivateKey | bytes) -> str:
    """``secretKeyMultibase`` for an Ed25519 private key (object or 32-byte seed)."""
    if isinstance(key, Ed25519PrivateKey):
        raw = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    elif isinstance(key, bytes | bytearray) and len(key) == _KEY_LENGTH:
        raw = bytes(key)
    else:
        raise MultikeyError("expected an Ed25519PrivateKey or its 32-byte seed")
    return multibase_encode(ED25519_PRIVATE_HEADER + raw)


def private_key_from_multibase(value: str) -> Ed25519PrivateKey:
    """Parse a ``secretKeyMultibase`` holding an Ed25519 seed (``z3u2...``)."""
    raw = _strip_header(value, ED25519_PRIVATE_HEADER, "Ed25519 private key")
    return Ed25519PrivateKey.from_private_bytes(raw)
