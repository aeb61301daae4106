"""The deadline a preparing chamber keeps is the one its ``Offer`` announces (``endTime``, to
the second): the decider refuses a late settlement from the moment the preparer asks to abort
it, and the decider has at least the configured timeout less a second."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from node.activitypub.models import StoredActivity
from node.clearing.partners.models import Settlement, SettlementRole
from node.config import Settings
from node.db import read_only, utcnow
from tests.clearing._chambers import bearer, declared_to_gand, two_chambers
from tests.harness.plugin import OpenArchipelago


async def test_the_kept_deadline_is_the_announced_one(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        _, bob, copy = await declared_to_gand(lille, gand)
        accepted_at = utcnow()
        accepted = await gand.client.post(
            f"/api/v1/exchanges/{copy['key']}/accept", headers=bearer(bob)
        )
        assert accepted.status_code == 200, accepted.text
        async with read_only(gand.node.sessionmaker) as session:
            settlement = (
                await session.execute(
                    select(Settlement).where(Settlement.role == SettlementRole.PREPARER)
                )
            ).scalar_one()
            offer = (
                await session.execute(
                    select(StoredActivity.document).where(
                        StoredActivity.activity_id == settlement.prepare_activity_id
                    )
                )
            ).scalar_one()
    announced = datetime.fromisoformat(offer["object"]["endTime"].replace("Z", "+00:00"))
    assert settlement.deadline == announced
    timeout = timedelta(seconds=gand.node.settings.clearing_settlement_timeout_seconds)
    assert accepted_at + timeout - timedelta(seconds=1) < settlement.deadline
    assert settlement.deadline <= utcnow() + timeout
