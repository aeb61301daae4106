"""Sign-in throttling: the pure rules, then the counters on a real database (both backends),
concurrent attempts included."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.config import Settings
from node.db import make_engine, make_sessionmaker, session_scope
from node.members import accounts, throttle
from node.members.errors import LoginThrottled
from node.members.models import LoginThrottle, MemberStatus
from node.members.service import create_member
from node.secretbox import SecretBox

NOW = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
PASSWORD = "correct horse battery"
A, B = "203.0.113.7", "198.51.100.9"


# --- the rules ----------------------------------------------------------------------------


def test_the_pair_refuses_until_its_window_ends() -> None:
    counter = throttle.Counter(0, NOW)
    for _ in range(throttle.PAIR.free):
        assert throttle.refusal(counter, throttle.PAIR, NOW) is None
        counter = throttle.counted(counter, throttle.PAIR, NOW)
    later = NOW + timedelta(minutes=5)
    assert throttle.refusal(counter, throttle.PAIR, later) == throttle.WINDOW - timedelta(minutes=5)
    assert throttle.refusal(counter, throttle.PAIR, NOW + throttle.WINDOW) is None


def test_backing_off_doubles_the_delay_up_to_its_cap() -> None:
    counter, now = throttle.Counter(0, NOW), NOW
    for _ in range(throttle.ACCOUNT.free):
        counter = throttle.counted(counter, throttle.ACCOUNT, now)
    assert counter.not_before is None  # the free attempts set no delay
    delays = []
    for _ in range(12):
        assert throttle.refusal(counter, throttle.ACCOUNT, now) is None
        counter = throttle.counted(counter, throttle.ACCOUNT, now)
        wait = throttle.refusal(counter, throttle.ACCOUNT, now)
        assert wait is not None
        delays.append(wait.total_seconds())
        now += wait
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60, 60, 60, 60]
    assert throttle.retry_after_seconds(timedelta(milliseconds=1)) == 1


# --- on the database ----------------------------------------------------------------------


@pytest.fixture
async def sessionmaker(settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = make_engine(settings.database_url)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _reserve(
    sessionmaker: async_sessionmaker[AsyncSession],
    username: str,
    address: str,
    now: datetime = NOW,
) -> None:
    async with session_scope(sessionmaker) as session:
        await accounts.reserve_login_attempt(session, username, address, now=now)


async def test_the_pair_limit_leaves_other_addresses_alone(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    for _ in range(throttle.PAIR.free):
        await _reserve(sessionmaker, "marie", A)
    with pytest.raises(LoginThrottled) as throttled:
        await _reserve(sessionmaker, "marie", A, NOW + timedelta(minutes=1))
    assert throttled.value.retry_after == 14 * 60
    await _reserve(sessionmaker, "Marie ", B)  # the member, elsewhere: not concerned
    await _reserve(sessionmaker, "marie", A, NOW + throttle.WINDOW)


async def test_a_right_password_gives_the_attempt_back(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    for _ in range(throttle.PAIR.free):
        await _reserve(sessionmaker, "marie", A)
    async with session_scope(sessionmaker) as session:
        await accounts.release_login_attempt(session, "marie", A)
    for _ in range(throttle.PAIR.free):
        await _reserve(sessionmaker, "marie", A)
    async with session_scope(sessionmaker) as session:
        counts = dict((await session.execute(select(LoginThrottle.key, LoginThrottle.count))).all())
    assert counts == {f"addr:{A}": 9, f"pair:marie|{A}": 5, "user:marie": 9}


async def test_many_addresses_slow_an_account_down_without_locking_it(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    for n in range(throttle.ACCOUNT.free + 1):
        await _reserve(sessionmaker, "marie", f"10.0.0.{n}")
    with pytest.raises(LoginThrottled) as throttled:
        await _reserve(sessionmaker, "marie", B)
    assert throttled.value.retry_after == 1  # seconds, not a quarter of an hour
    await _reserve(sessionmaker, "marie", B, NOW + timedelta(seconds=1))


async def test_one_address_across_accounts_backs_off_in_seconds(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """Members behind one shared address (a proxy) are slowed down, not locked out."""
    for n in range(throttle.ADDRESS.free + 1):
        await _reserve(sessionmaker, f"user{n}", A)
    with pytest.raises(LoginThrottled) as throttled:
        await _reserve(sessionmaker, "marie", A)
    assert throttled.value.retry_after == 1
    await _reserve(sessionmaker, "marie", A, NOW + timedelta(seconds=1))


async def test_concurrent_attempts_are_decided_one_after_the_other(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    async def attempt() -> bool:
        try:
            await _reserve(sessionmaker, "marie", A)
        except LoginThrottled:
            return False
        return True

    admitted = await asyncio.gather(*(attempt() for _ in range(40)))
    assert sum(admitted) == throttle.PAIR.free


async def test_expired_counters_are_removed_as_attempts_come(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    for n in range(8):
        await _reserve(sessionmaker, f"user{n}", f"10.0.0.{n}")
    later = NOW + throttle.WINDOW + timedelta(seconds=1)
    await _reserve(sessionmaker, "marie", A, later)
    async with session_scope(sessionmaker) as session:
        left = (await session.execute(select(func.count()).select_from(LoginThrottle))).scalar()
    assert left == 3 + (8 * 3 - accounts.STALE_COUNTERS_PER_ATTEMPT)
    await _reserve(sessionmaker, "marie", A, later)
    async with session_scope(sessionmaker) as session:
        keys = set((await session.execute(select(LoginThrottle.key))).scalars())
    assert keys == set(accounts.login_keys("marie", A))


async def test_sign_in_checks_the_password_and_a_right_one_starts_the_pair_again(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> None:
    async with session_scope(sessionmaker) as session:
        await create_member(
            session,
            SecretBox(settings.secret_key),
            username="marie",
            chamber_username=settings.chamber_username,
            password=PASSWORD,
            status=MemberStatus.APPROVED,
        )
    for _ in range(throttle.PAIR.free - 1):
        assert await accounts.attempt_sign_in(sessionmaker, "marie", "wrong one!!", A) is None
    member = await accounts.attempt_sign_in(sessionmaker, "marie", PASSWORD, A)
    assert member is not None and member.username == "marie"
    for _ in range(throttle.PAIR.free):  # the right password started the pair again
        assert await accounts.attempt_sign_in(sessionmaker, "marie", "wrong again", A) is None
    with pytest.raises(LoginThrottled):
        await accounts.attempt_sign_in(sessionmaker, "marie", PASSWORD, A)
    assert await accounts.attempt_sign_in(sessionmaker, "nobody", PASSWORD, A) is None
    async with session_scope(sessionmaker) as session:
        assert await accounts.verify_login(session, "marie", PASSWORD) is not None
        assert await accounts.verify_login(session, "marie", "wrong password!") is None
        assert await accounts.verify_login(session, "nobody", PASSWORD) is None
