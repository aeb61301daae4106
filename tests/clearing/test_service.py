"""The clearing house service on a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette

from node.activitypub.models import StoredActivity
from node.clearing.exchanges.house import (
    ClearingHouse,
    CrossChamberUnavailable,
    IdempotencyConflict,
    InvalidExchange,
    NotAParty,
)
from node.clearing.exchanges.jobs import DEMURRAGE, EXPIRE, clearing_job_handlers, schedule
from node.clearing.exchanges.states import ExchangeEvent, InvalidTransition, Role
from node.clearing.ledger.models import ClearingAccount, ClearingEntry, ClearingEvent, Exchange
from node.clearing.ledger.rules import FloorBreach
from node.db import read_only
from node.jobs import Job, JobState

from .conftest import MakeMember


async def _sum(house: ClearingHouse) -> int:
    async with read_only(house.sessionmaker) as session:
        return int(
            (
                await session.execute(select(func.coalesce(func.sum(ClearingAccount.balance), 0)))
            ).scalar_one()
        )


async def _balances(house: ClearingHouse) -> dict[int | None, int]:
    async with read_only(house.sessionmaker) as session:
        rows = await session.execute(select(ClearingAccount.member_id, ClearingAccount.balance))
        return {m: b for m, b in rows.all()}


async def test_declare_then_accept_posts_both_sides(
    house: ClearingHouse, make_member: MakeMember
) -> None:
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    exchange, replayed = await house.declare(
        alice, bob, role=Role.PROVIDER, minutes=90, description="Jardinage"
    )
    assert not replayed and exchange.state == "proposed"
    assert await _balances(house) == {alice.id: 0, bob.id: 0}
    with pytest.raises(InvalidTransition, match="only the other party"):
        await house.act(alice, exchange.key, ExchangeEvent.ACCEPT)
    posted = await house.act(bob, exchange.key, ExchangeEvent.ACCEPT)
    assert posted.state == "posted"
    assert await _balances(house) == {alice.id: 90, bob.id: -90}
    assert await _sum(house) == 0
    with pytest.raises(InvalidTransition, match="already posted"):
        await house.act(bob, exchange.key, ExchangeEvent.ACCEPT)
    async with read_only(house.sessionmaker) as session:
        entries = list((await session.execute(select(ClearingEntry))).scalars())
        events = list(
            (await session.execute(select(ClearingEvent).order_by(ClearingEvent.id))).scalars()
        )
        activities = {
            a.activity_id: a for a in (await session.execute(select(StoredActivity))).scalars()
        }
    assert sorted(e.amount for e in entries) == [-90, 90]
    assert [e.event for e in events] == ["declare", "accept"]
    offer = activities[events[0].activity_id].document
    accept = activities[events[1].activity_id].document
    assert offer["type"] == "Offer" and offer["object"]["action"] == "vf:deliverService"
    assert offer["actor"].endswith("/actors/alice") and offer["proof"]["cryptosuite"]
    assert accept["type"] == "Accept" and accept["object"] == offer["id"]
    assert accept["actor"].endswith("/actors/bob")
    assert accept["result"]["minutes"] == 90


async def test_reverse_flow_contest_amend_and_withdraw(
    house: ClearingHouse, make_member: MakeMember
) -> None:
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    # bob records what alice did for him; alice (the provider) must confirm
    exchange, _ = await house.declare(
        bob, alice, role=Role.BENEFICIARY, minutes=120, description="Relecture"
    )
    assert exchange.provider_member_id == alice.id
    with pytest.raises(InvalidExchange, match="say what is wrong"):
        await house.act(alice, exchange.key, ExchangeEvent.CONTEST)
    contested = await house.act(alice, exchange.key, ExchangeEvent.CONTEST, comment="c'était 3 h")
    assert contested.state == "contested" and contested.comment == "c'était 3 h"
    amended = await house.act(bob, exchange.key, ExchangeEvent.AMEND, minutes=180)
    assert amended.state == "proposed" and amended.minutes == 180 and amended.version == 2
    await house.act(alice, exchange.key, ExchangeEvent.ACCEPT)
    assert await _balances(house) == {alice.id: 180, bob.id: -180}

    other, _ = await house.declare(alice, bob, role=Role.PROVIDER, minutes=10, description="x")
    withdrawn = await house.act(alice, other.key, ExchangeEvent.WITHDRAW)
    assert withdrawn.state == "withdrawn"
    refused, _ = await house.declare(alice, bob, role=Role.PROVIDER, minutes=10, description="y")
    assert (await house.act(bob, refused.key, ExchangeEvent.REFUSE)).state == "refused"
    carol, _ = await make_member("carol")
    with pytest.raises(NotAParty):
        await house.act(carol, refused.key, ExchangeEvent.ACCEPT)


async def test_floor_is_checked_when_posting(house: ClearingHouse, make_member: MakeMember) -> None:
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    first, _ = await house.declare(alice, bob, role=Role.PROVIDER, minutes=20 * 60, description="a")
    second, _ = await house.declare(alice, bob, role=Role.PROVIDER, minutes=1, description="b")
    await house.act(bob, first.key, ExchangeEvent.ACCEPT)
    with pytest.raises(FloorBreach):
        await house.act(bob, second.key, ExchangeEvent.ACCEPT)
    async with read_only(house.sessionmaker) as session:
        still = (
            await session.execute(select(Exchange).where(Exchange.key == second.key))
        ).scalar_one()
    assert still.state == "proposed"
    assert await _balances(house) == {alice.id: 1200, bob.id: -1200}


async def test_levy_goes_to_the_commons_fund(house: ClearingHouse, make_member: MakeMember) -> None:
    house.terms = replace(house.terms, levy_basis_points=500)
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    exchange, _ = await house.declare(alice, bob, role=Role.PROVIDER, minutes=60, description="a")
    await house.act(bob, exchange.key, ExchangeEvent.ACCEPT)
    assert await _balances(house) == {alice.id: 57, bob.id: -60, None: 3}
    assert await _sum(house) == 0


async def test_idempotency_key(house: ClearingHouse, make_member: MakeMember) -> None:
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    one, replayed_one = await house.declare(
        alice, bob, role=Role.PROVIDER, minutes=30, description="a", idempotency_key="k1"
    )
    two, replayed_two = await house.declare(
        alice, bob, role=Role.PROVIDER, minutes=30, description="a", idempotency_key="k1"
    )
    assert (one.key, replayed_one, replayed_two) == (two.key, False, True)
    with pytest.raises(IdempotencyConflict):
        await house.declare(
            alice, bob, role=Role.PROVIDER, minutes=31, description="a", idempotency_key="k1"
        )


async def test_parties_resolve_locally_only(house: ClearingHouse, make_member: MakeMember) -> None:
    bob, _ = await make_member("bob")
    async with read_only(house.sessionmaker) as session:
        for text in ("bob", "@bob@lille.test", "https://lille.test/actors/bob"):
            assert (await house.resolve_party(session, text)).id == bob.id
        with pytest.raises(CrossChamberUnavailable):
            await house.resolve_party(session, "@marie@gand.test")
        with pytest.raises(CrossChamberUnavailable):
            await house.resolve_party(session, "https://gand.test/actors/marie")
        with pytest.raises(InvalidExchange):
            await house.resolve_party(session, "@nobody@lille.test")


async def test_expiry_job(house: ClearingHouse, make_member: MakeMember) -> None:
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    exchange, _ = await house.declare(alice, bob, role=Role.PROVIDER, minutes=30, description="a")
    later = house.clock() + timedelta(days=31)
    house.clock = lambda: later
    assert await house.expire_due() == 1
    async with read_only(house.sessionmaker) as session:
        row = (
            await session.execute(select(Exchange).where(Exchange.key == exchange.key))
        ).scalar_one()
        events = list(
            (await session.execute(select(ClearingEvent).order_by(ClearingEvent.id))).scalars()
        )
    assert row.state == "expired"
    assert events[-1].actor_uri.endswith("/actors/lille")
    assert await house.expire_due() == 0


async def test_demurrage_melts_into_the_commons_fund_once_per_period(
    house: ClearingHouse, make_member: MakeMember
) -> None:
    house.terms = replace(house.terms, demurrage_basis_points=1000, demurrage_threshold=60)
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    exchange, _ = await house.declare(alice, bob, role=Role.PROVIDER, minutes=600, description="a")
    await house.act(bob, exchange.key, ExchangeEvent.ACCEPT)
    assert await house.run_demurrage("2026-12-01") == 54  # 10 % of (600 - 60)
    assert await house.run_demurrage("2026-12-01") == 0
    assert await _balances(house) == {alice.id: 546, bob.id: -600, None: 54}
    assert await _sum(house) == 0


async def test_periodic_jobs_keep_one_pending_run(house: ClearingHouse, app: Starlette) -> None:
    node = app.state.node
    now = house.clock()
    assert await schedule(house, EXPIRE, now)
    assert not await schedule(house, EXPIRE, now)
    assert await schedule(house, DEMURRAGE, now + timedelta(days=1))
    assert not await schedule(house, DEMURRAGE, now + timedelta(days=2))
    handlers = clearing_job_handlers(house)
    assert {EXPIRE, DEMURRAGE} <= set(handlers)
    await node.worker.run_once()
    pending: dict[str, int] = {}
    for _ in range(50):  # the app's own worker may be between two runs of the expiry job
        async with read_only(house.sessionmaker) as session:
            rows = await session.execute(
                select(Job.kind, func.count())
                .where(Job.state == JobState.PENDING)
                .group_by(Job.kind)
            )
            pending = {kind: int(count) for kind, count in rows.all()}
        if pending == {EXPIRE: 1, DEMURRAGE: 1}:
            break
        await asyncio.sleep(0.05)
    assert pending == {EXPIRE: 1, DEMURRAGE: 1}
