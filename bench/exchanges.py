"""Validated exchanges per second: the clearing house service on a real database.

    .venv/bin/python -m bench.exchanges [--count 500] [--concurrency 8] [--members 20]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

A fresh chamber (migrated database, chamber actor, ``--members`` members with clearing
access) gets ``--count`` exchanges declared between random pairs (not timed); then every
exchange is validated by its beneficiary, ``--concurrency`` at a time, and that is timed.
A validation is the whole write transaction: lock the exchange and both accounts, check the
limits with the ledger, write the entries and balances, sign (eddsa-jcs-2022) and store the
``Accept`` activity. Afterwards the balances must sum to zero. Runs on SQLite, and also on
PostgreSQL with ``--database-url`` (a throwaway database is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench._support import add_database_argument, backends
from node.activitypub.federation import Federation
from node.chamber import ensure_chamber_actor
from node.clearing.exchanges.house import ClearingHouse
from node.clearing.exchanges.states import ExchangeEvent, Role
from node.clearing.ledger.models import ClearingAccount
from node.clearing.ledger.rules import LimitBreach
from node.config import new_settings
from node.db import make_engine, make_sessionmaker, read_only, session_scope
from node.members.models import ClearingOverride, MemberStatus
from node.members.service import create_member
from node.migrate import upgrade
from node.secretbox import SecretBox


async def run(label: str, database_url: str | None, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = new_settings(
            Path(tmp), url="https://bench.test", name="Bench", database_url=database_url or ""
        )
        await asyncio.to_thread(upgrade, settings.database_url)
        engine = make_engine(settings.database_url)
        sessionmaker = make_sessionmaker(engine)
        box = SecretBox(settings.secret_key)
        async with httpx.AsyncClient() as http:
            federation = Federation(
                settings.url, sessionmaker, box, http, settings.chamber_username
            )
            house = ClearingHouse(federation, settings)
            async with session_scope(sessionmaker) as session:
                await ensure_chamber_actor(session, settings, box)
                members = []
                for i in range(args.members):
                    member = await create_member(
                        session,
                        box,
                        username=f"m{i}",
                        chamber_username=settings.chamber_username,
                        status=MemberStatus.APPROVED,
                    )
                    member.clearing_override = ClearingOverride.GRANTED
                    members.append(member)
            rng = random.Random(7)
            pending = []
            for _ in range(args.count):
                provider, beneficiary = rng.sample(members, 2)
                exchange, _ = await house.declare(
                    provider,
                    beneficiary,
                    role=Role.PROVIDER,
                    minutes=rng.randint(15, 90),
                    description="bench",
                )
                pending.append((beneficiary, exchange.key))
            semaphore = asyncio.Semaphore(args.concurrency)
            refused = 0

            async def validate(member, key):  # type: ignore[no-untyped-def]
                nonlocal refused
                async with semaphore:
                    try:
                        await house.act(member, key, ExchangeEvent.ACCEPT)
                    except LimitBreach:
                        refused += 1

            started = time.perf_counter()
            await asyncio.gather(*(validate(m, k) for m, k in pending))
            elapsed = time.perf_counter() - started
            async with read_only(sessionmaker) as session:
                total = (
                    await session.execute(select(func.sum(ClearingAccount.balance)))
                ).scalar_one()
        await engine.dispose()
    assert total == 0, f"the balances sum to {total}"
    print(
        f"{label}: {args.count / elapsed:,.0f} validated exchanges/s "
        f"({args.count} in {elapsed:.2f} s, {args.concurrency} at a time, "
        f"{refused} refused by a limit; balances sum to {total})"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--members", type=int, default=20)
    add_database_argument(parser)
    args = parser.parse_args()
    for label, factory in backends(args.database_url):
        async with factory() as url:
            await run(label, url, args)


if __name__ == "__main__":
    asyncio.run(main())
