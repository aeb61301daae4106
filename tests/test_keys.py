import pytest

from node.activitypub import multikey
from node.activitypub.keys import (
    generate_actor_keys,
    load_rsa_public_pem,
    seal_actor_keys,
    unseal_ed25519,
    unseal_rsa,
)
from node.secretbox import SecretBox, SecretBoxError

SECRET = "x" * 48


def test_generated_keys_are_rsa_2048_and_ed25519() -> None:
    keys = generate_actor_keys()
    assert keys.rsa.key_size == 2048
    assert keys.rsa.public_key().public_numbers().e == 65537
    assert len(keys.ed25519.public_key().public_bytes_raw()) == 32


def test_sealed_keys_round_trip_and_hide_the_private_halves() -> None:
    keys = generate_actor_keys()
    box = SecretBox(SECRET)
    sealed = seal_actor_keys(keys, box)
    assert "PRIVATE KEY" not in sealed.rsa_private_sealed
    assert (
        unseal_rsa(sealed.rsa_private_sealed, box).private_numbers() == keys.rsa.private_numbers()
    )
    ed = unseal_ed25519(sealed.ed25519_private_sealed, box)
    assert ed.private_bytes_raw() == keys.ed25519.private_bytes_raw()
    public = load_rsa_public_pem(sealed.rsa_public_pem)
    assert public.public_numbers() == keys.rsa.public_key().public_numbers()
    decoded = multikey.public_key_from_multibase(sealed.ed25519_public_multibase)
    assert decoded.public_bytes_raw() == keys.ed25519.public_key().public_bytes_raw()
    assert sealed.ed25519_public_multibase.startswith("z6Mk")


def test_another_node_secret_cannot_open_the_keys() -> None:
    sealed = seal_actor_keys(generate_actor_keys(), SecretBox(SECRET))
    with pytest.raises(SecretBoxError, match="secret_key changed"):
        unseal_rsa(sealed.rsa_private_sealed, SecretBox("y" * 48))


def test_tampered_ciphertext_is_refused() -> None:
    box = SecretBox(SECRET)
    token = box.seal(b"secret")
    tampered = token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]
    with pytest.raises(SecretBoxError):
        box.open(tampered)
