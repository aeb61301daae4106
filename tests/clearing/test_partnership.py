"""Partnerships confirmed both ways (issue 12, finding 10): a member cannot declare an exchange
with a chamber that has not added ours, the refusal comes at once with its reason (API and
form), and the partnership is confirmed by signed activities between the two chambers."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select, update

from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.outbox import DELIVER, publish
from node.clearing.ledger.models import Exchange
from node.clearing.partners.models import Partner, Settlement
from node.clearing.partners.partnership import PARTNERSHIP_TYPE, ask_unconfirmed_partners
from node.clearing.partners.service import add_partner
from node.config import Settings
from node.db import read_only, session_scope
from node.jobs import Job, JobState
from tests.clearing._chambers import ClearingChamber as Chamber
from tests.clearing._chambers import bearer, two_chambers
from tests.harness.plugin import OpenArchipelago
from tests.web._members import PASSWORD, csrf_of, sign_in

DECLARATION = {"beneficiary": "@bob@gand.test", "minutes": 90, "description": "Un atelier"}


async def _partners(chamber: Chamber) -> dict[str, dict[str, Any]]:
    response = await chamber.client.get("/api/v1/partners")
    assert response.status_code == 200, response.text
    return {item["chamber"]: item for item in response.json()["items"]}


async def _count(chamber: Chamber, model: Any, *where: Any) -> int:
    async with read_only(chamber.node.sessionmaker) as session:
        return int(
            (
                await session.execute(select(func.count()).select_from(model).where(*where))
            ).scalar_one()
        )


async def _nothing_declared(chamber: Chamber) -> None:
    assert await _count(chamber, Exchange) == 0
    assert await _count(chamber, Settlement) == 0
    assert await _count(chamber, StoredActivity, StoredActivity.activity_type != "Offer") == 0
    assert await _count(chamber, Job, Job.kind != DELIVER) == 0  # no expiry job either


async def test_a_one_sided_partnership_refuses_the_declaration_at_once(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings, partners=False) as (lille, gand):
        await add_partner(lille.node.federation, gand.actor_uri, 600, by=None)
        await lille.deliver()  # Lille's offer reaches Gand, which has not added Lille
        await gand.deliver()
        assert (await _partners(lille))[gand.actor_uri]["confirmed"] is False
        assert (await _partners(lille))[gand.actor_uri]["confirmed_at"] is None
        assert await _partners(gand) == {}
        assert await _count(gand, StoredActivity) == 0  # the stranger's offer is not kept
        alice = await lille.member("alice")
        await gand.member("bob")

        refused = await lille.client.post(
            "/api/v1/exchanges", json=DECLARATION, headers=bearer(alice)
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["field"] == "beneficiary"
        assert "gand.test has not added this chamber as a partner" in refused.json()["error"]
        await _nothing_declared(lille)

        # Gand adds Lille: its offer confirms Lille's row, Lille's answer confirms Gand's.
        await add_partner(gand.node.federation, lille.actor_uri, 600, by=None)
        await gand.deliver()
        await lille.deliver()
        for here, there in ((lille, gand), (gand, lille)):
            item = (await _partners(here))[there.actor_uri]
            assert item["confirmed"] is True and item["confirmed_at"]
        declared = await lille.client.post(
            "/api/v1/exchanges", json=DECLARATION, headers=bearer(alice)
        )
        assert declared.status_code == 201, declared.text


async def test_the_form_says_why_in_french_and_keeps_what_was_typed(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings, partners=False) as (lille, gand):
        await add_partner(lille.node.federation, gand.actor_uri, 600, by=None)
        await lille.member("alice", password=PASSWORD)
        await gand.member("bob")
        assert (await sign_in(lille.client, "alice")).status_code == 303
        french = {"Accept-Language": "fr"}
        page = await lille.client.get("/clearing", headers=french)
        typed = {
            "role": "beneficiary",
            "counterparty": "@bob@gand.test",
            "duration": "1 h 30",
            "description": "Réparation du vélo <cargo>",
            "date": "2026-01-15",
            "bricks": "",
        }
        refused = await lille.client.post(
            "/clearing/exchanges",
            data={"csrf_token": csrf_of(page.text), **typed},
            headers=french,
        )
        assert refused.status_code == 422
        html = refused.text
        field = re.search(r'<input id="counterparty"[^>]*>', html)
        assert field and 'value="@bob@gand.test"' in field.group(0)
        assert 'aria-describedby="counterparty-error"' in field.group(0)
        error = re.search(r'<p class="error" id="counterparty-error">([^<]*)</p>', html)
        assert error, html
        assert error.group(1).startswith(
            "gand.test n&#39;a pas encore ajouté cette chambre comme partenaire"
        )
        assert 'value="1 h 30"' in html and 'value="2026-01-15"' in html
        assert ">Réparation du vélo &lt;cargo&gt;</textarea>" in html
        assert re.search(r'value="beneficiary" checked', html)
        await _nothing_declared(lille)


async def test_unconfirmed_partners_are_asked_again_and_a_stray_partnership_is_refused(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        # Partners from before the confirmation existed (or whose answer was lost).
        for chamber in (lille, gand):
            async with session_scope(chamber.node.sessionmaker) as session:
                await session.execute(update(Partner).values(confirmed_at=None))
        assert (await _partners(lille))[gand.actor_uri]["confirmed"] is False
        assert await ask_unconfirmed_partners(lille.node.federation) == 1
        await lille.deliver()
        await gand.deliver()
        for here, there in ((lille, gand), (gand, lille)):
            assert (await _partners(here))[there.actor_uri]["confirmed"] is True
        assert await ask_unconfirmed_partners(lille.node.federation) == 0

        # Gand's chamber states a partnership with somebody else: refused, nothing changes.
        async with session_scope(gand.node.sessionmaker) as session:
            actor = (
                await session.execute(select(LocalActor).where(LocalActor.username == "gand"))
            ).scalar_one()
            stray = await publish(
                gand.node.federation,
                session,
                actor,
                {
                    "type": "Offer",
                    "object": {
                        "type": PARTNERSHIP_TYPE,
                        "attributedTo": gand.actor_uri,
                        "partner": "https://roubaix.test/actors/roubaix",
                    },
                },
                inboxes=["https://lille.test/inbox"],
            )
        await gand.deliver()
        async with read_only(gand.node.sessionmaker) as session:
            job = (
                await session.execute(select(Job).where(Job.activity_pk == stray.id))
            ).scalar_one()
        assert job.state == JobState.FAILED and job.last_error.startswith("HTTP 422")
        assert "another chamber" in job.last_error
