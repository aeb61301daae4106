"""Encryption at rest for private keys, derived from the node secret."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

__all__ = ["SecretBox", "SecretBoxError"]


class SecretBoxError(Exception):
    """A stored secret cannot be decrypted (wrong node secret, or damaged data)."""


class SecretBox:
    """Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from the node secret by HKDF."""

    def __init__(self, node_secret: str, purpose: bytes = b"archipel/private-keys/v1") -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
            node_secret.encode("utf-8")
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: bytes) -> str:
        return self._fernet.encrypt(plaintext).decode("ascii")

    def open(self, token: str) -> bytes:
        try:
            return self._fernet.decrypt(token.encode("ascii"))
        except InvalidToken:
            raise SecretBoxError(
                "cannot decrypt a stored private key: was secret_key changed since init?"
            ) from None
