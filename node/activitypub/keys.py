"""Actor key pairs: RSA-2048 for HTTP signatures, Ed25519 for object proofs (FEP-521a)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from node.activitypub import multikey
from node.secretbox import SecretBox

__all__ = [
    "public_keys_of",
    "ActorKeys",
    "SealedActorKeys",
    "generate_actor_keys",
    "load_rsa_public_pem",
    "rsa_public_pem",
    "seal_actor_keys",
    "unseal_ed25519",
    "unseal_rsa",
]


@dataclass(frozen=True)
class ActorKeys:
    rsa: rsa.RSAPrivateKey
    ed25519: ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class SealedActorKeys:
    """What the database stores: public halves in clear, private halves sealed."""

    rsa_public_pem: str
    rsa_private_sealed: str
    ed25519_public_multibase: str
    ed25519_private_sealed: str


def generate_actor_keys() -> ActorKeys:
    return ActorKeys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ed25519=ed25519.Ed25519PrivateKey.generate(),
    )


def rsa_public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def load_rsa_public_pem(pem: str) -> rsa.RSAPublicKey:
    key = serialization.load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("not an RSA public key")
    return key


def seal_actor_keys(keys: ActorKeys, box: SecretBox) -> SealedActorKeys:
    rsa_private = keys.rsa.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ed_private = keys.ed25519.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return SealedActorKeys(
        rsa_public_pem=rsa_public_pem(keys.rsa),
        rsa_private_sealed=box.seal(rsa_private),
        ed25519_public_multibase=multikey.public_key_to_multibase(keys.ed25519.public_key()),
        ed25519_private_sealed=box.seal(ed_private),
    )


def unseal_rsa(sealed: str, box: SecretBox) -> rsa.RSAPrivateKey:
    """The RSA key that ``seal_actor_keys`` sealed. Its mathematical consistency is not
    checked again on every load (40 ms each): the box authenticates what it opens, so this
    is the key we generated and sealed ourselves."""
    key = serialization.load_pem_private_key(
        box.open(sealed), password=None, unsafe_skip_rsa_key_validation=True
    )
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("stored key is not an RSA private key")
    return key


def unseal_ed25519(sealed: str, box: SecretBox) -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.from_private_bytes(box.open(sealed))


def public_keys_of(actor: dict[str, Any]) -> dict[str, rsa.RSAPublicKey | ed25519.Ed25519PublicKey]:
    """The keys an actor document publishes as its own, by key id: ``publicKey`` (RSA PEM)
    and ``assertionMethod`` Multikeys (Ed25519) whose owner/controller is the actor."""
    actor_id = actor.get("id")
    keys: dict[str, rsa.RSAPublicKey | ed25519.Ed25519PublicKey] = {}
    public_key = actor.get("publicKey")
    for entry in public_key if isinstance(public_key, list) else [public_key]:
        if (
            isinstance(entry, dict)
            and isinstance(entry.get("id"), str)
            and entry.get("owner", actor_id) == actor_id
            and isinstance(entry.get("publicKeyPem"), str)
        ):
            try:
                keys[entry["id"]] = load_rsa_public_pem(entry["publicKeyPem"])
            except ValueError:
                continue
    methods = actor.get("assertionMethod")
    for entry in methods if isinstance(methods, list) else [methods]:
        if (
            isinstance(entry, dict)
            and entry.get("type") == "Multikey"
            and isinstance(entry.get("id"), str)
            and entry.get("controller") == actor_id
            and isinstance(entry.get("publicKeyMultibase"), str)
        ):
            try:
                keys[entry["id"]] = multikey.public_key_from_multibase(entry["publicKeyMultibase"])
            except multikey.MultikeyError:
                continue
    return keys
