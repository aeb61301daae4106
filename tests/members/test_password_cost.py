"""Argon2's cost: full unless ``ARCHIPEL_CHEAP_PASSWORD_HASHING=1`` (tests and demos that run
real node processes), and a hash verifies whatever the setting when it is checked."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, extract_parameters

from node.members import passwords


@pytest.fixture(autouse=True)
def production_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """The module's own hasher (the suite's ``fast_password_hashing`` swaps it)."""
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher())


def test_hashes_keep_argon2s_full_cost_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(passwords.CHEAP_HASHING_ENV, raising=False)
    hashed = passwords.hash_password("correct horse battery")
    full = PasswordHasher()
    parameters = extract_parameters(hashed)
    assert (parameters.time_cost, parameters.memory_cost) == (full.time_cost, full.memory_cost)
    assert passwords.verify_password(hashed, "correct horse battery")


@pytest.mark.parametrize("value", ["0", "", "yes"])
def test_only_1_asks_for_cheap_hashes(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(passwords.CHEAP_HASHING_ENV, value)
    hashed = passwords.hash_password("correct horse battery")
    assert extract_parameters(hashed).memory_cost == PasswordHasher().memory_cost


def test_the_setting_makes_cheap_hashes_that_verify_either_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(passwords.CHEAP_HASHING_ENV, "1")
    hashed = passwords.hash_password("correct horse battery")
    parameters = extract_parameters(hashed)
    assert (parameters.time_cost, parameters.memory_cost) == (1, 1024)
    monkeypatch.delenv(passwords.CHEAP_HASHING_ENV)
    assert passwords.verify_password(hashed, "correct horse battery")
    assert not passwords.verify_password(hashed, "wrong horse battery")
