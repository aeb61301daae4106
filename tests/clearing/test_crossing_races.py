"""Member actions that cross between two chambers converge to the declaring chamber's state
(issue 13, "found under faults").

Alice (Lille) declares an exchange for Bob (Gand): Lille decides. Each chamber's deliveries
wait in its queue until the test runs its worker, so the test chooses which of two crossing
activities arrives first. Both copies must end in the same state, and each chamber's history
must verify (`verify_exchange`, as ``archipel verify`` replays it) to that state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from node.activitypub.models import StoredActivity
from node.clearing.exchanges.activities import verify_exchange
from node.clearing.exchanges.house import ClearingHouse
from node.clearing.ledger.models import DeferredStep, Exchange
from node.config import Settings
from node.db import read_only, session_scope, utcnow
from node.jobs import Job, JobState
from node.process_store import ProcessMove
from tests.clearing._chambers import (
    ClearingChamber,
    actor_documents,
    bearer,
    exchange_document,
    two_chambers,
)
from tests.harness.plugin import OpenArchipelago


@dataclass
class Pair:
    lille: ClearingChamber
    gand: ClearingChamber
    alice: str
    bob: str
    at_lille: str
    at_gand: str

    async def act(self, side: str, action: str, **body: Any) -> dict[str, Any]:
        chamber, token, key = (
            (self.lille, self.alice, self.at_lille)
            if side == "lille"
            else (self.gand, self.bob, self.at_gand)
        )
        answer = await chamber.client.post(
            f"/api/v1/exchanges/{key}/{action}", json=body, headers=bearer(token)
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result

    async def states(self) -> tuple[str, str]:
        at_lille = await self.lille.client.get(
            f"/api/v1/exchanges/{self.at_lille}", headers=bearer(self.alice)
        )
        at_gand = await self.gand.client.get(
            f"/api/v1/exchanges/{self.at_gand}", headers=bearer(self.bob)
        )
        return at_lille.json()["state"], at_gand.json()["state"]

    async def verified(self) -> list[dict[str, Any]]:
        """Both chambers' documents, each checked against the history it serves."""
        documents = [
            await exchange_document(self.lille, self.at_lille),
            await exchange_document(self.gand, self.at_gand),
        ]
        signers = {a["actor"] for d in documents for a in d["history"]}
        actors = await actor_documents(self.lille, signers)
        for document in documents:
            result = verify_exchange(document["history"], actors, expected_state=document["state"])
            assert result.ok, (document["history"], result.problems)
        return documents


async def _declared(lille: ClearingChamber, gand: ClearingChamber, minutes: int = 60) -> Pair:
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
    return Pair(lille, gand, alice, bob, declared.json()["key"], copy["key"])


async def _hold(chamber: ClearingChamber, activity_type: str) -> None:
    """The chamber's pending deliveries of ``activity_type`` wait (an hour) until `_release`."""
    async with session_scope(chamber.node.sessionmaker) as session:
        held = select(StoredActivity.id).where(StoredActivity.activity_type == activity_type)
        await session.execute(
            update(Job)
            .where(Job.state == JobState.PENDING, Job.activity_pk.in_(held))
            .values(next_attempt_at=utcnow() + timedelta(hours=1))
        )


async def _release(chamber: ClearingChamber) -> None:
    async with session_scope(chamber.node.sessionmaker) as session:
        await session.execute(
            update(Job)
            .where(Job.state == JobState.PENDING, Job.activity_pk.is_not(None))
            .values(next_attempt_at=utcnow(), locked_until=None)
        )
    await chamber.deliver()


async def _corrections(chamber: ClearingChamber) -> list[tuple[str | None, str]]:
    async with read_only(chamber.node.sessionmaker) as session:
        moves = (await session.execute(select(ProcessMove))).scalars()
        return [(m.before, m.after) for m in moves if m.details.get("correction")]


async def test_a_refusal_crossing_an_amendment_reopens_the_refused_copy(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        pair = await _declared(lille, gand)
        await pair.act("lille", "amend", minutes=45)  # its Update waits in Lille's queue
        await pair.act("gand", "refuse", comment="non")  # its Reject waits in Gand's
        await gand.deliver()  # Lille ignores the refusal of a proposal it replaced
        await lille.deliver()  # the amendment reaches Gand's refused copy: reopened
        assert await pair.states() == ("proposed", "proposed")
        assert await _corrections(gand) == [("refused", "proposed")]
        at_lille, at_gand = await pair.verified()
        assert [a["type"] for a in at_lille["history"]] == ["Offer", "Update"]
        assert [a["type"] for a in at_gand["history"]] == ["Offer", "Reject", "Update"]
        assert at_lille["minutes"] == at_gand["minutes"] == 45
        assert at_lille["version"] == at_gand["version"] == 2
        # The replay takes the same rule: an Update that is not newer does not reopen it.
        stale = dict(at_gand["history"][2])
        stale["object"] = {**stale["object"], "version": 1}
        forged = [*at_gand["history"][:2], await lille.sign_as("alice", stale)]
        actors = await actor_documents(lille, {a["actor"] for a in forged})
        result = verify_exchange(forged, actors)
        assert not result.ok and "already refused" in result.problems[0], result.problems
        # The reopened copy goes on like any other: Bob accepts the new terms, Lille posts.
        await pair.act("gand", "accept")
        await gand.deliver()
        await lille.deliver()
        assert await pair.states() == ("posted", "posted")
        await pair.verified()


async def test_a_refusal_crossing_a_withdrawal_ends_withdrawn_on_both(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        pair = await _declared(lille, gand)
        await pair.act("lille", "withdraw")
        await pair.act("gand", "refuse")
        await gand.deliver()
        await lille.deliver()
        assert await pair.states() == ("withdrawn", "withdrawn")
        assert await _corrections(gand) == [("refused", "withdrawn")]
        at_lille, at_gand = await pair.verified()
        assert [a["type"] for a in at_gand["history"]] == ["Offer", "Reject", "Undo"]
        assert [a["type"] for a in at_lille["history"]] == ["Offer", "Undo"]


async def test_a_withdrawal_crossing_an_accept_ends_withdrawn_on_both(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    """Lille refuses the settlement (Gand's credit line is too short) and Alice withdraws at
    once; her Undo reaches Gand before Lille's decision, while Gand's copy is settling."""
    async with two_chambers(archipelago, settings, credit_line=30) as (lille, gand):
        pair = await _declared(lille, gand)
        assert (await pair.act("gand", "accept"))["state"] == "settling"
        await gand.deliver()  # the Offer of the settlement: Lille aborts it (a limit)
        await _hold(lille, "Reject")  # its decision is late...
        await pair.act("lille", "withdraw")
        await lille.deliver()  # ...the Undo is not: Gand keeps it until the decision
        async with read_only(gand.node.sessionmaker) as session:
            assert len((await session.execute(select(DeferredStep))).all()) == 1
        assert await pair.states() == ("withdrawn", "settling")
        await _release(lille)  # the decision: back to proposed, then the kept withdrawal
        assert await pair.states() == ("withdrawn", "withdrawn")
        at_lille, at_gand = await pair.verified()
        assert [a["type"] for a in at_gand["history"]] == [
            "Offer",
            "Accept",
            "Offer",
            "Reject",
            "Undo",
        ]
        assert [a["type"] for a in at_lille["history"]][-1] == "Undo"
        async with read_only(gand.node.sessionmaker) as session:
            assert (await session.execute(select(DeferredStep))).all() == []


async def test_a_withdrawal_before_the_settlement_arrives_is_the_decision(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    """Alice withdraws before Gand's Offer reaches Lille: Lille refuses the settlement and
    reports ``withdrawn``; the Undo Gand kept meanwhile is then no step any more."""
    async with two_chambers(archipelago, settings) as (lille, gand):
        pair = await _declared(lille, gand)
        await pair.act("gand", "accept")
        await pair.act("lille", "withdraw")
        await lille.deliver()  # the Undo reaches the settling copy: kept
        await gand.deliver()  # the Offer: Lille refuses, the exchange is withdrawn
        await lille.deliver()
        assert await pair.states() == ("withdrawn", "withdrawn")
        _, at_gand = await pair.verified()
        assert [a["type"] for a in at_gand["history"]] == ["Offer", "Accept", "Offer", "Reject"]


async def test_an_amendment_crossing_an_accept_reaches_the_copy_after_the_abort(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings, credit_line=30) as (lille, gand):
        pair = await _declared(lille, gand)
        await pair.act("gand", "accept")
        await gand.deliver()  # Lille aborts (a limit); its decision is late
        await _hold(lille, "Reject")
        await pair.act("lille", "amend", minutes=20)
        await lille.deliver()  # the Update reaches the settling copy: kept
        await _release(lille)
        assert await pair.states() == ("proposed", "proposed")
        at_lille, at_gand = await pair.verified()
        assert at_lille["minutes"] == at_gand["minutes"] == 20
        assert at_gand["history"][-1] == at_lille["history"][-1]  # the same signed Update
        await pair.act("gand", "accept")  # 20 minutes fit the credit line
        await gand.deliver()
        await lille.deliver()
        assert await pair.states() == ("posted", "posted")
        await pair.verified()


async def test_amendments_kept_while_settling_that_the_decision_reports_are_not_taken_twice(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    """Alice amends twice while Gand settles; Lille refuses the settlement (the terms
    changed) and its decision carries the last amendment: Gand takes it once, and drops the
    two Updates it kept (one older, one the same)."""
    async with two_chambers(archipelago, settings) as (lille, gand):
        pair = await _declared(lille, gand)
        await pair.act("gand", "accept")
        await pair.act("lille", "amend", minutes=50)
        await pair.act("lille", "amend", minutes=40)
        await lille.deliver()  # both Updates reach the settling copy: kept
        await gand.deliver()  # the Offer: Lille refuses it, the accepted terms are old
        await lille.deliver()  # its Reject, with the current proposal (version 3)
        assert await pair.states() == ("proposed", "proposed")
        at_lille, at_gand = await pair.verified()
        assert at_lille["version"] == at_gand["version"] == 3
        assert at_lille["minutes"] == at_gand["minutes"] == 40
        assert [a["type"] for a in at_gand["history"]][-1] == "Update"
        async with read_only(gand.node.sessionmaker) as session:
            assert (await session.execute(select(DeferredStep))).all() == []


async def test_a_refusal_crossing_an_expiry_ends_expired_on_both(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        pair = await _declared(lille, gand)
        async with session_scope(lille.node.sessionmaker) as session:
            await session.execute(
                update(Exchange)
                .where(Exchange.key == pair.at_lille)
                .values(expires_at=utcnow() - timedelta(minutes=1))
            )
        assert await ClearingHouse(lille.federation, lille.settings).expire_due() == 1
        await pair.act("gand", "refuse")
        await gand.deliver()  # Lille ignores a refusal of what it expired
        await lille.deliver()  # its expiry reaches Gand's refused copy
        assert await pair.states() == ("expired", "expired")
        assert await _corrections(gand) == [("refused", "expired")]
        _, at_gand = await pair.verified()
        assert [a["type"] for a in at_gand["history"]] == ["Offer", "Reject", "Reject"]
