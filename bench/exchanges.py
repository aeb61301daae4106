"""Validated exchanges per second, against the floor of the same transaction, in the same run.

    .venv/bin/python -m bench.exchanges [--count 1000] [--concurrency 8] [--members 20]
        [--rounds 4] [--profile] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

A fresh chamber (migrated database, chamber actor, ``--members`` members with clearing
access) gets ``2 * --count`` exchanges declared between random pairs (not timed). Half are
validated by their beneficiary through the clearing house (`ClearingHouse.act`, ``ACCEPT``),
``--concurrency`` at a time: the whole write transaction — lock the exchange and both
accounts, check the limits with the ledger, write the entries and balances, sign
(eddsa-jcs-2022) and store the ``Accept`` activity. The other half go through the *floor*: a
bare SQLAlchemy Core transaction taking the same locks (the exchange row, then both accounts in
id order, ``FOR UPDATE`` on PostgreSQL; ``BEGIN IMMEDIATE`` on SQLite), checking the same
limits and writing the same rows (transaction, entries, balances, exchange, process move,
unsigned activity, event, notification), with no ORM and no signing. The two alternate in
``--rounds`` rounds on the same accounts, so that the load of a shared machine hits both.
Then the raw rate of the activity's proof: ``sign_eddsa_jcs_2022`` of a stored ``Accept``
(JCS, two SHA-256, Ed25519) with the key already parsed, and a bare Ed25519 signature.

Afterwards the balances must sum to zero and no account may be past its limits; both are read
from the database. Each database ends with one line::

    RESULT exchanges db=sqlite per_s=… sum_minutes=0 breaches=0

Runs on SQLite, and also on PostgreSQL with ``--database-url`` (a throwaway database is
created and dropped). ``--profile`` prints the top of a cProfile of the clearing house's runs.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import random
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bench._support import add_database_argument, backends
from bench.signatures import rate
from node.activitypub.federation import Federation
from node.activitypub.models import StoredActivity
from node.activitypub.proofs import sign_eddsa_jcs_2022
from node.chamber import ensure_chamber_actor
from node.clearing.exchanges.activities import event_activity
from node.clearing.exchanges.house import ClearingHouse, ClearingTerms
from node.clearing.exchanges.states import ExchangeEvent, ExchangeState, ExchangeStates, Role
from node.clearing.ledger import rules as ledger
from node.clearing.ledger.models import (
    ClearingAccount,
    ClearingEntry,
    ClearingEvent,
    ClearingTransaction,
    Exchange,
    TransactionKind,
    member_account_key,
)
from node.config import new_settings
from node.db import make_engine, make_sessionmaker, read_only, session_scope
from node.members.models import ClearingOverride, MemberStatus, Notification
from node.members.notifications import NotificationType
from node.members.service import create_member
from node.migrate import upgrade
from node.process_store import ProcessMove
from node.secretbox import SecretBox

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


@dataclass
class Side:
    """One contender's timed batches, summed over the rounds."""

    elapsed: float = 0.0
    cpu: float = 0.0
    done: int = 0
    refused: int = 0
    statements: int = 0

    def per_s(self) -> float:
        return self.done / self.elapsed if self.elapsed else 0.0


@dataclass
class Outcome:
    label: str
    node: Side
    floor: Side
    proof_per_s: float
    ed25519_per_s: float
    sum_minutes: int
    breaches: int
    profile: str = ""


class StatementCounter:
    """Counts the statements an engine sends while ``on`` (a ``before_cursor_execute``
    listener: ``BEGIN`` on SQLite counts, asyncpg's implicit ``BEGIN``/``COMMIT`` do not)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        self.on = False
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        if self.on:
            self.count += 1


async def timed(
    side: Side,
    counter: StatementCounter,
    work: Callable[[Any], Awaitable[bool]],
    batch: list[Any],
    concurrency: int,
    profiler: cProfile.Profile | None = None,
) -> None:
    semaphore = asyncio.Semaphore(concurrency)

    async def one(item: Any) -> None:
        async with semaphore:
            if not await work(item):
                side.refused += 1

    counter.count, counter.on = 0, True
    if profiler is not None:
        profiler.enable()
    cpu, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(item) for item in batch))
    side.elapsed += time.perf_counter() - started
    side.cpu += time.process_time() - cpu
    if profiler is not None:
        profiler.disable()
    counter.on = False
    side.done += len(batch)
    side.statements += counter.count


def floor_validation(
    engine: AsyncEngine, terms: ClearingTerms, base_url: str
) -> Callable[[tuple[Any, str]], Awaitable[bool]]:
    """The bare transaction: the same locks, limits and rows as an acceptance, in Core."""
    ex, acc = Exchange.__table__, ClearingAccount.__table__
    set_balance = (
        update(acc).where(acc.c.id == bindparam("account_id")).values(balance=bindparam("after"))
    )

    async def validate(item: tuple[Any, str]) -> bool:
        member, key = item
        now = datetime.now(UTC)
        actor_uri = f"{base_url}/actors/{member.username}"
        async with engine.begin() as conn:
            row = (
                await conn.execute(
                    select(
                        ex.c.id,
                        ex.c.uri,
                        ex.c.provider_uri,
                        ex.c.provider_member_id,
                        ex.c.beneficiary_member_id,
                        ex.c.minutes,
                        ex.c.description,
                        ex.c.proposal_activity_id,
                    )
                    .where(ex.c.key == key, ex.c.state == ExchangeState.PROPOSED.value)
                    .with_for_update()
                )
            ).one()
            provider = member_account_key(row.provider_member_id)
            beneficiary = member_account_key(row.beneficiary_member_id)
            accounts = (
                await conn.execute(
                    select(
                        acc.c.id, acc.c.key, acc.c.kind, acc.c.balance, acc.c.floor, acc.c.ceiling
                    )
                    .where(acc.c.key.in_([provider, beneficiary]))
                    .order_by(acc.c.id)
                    .with_for_update()
                )
            ).all()
            transaction = ledger.exchange_postings(provider, beneficiary, row.minutes, 0, None)
            try:
                after = ledger.apply(
                    {a.key: a.balance for a in accounts},
                    {a.key: terms.limits_of(a) for a in accounts},
                    transaction,
                )
            except ledger.LimitBreach:
                await conn.rollback()
                return False
            ids = {a.key: a.id for a in accounts}
            tx_id = (
                await conn.execute(
                    insert(ClearingTransaction.__table__)
                    .values(
                        kind=TransactionKind.EXCHANGE,
                        exchange_id=row.id,
                        memo=row.description[:200],
                        posted_at=now,
                    )
                    .returning(ClearingTransaction.__table__.c.id)
                )
            ).scalar_one()
            await conn.execute(
                set_balance, [{"account_id": ids[k], "after": after[k]} for k in ids]
            )
            await conn.execute(
                insert(ClearingEntry.__table__).values(
                    [
                        {
                            "transaction_id": tx_id,
                            "account_id": ids[p.account],
                            "amount": p.amount,
                            "balance_after": after[p.account],
                            "posted_at": now,
                        }
                        for p in transaction
                    ]
                )
            )
            await conn.execute(
                update(ex)
                .where(ex.c.id == row.id)
                .values(state=ExchangeState.POSTED.value, updated_at=now, posted_at=now)
            )
            await conn.execute(
                insert(ProcessMove.__table__).values(
                    graph=ExchangeStates.__name__,
                    subject=row.uri,
                    before=ExchangeState.PROPOSED.value,
                    after=ExchangeState.POSTED.value,
                    by=actor_uri,
                    reason="",
                    details={},
                    created_at=now,
                )
            )
            activity = event_activity(
                ExchangeEvent.ACCEPT,
                actor_uri,
                row.proposal_activity_id,
                row.uri,
                row.provider_uri,
                result={"id": row.uri, "type": "Exchange", "state": "posted"},
            )
            activity["id"] = f"{actor_uri}/activities/{uuid.uuid4()}"
            activity_pk = (
                await conn.execute(
                    insert(StoredActivity.__table__)
                    .values(
                        activity_id=activity["id"],
                        direction="out",
                        actor_uri=actor_uri,
                        activity_type="Accept",
                        object_id=row.proposal_activity_id,
                        public=True,
                        document=activity,
                        created_at=now,
                    )
                    .returning(StoredActivity.__table__.c.id)
                )
            ).scalar_one()
            await conn.execute(
                insert(ClearingEvent.__table__).values(
                    exchange_id=row.id,
                    event=ExchangeEvent.ACCEPT.value,
                    state_after=ExchangeState.POSTED.value,
                    actor_uri=actor_uri,
                    activity_id=activity["id"],
                    activity_pk=activity_pk,
                    comment="",
                    details={"version": 1, "minutes": row.minutes},
                    created_at=now,
                )
            )
            await conn.execute(
                insert(Notification.__table__).values(
                    member_id=row.provider_member_id,
                    type=NotificationType.EXCHANGE_ACCEPTED,
                    params={"who": member.username},
                    url=f"/exchanges/{key}",
                    created_at=now,
                )
            )
        return True

    return validate


def proof_rates(document: dict[str, Any], seconds: float) -> tuple[float, float]:
    """``sign_eddsa_jcs_2022`` of ``document`` with a parsed key, and a bare Ed25519 sign."""
    key = Ed25519PrivateKey.generate()
    unsigned = {k: v for k, v in document.items() if k != "proof"}
    created = datetime.now(UTC)
    proof = rate(
        lambda: sign_eddsa_jcs_2022(unsigned, key, "https://bench.test/k", created=created),
        seconds,
    )
    message = b"x" * 64
    return proof, rate(lambda: key.sign(message), seconds)


async def invariants(sessionmaker: Any, terms: ClearingTerms) -> tuple[int, int]:
    """The sum of every balance, and how many accounts are past one of their limits."""
    async with read_only(sessionmaker) as session:
        accounts = list((await session.execute(select(ClearingAccount))).scalars())
    breaches = 0
    for account in accounts:
        limits = terms.limits_of(account)
        if account.balance < limits.floor or (
            limits.ceiling is not None and account.balance > limits.ceiling
        ):
            breaches += 1
    return sum(a.balance for a in accounts), breaches


async def run(label: str, database_url: str | None, args: argparse.Namespace) -> Outcome:
    with tempfile.TemporaryDirectory() as tmp:
        settings = new_settings(
            Path(tmp), url="https://bench.test", name="Bench", database_url=database_url or ""
        )
        await asyncio.to_thread(upgrade, settings.database_url)
        engine = make_engine(settings.database_url)
        floor_engine = make_engine(settings.database_url, pool_pre_ping=False)
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
            for _ in range(2 * args.count):
                provider, beneficiary = rng.sample(members, 2)
                exchange, _ = await house.declare(
                    provider,
                    beneficiary,
                    role=Role.PROVIDER,
                    minutes=rng.randint(15, 90),
                    description="bench",
                )
                pending.append((beneficiary, exchange.key))

            async def accept(item: tuple[Any, str]) -> bool:
                try:
                    await house.act(item[0], item[1], ExchangeEvent.ACCEPT)
                except ledger.LimitBreach:
                    return False
                return True

            floor = floor_validation(floor_engine, house.terms, settings.url)
            node_side, floor_side = Side(), Side()
            node_counter, floor_counter = StatementCounter(engine), StatementCounter(floor_engine)
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            size = args.count // args.rounds
            for r in range(args.rounds):
                node_batch = pending[2 * r * size : (2 * r + 1) * size]
                floor_batch = pending[(2 * r + 1) * size : (2 * r + 2) * size]
                contenders = [
                    (node_side, node_counter, accept, node_batch, profiler),
                    (floor_side, floor_counter, floor, floor_batch, None),
                ]
                for side, counter, work, batch, prof in contenders[:: 1 if r % 2 else -1]:
                    await timed(side, counter, work, batch, args.concurrency, prof)
            sum_minutes, breaches = await invariants(sessionmaker, house.terms)
            async with read_only(sessionmaker) as session:
                document = (
                    await session.execute(
                        select(StoredActivity.document)
                        .where(StoredActivity.activity_type == "Accept")
                        .limit(1)
                    )
                ).scalar_one()
        await engine.dispose()
        await floor_engine.dispose()
    proof_per_s, ed25519_per_s = proof_rates(document, args.sign_seconds)
    report = ""
    if profiler is not None:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile_lines)
        report = out.getvalue()
    return Outcome(
        label, node_side, floor_side, proof_per_s, ed25519_per_s, sum_minutes, breaches, report
    )


def print_outcome(outcome: Outcome, args: argparse.Namespace) -> None:
    node, floor = outcome.node, outcome.floor
    print(
        f"\n{outcome.label}: {node.done} validations each, {args.concurrency} at a time, "
        f"interleaved in {args.rounds} rounds"
    )
    print("| what | per s | statements each | CPU ms each (this process) | ratio to floor |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, side in (
        ("clearing house (`act`, ACCEPT, signed)", node),
        ("floor: Core transaction, same locks and rows, unsigned", floor),
    ):
        print(
            f"| {name} | {side.per_s():,.0f} | {side.statements / max(side.done, 1):.1f} | "
            f"{1000 * side.cpu / max(side.done, 1):.2f} | "
            f"{side.per_s() / floor.per_s() if floor.per_s() else 0:.2f} |"
        )
    proof = "eddsa-jcs-2022 proof of an Accept (key parsed, 1 core)"
    print(f"| {proof} | {outcome.proof_per_s:,.0f} | | | |")
    print(f"| bare Ed25519 signature (1 core) | {outcome.ed25519_per_s:,.0f} | | | |")
    print(
        f"refused by a limit: clearing house {node.refused}, floor {floor.refused}; "
        f"balances sum to {outcome.sum_minutes} min; accounts past a limit: {outcome.breaches}"
    )
    if outcome.profile:
        print(outcome.profile)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000, help="validations per contender")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--members", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--sign-seconds", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-lines", type=int, default=30)
    add_database_argument(parser)
    args = parser.parse_args()
    outcomes = []
    for label, factory in backends(args.database_url):
        async with factory() as url:
            outcome = await run(label, url, args)
        print_outcome(outcome, args)
        outcomes.append(outcome)
    print()
    for outcome in outcomes:
        db = "postgresql" if outcome.label == "PostgreSQL" else "sqlite"
        print(
            f"RESULT exchanges db={db} per_s={outcome.node.per_s():.0f} "
            f"sum_minutes={outcome.sum_minutes} breaches={outcome.breaches}"
        )


if __name__ == "__main__":
    asyncio.run(main())
