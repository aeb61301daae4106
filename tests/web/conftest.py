"""Argon2 at its production cost takes tens of milliseconds per hash: these tests hash and
check many passwords, so they use the cheapest parameters (hashes still verify as usual)."""

from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher

from node.members import passwords


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )
    yield
