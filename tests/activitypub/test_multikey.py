"""Multikey / multibase encoding of Ed25519 keys (node.activitypub.multikey)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from node.activitypub import multikey
from node.activitypub.multikey import (
    MultikeyError,
    b58decode,
    b58encode,
    multibase_decode,
    multibase_encode,
    private_key_from_multibase,
    private_key_to_multibase,
    public_key_from_multibase,
    public_key_to_multibase,
)

# W3C vc-di-eddsa TestVectors/keyPair.json
W3C_PUBLIC = "z6MkrJVnaZkeFzdQyMZu1cgjg7k1pZZ6pvBQ7XJPt4swbTQ2"
W3C_SECRET = "z3u2en7t5LR2WtQH5PfFqMqwVHBeXouLzo6haApm8XHqvjxq"

# Bitcoin Core's base58_encode_decode.json (a selection)
BASE58_VECTORS = [
    ("", ""),
    ("61", "2g"),
    ("626262", "a3gV"),
    ("636363", "aPEr"),
    ("73696d706c792061206c6f6e6720737472696e67", "2cFupjhnEsSn59qHXstmK2ffpLv2"),
    ("00eb15231dfceb60925886b67d065299925915aeb172c06647", "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"),
    ("516b6fcd0f", "ABnLTmg"),
    ("bf4f89001e670274dd", "3SEo3LWLoPntC"),
    ("572e4794", "3EFU7m"),
    ("ecac89cad93923c02321", "EJDM8drfXA6uyA"),
    ("10c8511e", "Rt5zm"),
    ("00000000000000000000", "1111111111"),
]


def test_public_names_are_declared() -> None:
    for name in multikey.__all__:
        assert hasattr(multikey, name), name


@pytest.mark.parametrize(("hex_data", "encoded"), BASE58_VECTORS)
def test_b58encode__bitcoin_vectors(hex_data: str, encoded: str) -> None:
    assert b58encode(bytes.fromhex(hex_data)) == encoded
    assert b58decode(encoded) == bytes.fromhex(hex_data)


@given(st.binary(max_size=200))
def test_b58__round_trips_any_bytes(data: bytes) -> None:
    assert b58decode(b58encode(data)) == data
    assert multibase_decode(multibase_encode(data)) == data


def test_w3c_key_pair__secret_key_derives_the_published_public_key() -> None:
    secret = private_key_from_multibase(W3C_SECRET)
    assert public_key_to_multibase(secret.public_key()) == W3C_PUBLIC
    assert private_key_to_multibase(secret) == W3C_SECRET


def test_public_key__round_trips_through_multibase() -> None:
    key = public_key_from_multibase(W3C_PUBLIC)
    assert public_key_to_multibase(key) == W3C_PUBLIC
    assert W3C_PUBLIC.startswith("z6Mk")  # what 0xed01 + 32 bytes always looks like


def test_keys__raw_bytes_are_accepted() -> None:
    seed = bytes(range(32))
    private = Ed25519PrivateKey.from_private_bytes(seed)
    assert private_key_to_multibase(seed) == private_key_to_multibase(private)
    raw_public = multibase_decode(public_key_to_multibase(private.public_key()))[2:]
    assert public_key_to_multibase(raw_public) == public_key_to_multibase(private.public_key())


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("z0OIl", "invalid base58 character '0'"),
        ("f00ed01", "only base58btc"),
        ("", "non-empty"),
        (W3C_SECRET, "multicodec header is 8026"),  # a private key is not a public key
        (multibase_encode(b"\xed\x01" + b"\x01" * 31), "has 31"),
        ("z" + "2" * 2000, "over 1024"),
    ],
)
def test_public_key_from_multibase__bad_input(value: str, fragment: str) -> None:
    with pytest.raises(MultikeyError, match=fragment):
        public_key_from_multibase(value)


def test_private_key_from_multibase__rejects_a_public_key() -> None:
    with pytest.raises(MultikeyError, match="expected 8026"):
        private_key_from_multibase(W3C_PUBLIC)


def test_encoders__reject_wrong_inputs() -> None:
    with pytest.raises(MultikeyError):
        public_key_to_multibase(b"short")
    with pytest.raises(MultikeyError):
        private_key_to_multibase(public_key_from_multibase(W3C_PUBLIC))  # type: ignore[arg-type]


def test_multikey_error_is_a_value_error() -> None:
    assert issubclass(MultikeyError, ValueError)
