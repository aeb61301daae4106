"""Faults found under load (issue 13): a late settlement ``Offer`` and its abort request
arriving together; the declaring chamber's copy of an exchange aborted at its deadline.

Gand's settlements time out after one second (of the chambers' clock, which the test moves);
its ``Offer`` to Lille is held back past the deadline, so that Gand also asks Lille to abort
it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete, select, update

from node.activitypub.models import StoredActivity
from node.clearing.exchanges.activities import verify_exchange
from node.clearing.partners.models import Settlement, SettlementRole, SettlementState
from node.config import Settings
from node.db import read_only, session_scope
from node.jobs import Job, JobState
from tests.clearing._chambers import (
    ClearingChamber as Chamber,
)
from tests.clearing._chambers import (
    actor_documents,
    bearer,
    exchange_document,
    two_chambers,
)
from tests.harness.clock import Clock
from tests.harness.plugin import OpenArchipelago, chamber_settings


class Recorder(httpx.AsyncBaseTransport):
    """Lille's transport, keeping the status of every answer (or the exception raised)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.outcomes: list[Any] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self.inner.handle_async_request(request)
        except Exception as exc:
            self.outcomes.append(type(exc).__name__)
            raise
        self.outcomes.append(response.status_code)
        return response


@pytest.fixture
async def late(
    settings: Settings,
    archipelago: OpenArchipelago,
    second_database_url: str,
    tmp_path: Path,
    clock: Clock,
) -> AsyncIterator[tuple[Chamber, Chamber, dict[str, str], Recorder]]:
    """Bob (Gand) accepted Alice's (Lille) exchange; Gand's Offer could not reach Lille
    before its deadline and Gand has asked Lille to abort: both messages wait for Lille."""
    gand_settings = dataclasses.replace(
        chamber_settings(tmp_path, "gand", second_database_url),
        clearing_settlement_timeout_seconds=1,
    )
    async with two_chambers(archipelago, settings, gand=gand_settings, clock=clock) as (
        lille,
        gand,
    ):
        alice = await lille.member("alice")
        bob = await gand.member("bob")
        declared = await lille.client.post(
            "/api/v1/exchanges",
            json={"beneficiary": "@bob@gand.test", "minutes": 60, "description": "Un atelier"},
            headers=bearer(alice),
        )
        assert declared.status_code == 201, declared.text
        await lille.deliver()
        [copy] = (await gand.client.get("/api/v1/exchanges", headers=bearer(bob))).json()["items"]
        lille_transport = gand.network.transports.pop("lille.test")
        accepted = await gand.client.post(
            f"/api/v1/exchanges/{copy['key']}/accept", headers=bearer(bob)
        )
        assert accepted.status_code == 200, accepted.text
        clock.advance(seconds=1.2)  # past the settlement's deadline
        await gand.deliver()  # the Offer fails; the check job asks for an abort (fails too)
        recorder = Recorder(lille_transport)
        gand.network.transports["lille.test"] = recorder
        async with session_scope(gand.node.sessionmaker) as session:
            await session.execute(
                update(Job)
                .where(Job.state == JobState.PENDING, Job.activity_pk.is_not(None))
                .values(next_attempt_at=clock(), locked_until=None)
            )
        keys = {"lille": declared.json()["key"], "gand": copy["key"], "alice": alice, "bob": bob}
        yield lille, gand, keys, recorder


async def _offer_delivery(gand: Chamber) -> Job:
    async with read_only(gand.node.sessionmaker) as session:
        return (
            await session.execute(
                select(Job)
                .join(StoredActivity, StoredActivity.id == Job.activity_pk)
                .where(StoredActivity.activity_type == "Offer", Job.state == JobState.PENDING)
            )
        ).scalar_one()


async def test_a_late_offer_and_its_abort_request_together_are_both_answered(
    late: tuple[Chamber, Chamber, dict[str, str], Recorder],
) -> None:
    lille, gand, keys, recorder = late
    await gand.node.worker.run_once()  # both deliveries at once, on two connections
    assert len(recorder.outcomes) == 2
    assert all(isinstance(o, int) and o < 300 for o in recorder.outcomes), recorder.outcomes
    for chamber in (lille, gand, lille, gand):
        await chamber.deliver()
    async with read_only(lille.node.sessionmaker) as session:
        [decided] = (
            await session.execute(
                select(Settlement).where(Settlement.role == SettlementRole.DECIDER)
            )
        ).scalars()
    assert decided.state == SettlementState.ABORTED
    at_lille = await lille.client.get(
        f"/api/v1/exchanges/{keys['lille']}", headers=bearer(keys["alice"])
    )
    at_gand = await gand.client.get(
        f"/api/v1/exchanges/{keys['gand']}", headers=bearer(keys["bob"])
    )
    assert at_lille.json()["state"] == at_gand.json()["state"] == "proposed"


async def test_the_declaring_chamber_keeps_its_signed_abort_when_the_offer_never_came(
    late: tuple[Chamber, Chamber, dict[str, str], Recorder],
) -> None:
    lille, gand, keys, recorder = late
    lost = await _offer_delivery(gand)
    async with session_scope(gand.node.sessionmaker) as session:
        await session.execute(delete(Job).where(Job.id == lost.id))
    for chamber in (gand, lille, gand):
        await chamber.deliver()
    at_lille = await exchange_document(lille, keys["lille"])
    at_gand = await exchange_document(gand, keys["gand"])
    assert [a["type"] for a in at_gand["history"]] == ["Offer", "Accept", "Offer", "Reject"]
    assert [a["type"] for a in at_lille["history"]] == ["Offer", "Reject"]
    assert at_lille["history"][-1] == at_gand["history"][-1]  # the same signed decision
    signers = {a["actor"] for a in at_lille["history"] + at_gand["history"]}
    actors = await actor_documents(lille, signers)
    for document in (at_lille, at_gand):
        result = verify_exchange(document["history"], actors, expected_state=document["state"])
        assert result.ok, result.problems
        assert document["state"] == "proposed"
