"""Sign-in under attack, through the app: a burst of wrong passwords is checked at most as
often as the throttle allows, while the event loop keeps answering; a stranger's failures
from their address do not keep the member out from theirs."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette

from node.members import passwords
from node.members.throttle import ADDRESS, PAIR
from tests.web._members import add_member, csrf_of, sign_in

STRANGER, MEMBER = "203.0.113.7", "198.51.100.9"


class GatedHasher(PasswordHasher):
    """A cheap hasher whose checks count themselves and wait, in whatever thread runs them,
    until the test opens the gate. Run on the event loop's thread, a check would stop the
    loop: it then gives up waiting after a while and says so (``timed_out``)."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.gate = threading.Event()
        self.started = threading.Event()
        self.timed_out = False
        self.calls = 0
        self.running = 0
        self.most_at_once = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> Any:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.started.set()
        try:
            if not self.gate.wait(timeout=5):
                self.timed_out = True
                self.gate.set()
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


def _client(app: Starlette, base_url: str, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url=base_url)


async def test_a_burst_of_wrong_passwords_is_checked_at_most_the_allowed_number(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_member(app, "bob")
    hasher = GatedHasher()
    monkeypatch.setattr(passwords, "_hasher", hasher)
    token = csrf_of((await client.get("/login")).text)
    form = {"username": "bob", "password": "wrong password", "csrf_token": token}
    logins = [asyncio.create_task(client.post("/login", data=form)) for _ in range(40)]

    assert await asyncio.to_thread(hasher.started.wait, 10)
    health = await client.get("/healthz")
    finished_when_healthy = sum(login.done() for login in logins)
    hasher.gate.set()
    answers = await asyncio.gather(*logins)

    assert health.status_code == 200
    assert not hasher.timed_out  # /healthz answered while a check was still waiting
    assert finished_when_healthy < len(logins)
    assert hasher.calls == PAIR.free
    assert hasher.most_at_once <= passwords.MAX_CONCURRENT_CHECKS
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [401] * PAIR.free + [429] * (40 - PAIR.free)
    for answer in answers:
        if answer.status_code == 429:
            assert int(answer.headers["Retry-After"]) > 0
            assert "Trop de tentatives" in answer.text


async def test_a_stranger_cannot_lock_a_member_out(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "bob")
    base = str(client.base_url)
    async with _client(app, base, STRANGER) as stranger, _client(app, base, MEMBER) as member:
        for _ in range(PAIR.free):
            assert (await sign_in(stranger, "bob", "wrong password")).status_code == 401
        signed_in = await sign_in(member, "bob")
        assert signed_in.status_code == 303
        assert (await member.get("/account")).status_code == 200
        refused = await sign_in(stranger, "bob")  # even the right password, from there
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 60


async def test_members_behind_one_address_wait_seconds_not_minutes(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Behind a proxy that hides the clients' addresses, everyone shares one: failures on
    many accounts slow that address down by seconds instead of closing it for 15 minutes."""
    await add_member(app, "bob")
    for n in range(ADDRESS.free + 1):
        assert (await sign_in(client, f"guess{n}", "wrong password")).status_code == 401
    slowed = await sign_in(client, "bob")
    assert slowed.status_code == 429
    assert int(slowed.headers["Retry-After"]) <= 60
    assert "seconde" in slowed.text
