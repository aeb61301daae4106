"""Three chambers in one process: Lille, Gand and Roubaix, each an app on its own database.

Their HTTP clients go through one router (an ``httpx.MockTransport``) that hands each request
to the app of its host, and can drop or refuse chosen requests (``intercept``). They share one
fixed, movable clock; tests step the workers (``settle``) instead of running them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from starlette.applications import Starlette

from node.activitypub.federation import Federation
from node.clearing.ledger import AccountKind
from node.clearing.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingEntry,
    ClearingTransaction,
    TransactionKind,
    partner_account_key,
)
from node.clearing.partner_models import Partner
from node.clearing.round_service import RoundService, register_round_handlers, round_job_handlers
from node.config import Settings, new_settings
from node.db import read_only, session_scope
from node.jobs import Worker
from tests.activitypub._remote import quiet_app

NAMES = ("lille", "gand", "roubaix")


def chamber_uri(name: str) -> str:
    return f"https://{name}.test/actors/{name}"


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Chamber:
    name: str
    app: Starlette
    settings: Settings
    worker: Worker

    @property
    def uri(self) -> str:
        return chamber_uri(self.name)

    @property
    def federation(self) -> Federation:
        federation: Federation = self.app.state.node.federation
        return federation

    @property
    def rounds(self) -> RoundService:
        return RoundService.from_settings(self.federation, self.settings)

    async def balances(self) -> dict[str, int]:
        async with read_only(self.federation.sessionmaker) as session:
            rows = await session.execute(select(ClearingAccount.key, ClearingAccount.balance))
            return dict(rows.all())

    async def mirror(self, other: Chamber) -> int:
        return (await self.balances())[partner_account_key(other.uri)]

    async def round_transactions(self) -> list[ClearingTransaction]:
        async with read_only(self.federation.sessionmaker) as session:
            rows = await session.execute(
                select(ClearingTransaction).where(ClearingTransaction.kind == TransactionKind.ROUND)
            )
            return list(rows.scalars())

    async def entries_replay_to_balances(self) -> bool:
        """Every account's entries sum to its stored balance."""
        async with read_only(self.federation.sessionmaker) as session:
            sums = dict(
                (
                    await session.execute(
                        select(ClearingEntry.account_id, func.sum(ClearingEntry.amount)).group_by(
                            ClearingEntry.account_id
                        )
                    )
                ).all()
            )
            accounts = (await session.execute(select(ClearingAccount))).scalars()
            return all(sums.get(a.id, 0) == a.balance for a in accounts)


Intercept = Callable[[httpx.Request, dict[str, Any] | None], int | None]


@dataclass
class Archipelago:
    chambers: dict[str, Chamber]
    clock: Clock
    #: Called with every request (and its JSON body, if any): a status to answer instead of
    #: delivering it, or None to deliver it.
    intercept: Intercept | None = None
    sent: list[dict[str, Any]] = field(default_factory=list)

    def __getitem__(self, name: str) -> Chamber:
        return self.chambers[name]

    async def route(self, request: httpx.Request) -> httpx.Response:
        body = None
        if request.method == "POST":
            try:
                body = json.loads(request.content)
            except ValueError:
                body = None
        if self.intercept is not None:
            status = self.intercept(request, body)
            if status is not None:
                return httpx.Response(status, text="intercepted")
        if body is not None:
            self.sent.append(body)
        app = self.chambers[str(request.url.host).split(".")[0]].app
        return await httpx.ASGITransport(app=app).handle_async_request(request)

    async def settle(self, max_passes: int = 100) -> None:
        """Run every chamber's due jobs until none is left."""
        for _ in range(max_passes):
            ran = 0
            for chamber in self.chambers.values():
                ran += await chamber.worker.run_once()
            if ran == 0:
                return
        raise AssertionError("the jobs never settle")

    async def owe(self, debtor: str, creditor: str, minutes: int) -> None:
        """Record, in both ledgers, that ``debtor`` owes ``creditor`` ``minutes`` more (as
        settled exchanges would; the commons fund stands for the members)."""
        await post(self[debtor], {partner_account_key(chamber_uri(creditor)): minutes})
        await post(self[creditor], {partner_account_key(chamber_uri(debtor)): -minutes})


async def post(chamber: Chamber, postings: dict[str, int]) -> None:
    """One balanced transaction: ``postings`` and the opposite on the commons fund."""
    async with session_scope(chamber.federation.sessionmaker) as session:
        keys = [*postings, COMMONS_FUND_KEY]
        accounts = {
            a.key: a
            for a in (
                await session.execute(select(ClearingAccount).where(ClearingAccount.key.in_(keys)))
            ).scalars()
        }
        row = ClearingTransaction(kind=TransactionKind.EXCHANGE, memo="test position")
        session.add(row)
        await session.flush()
        lines = {**postings, COMMONS_FUND_KEY: -sum(postings.values())}
        for key, amount in lines.items():
            account = accounts[key]
            account.balance += amount
            session.add(
                ClearingEntry(
                    transaction_id=row.id,
                    account_id=account.id,
                    amount=amount,
                    balance_after=account.balance,
                )
            )


async def _open_accounts(chamber: Chamber, credit_line: int) -> None:
    async with session_scope(chamber.federation.sessionmaker) as session:
        session.add(
            ClearingAccount(key=COMMONS_FUND_KEY, kind=AccountKind.COMMONS_FUND.value, balance=0)
        )
        for other in NAMES:
            if other == chamber.name:
                continue
            account = ClearingAccount(
                key=partner_account_key(chamber_uri(other)),
                kind=AccountKind.CHAMBER.value,
                partner_actor_uri=chamber_uri(other),
                balance=0,
                floor=-credit_line,
            )
            session.add(account)
            await session.flush()
            session.add(
                Partner(
                    chamber_uri=chamber_uri(other),
                    inbox=f"https://{other}.test/inbox",
                    name=other.title(),
                    handle=f"@{other}@{other}.test",
                    credit_line_minutes=credit_line,
                    account_id=account.id,
                )
            )


def _wire(app: Starlette) -> None:
    dispatcher = app.state.node.dispatcher
    if not any(h.__name__ == "round_on_invite" for h in dispatcher.handlers_for("Invite")):
        register_round_handlers(dispatcher)


@asynccontextmanager
async def archipelago(
    database_urls: dict[str, str], tmp_path: Path, now: datetime, *, credit_line: int = 20 * 60
) -> AsyncIterator[Archipelago]:
    """Lille, Gand and Roubaix, partners of one another with ``credit_line`` each way."""
    clock = Clock(now)
    chambers: dict[str, Chamber] = {}
    world = Archipelago(chambers, clock)
    async with AsyncExitStack() as stack:
        for name in NAMES:
            settings = new_settings(
                tmp_path / name,
                url=f"https://{name}.test",
                name=f"Chambre de {name.title()}",
                chamber_username=name,
                database_url=database_urls[name],
            )
            app = await stack.enter_async_context(quiet_app(settings))
            federation = app.state.node.federation
            federation.clock = clock
            federation.http = httpx.AsyncClient(transport=httpx.MockTransport(world.route))
            stack.push_async_callback(federation.http.aclose)
            _wire(app)
            worker = Worker(
                federation.sessionmaker,
                {**app.state.node.worker.handlers, **round_job_handlers(federation, settings)},
                retry_base=10.0,
                clock=clock,
            )
            chambers[name] = Chamber(name, app, settings, worker)
        for chamber in chambers.values():
            await _open_accounts(chamber, credit_line)
        yield world
