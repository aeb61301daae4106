"""Settlement messages are not paused with their host while their deadline runs (issue 12,
finding 10): Gand has paused Lille's host after five failed deliveries, yet the ``Offer`` of a
settlement still reaches Lille (which decides), while an ordinary activity waits; once Lille
answers the ``Offer``, its host is no longer paused and what waited goes out too."""

from __future__ import annotations

from sqlalchemy import select

from node.activitypub.models import HostHealth, LocalActor, StoredActivity
from node.activitypub.outbox import DeliveryPolicy, publish
from node.clearing.partners.models import Settlement, SettlementRole, SettlementState
from node.config import Settings
from node.db import read_only, session_scope, utcnow
from node.jobs import Job, JobState
from tests.clearing._chambers import ClearingChamber as Chamber
from tests.clearing._chambers import bearer, two_chambers
from tests.harness.plugin import OpenArchipelago


async def _note_to_lille(gand: Chamber, text: str) -> StoredActivity:
    """An ordinary activity from Gand's chamber to Lille's inbox."""
    async with session_scope(gand.node.sessionmaker) as session:
        actor = (
            await session.execute(select(LocalActor).where(LocalActor.username == "gand"))
        ).scalar_one()
        return await publish(
            gand.node.federation,
            session,
            actor,
            {"type": "Create", "object": {"type": "Note", "content": text}},
            inboxes=["https://lille.test/inbox"],
        )


async def _job_of(chamber: Chamber, stored: StoredActivity) -> Job:
    async with read_only(chamber.node.sessionmaker) as session:
        return (await session.execute(select(Job).where(Job.activity_pk == stored.id))).scalar_one()


async def test_a_settlement_reaches_a_paused_host_while_an_ordinary_activity_waits(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        alice = await lille.member("alice")
        bob = await gand.member("bob")
        declared = await lille.client.post(
            "/api/v1/exchanges",
            json={"beneficiary": "@bob@gand.test", "minutes": 60, "description": "Un atelier"},
            headers=bearer(alice),
        )
        assert declared.status_code == 201, declared.text
        await lille.deliver()

        # Lille cannot be reached from Gand: five deliveries fail, its host is paused.
        lille_transport = gand.network.transports.pop("lille.test")
        for n in range(DeliveryPolicy.pause_after_failures):
            await _note_to_lille(gand, f"lost {n}")
        await gand.deliver()
        gand.network.transports["lille.test"] = lille_transport
        async with read_only(gand.node.sessionmaker) as session:
            health = await session.get(HostHealth, "lille.test")
        assert health is not None and health.paused_until is not None
        assert health.paused_until > utcnow()

        # Lille answers again, but the pause holds an ordinary activity back...
        waiting = await _note_to_lille(gand, "waits for the pause to end")
        await gand.deliver()
        job = await _job_of(gand, waiting)
        assert job.state == JobState.PENDING and "paused" in job.last_error

        # ... not the settlement: Bob accepts, Gand's Offer reaches Lille, which decides.
        [copy] = (await gand.client.get("/api/v1/exchanges", headers=bearer(bob))).json()["items"]
        accepted = await gand.client.post(
            f"/api/v1/exchanges/{copy['key']}/accept", headers=bearer(bob)
        )
        assert accepted.status_code == 200, accepted.text
        await gand.deliver()
        async with read_only(lille.node.sessionmaker) as session:
            decided = (
                await session.execute(
                    select(Settlement).where(Settlement.role == SettlementRole.DECIDER)
                )
            ).scalar_one_or_none()
        assert decided is not None and decided.state == SettlementState.COMMITTED
        await lille.deliver()  # Lille's Accept: Gand posts its side
        posted = await gand.client.get(f"/api/v1/exchanges/{copy['key']}", headers=bearer(bob))
        assert posted.json()["state"] == "posted"
        # Lille answered the Offer: the ordinary activity no longer waited for the pause to end
        # (it was sent; Lille refused it: a Note without an id)
        job = await _job_of(gand, waiting)
        assert job.state == JobState.FAILED and "HTTP 400" in job.last_error, job.last_error
