"""The preparer's check job: past the deadline without a decision, ask the decider again."""

from __future__ import annotations

from sqlalchemy import select

from node.activitypub.outbox import publish
from node.clearing.exchanges.house import ClearingHouse
from node.clearing.partners.models import (
    Settlement,
    SettlementState,
)
from node.clearing.partners.service import (
    partner_by_uri,
    urgent_until,
)
from node.clearing.settlement.common import (
    MAX_ABORT_REQUEST_DELAY,
    SETTLEMENT_CHECK_JOB,
    SETTLEMENT_TYPE,
    chamber_actor,
)
from node.db import session_scope
from node.jobs import Done, Handler, Job, Outcome, Retry, next_delay

__all__ = ["settlement_job_handlers"]


def settlement_job_handlers(house: ClearingHouse) -> dict[str, Handler]:
    async def check(job: Job) -> Outcome:
        uri = str(job.payload.get("settlement", ""))
        now = house.clock()
        async with session_scope(house.sessionmaker) as session:
            settlement = (
                await session.execute(
                    select(Settlement).where(Settlement.uri == uri).with_for_update()
                )
            ).scalar_one_or_none()
            if settlement is None or settlement.state != SettlementState.PREPARED:
                return Done()
            if now < settlement.deadline:
                return Retry("waiting for the decision", delay=settlement.deadline - now)
            partner = await partner_by_uri(session, settlement.partner_uri)
            if partner is None:
                return Retry(f"{settlement.partner_uri} is no longer a partner")
            chamber = await chamber_actor(house, session)
            prepare = settlement.evidence.get("prepare", {})
            await publish(
                house.federation,
                session,
                chamber,
                {
                    "type": "Undo",
                    "to": [partner.chamber_uri],
                    "context": prepare.get("context"),
                    "object": {
                        "type": "Offer",
                        "id": settlement.prepare_activity_id,
                        "actor": prepare.get("actor"),
                        "object": {
                            "type": SETTLEMENT_TYPE,
                            "id": settlement.uri,
                            "exchange": (prepare.get("object") or {}).get("exchange"),
                        },
                    },
                },
                inboxes=[partner.inbox],
                now=now,
                urgent_until=urgent_until(settlement.deadline, now),
            )
        delay = min(
            next_delay(job.attempts + 1, base=house.settings.retry_base_seconds * 4),
            MAX_ABORT_REQUEST_DELAY,
        )
        return Retry("no decision yet: asked the deciding chamber again", delay=delay)

    return {SETTLEMENT_CHECK_JOB: check}
