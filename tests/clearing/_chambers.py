"""The clearing house between in-process chambers (the harness's ``archipelago`` fixture).

``ClearingChamber`` adds the ledger's views to the harness's ``Chamber``; ``open_accounts``,
``post`` and ``owe`` write positions straight into the ledgers, as settled exchanges leave
them; ``two_chambers`` and ``settle_between`` run a real exchange from Lille to Gand (declared,
accepted, settled through the inboxes and delivery jobs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingEntry,
    ClearingTransaction,
    TransactionKind,
    partner_account_key,
)
from node.clearing.ledger.rules import AccountKind
from node.clearing.partners.models import Partner
from node.clearing.partners.service import add_partner
from node.clearing.reconciliation.service import Reconciler
from node.clearing.rounds.service import RoundService
from node.config import Settings
from node.db import read_only, session_scope
from tests.harness.chambers import Archipelago, Chamber
from tests.harness.plugin import OpenArchipelago

__all__ = [
    "AS2",
    "IN_MODULE_LOOP",
    "ClearingChamber",
    "Settled",
    "bearer",
    "chamber_uri",
    "declared_to_gand",
    "open_accounts",
    "owe",
    "partner_both_ways",
    "post",
    "settle_between",
    "two_chambers",
]

AS2 = {"Accept": "application/activity+json"}

#: The mark of a test that uses chambers made once a module (the ``settled`` fixture): it
#: runs in the module's event loop, where those chambers' connections live.
IN_MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


def chamber_uri(name: str) -> str:
    return f"https://{name}.test/actors/{name}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class ClearingChamber(Chamber):
    """A chamber as the clearing tests see it: its services and its ledger."""

    @property
    def rounds(self) -> RoundService:
        rounds: RoundService = self.app.state.node.services.rounds
        return rounds

    @property
    def reconciler(self) -> Reconciler:
        reconciler: Reconciler = self.app.state.node.services.reconciler
        return reconciler

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


# -- positions written straight into the ledgers -------------------------------------------------


async def open_accounts(chamber: Chamber, others: list[str], credit_line: int) -> None:
    """The commons fund, and a partner (with its mirror account, floor ``-credit_line``) for
    each chamber of ``others``."""
    async with session_scope(chamber.federation.sessionmaker) as session:
        session.add(
            ClearingAccount(key=COMMONS_FUND_KEY, kind=AccountKind.COMMONS_FUND.value, balance=0)
        )
        for other in others:
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


async def owe(world: Archipelago, debtor: str, creditor: str, minutes: int) -> None:
    """Record, in both ledgers, that ``debtor`` owes ``creditor`` ``minutes`` more (as settled
    exchanges would; the commons fund stands for the members)."""
    await post(world[debtor], {partner_account_key(chamber_uri(creditor)): minutes})
    await post(world[creditor], {partner_account_key(chamber_uri(debtor)): -minutes})


# -- a real exchange between Lille and Gand ----------------------------------------------------


@asynccontextmanager
async def two_chambers(
    archipelago: OpenArchipelago,
    lille_settings: Settings,
    *,
    credit_line: int = 600,
    partners: bool = True,
    gand: str | Settings = "gand",
    clock: Callable[[], datetime] | None = None,
) -> AsyncIterator[tuple[ClearingChamber, ClearingChamber]]:
    """Lille (``lille_settings``) and Gand (``gand``: its name, or settings of its own),
    partners of each other with ``credit_line`` minutes both ways (none yet without
    ``partners``), on ``clock`` if given."""
    async with archipelago(lille_settings, gand, clock=clock, kind=ClearingChamber) as world:
        lille, gand = world["lille"], world["gand"]
        if partners:
            await partner_both_ways(lille, gand, credit_line)
        yield lille, gand


async def partner_both_ways(lille: Chamber, gand: Chamber, credit_line: int = 600) -> None:
    """Each adds the other (as an administrator would); the partnership offers and answers
    are delivered: confirmed."""
    for here, there in ((lille, gand), (gand, lille)):
        await add_partner(here.federation, there.uri, credit_line, by=None)
    for chamber in (lille, gand, lille):
        await chamber.deliver()


async def declared_to_gand(
    lille: Chamber, gand: Chamber, *, minutes: int = 60
) -> tuple[str, str, dict[str, Any]]:
    """Alice (Lille) declares ``minutes`` for Bob (Gand), delivered: the exchange's key on
    Lille, Bob's token and Gand's copy of the exchange as Bob's API lists it."""
    alice = await lille.member("alice")
    bob = await gand.member("bob")
    declared = await lille.client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "@bob@gand.test", "minutes": minutes, "description": "Un atelier"},
        headers=bearer(alice),
    )
    assert declared.status_code == 201, declared.text
    await lille.deliver()
    [copy] = (await gand.client.get("/api/v1/exchanges", headers=bearer(bob))).json()["items"]
    return declared.json()["key"], bob, copy


async def settled_exchange(lille: Chamber, gand: Chamber, *, minutes: int = 120) -> tuple[str, str]:
    """Alice (Lille) declares ``minutes`` for Bob (Gand); Bob accepts; the chambers settle it
    (Lille decides: commit, or abort when a limit refuses). Returns the exchange's key on
    Lille and on Gand."""
    key, bob, copy = await declared_to_gand(lille, gand, minutes=minutes)
    accepted = await gand.client.post(
        f"/api/v1/exchanges/{copy['key']}/accept", headers=bearer(bob)
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "settling"
    await gand.deliver()  # the Offer of the settlement: Lille decides
    await lille.deliver()  # Lille's Accept: Gand posts its holds
    return key, copy["key"]


async def exchange_document(chamber: Chamber, key: str) -> dict[str, Any]:
    response = await chamber.client.get(f"/exchanges/{key}", headers=AS2)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def actor_documents(chamber: Chamber, uris: set[str]) -> list[dict[str, Any]]:
    """The public actor documents, fetched over the chambers' network."""
    async with httpx.AsyncClient(transport=chamber.network) as http:
        return [(await http.get(uri, headers=AS2)).json() for uri in sorted(uris)]


@dataclass
class Settled:
    """A cross-chamber exchange as both chambers serve it, and the actors who signed it."""

    lille: ClearingChamber
    gand: ClearingChamber
    at_lille: dict[str, Any]
    at_gand: dict[str, Any]
    keys: tuple[str, str]
    actors: list[dict[str, Any]]


async def settle_between(
    lille: ClearingChamber, gand: ClearingChamber, *, minutes: int = 120
) -> Settled:
    keys = await settled_exchange(lille, gand, minutes=minutes)
    at_lille = await exchange_document(lille, keys[0])
    at_gand = await exchange_document(gand, keys[1])
    signers = {a["actor"] for a in at_lille["history"] + at_gand["history"]}
    return Settled(lille, gand, at_lille, at_gand, keys, await actor_documents(lille, signers))
