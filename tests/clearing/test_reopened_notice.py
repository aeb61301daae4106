"""An accepted exchange whose settlement aborts is open again: both members are told
(``exchange.reopened``, issue 13), in their language, on the notifications API."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from node.config import Settings
from node.db import read_only
from node.members.models import Notification
from tests.clearing._chambers import ClearingChamber, bearer, settled_exchange, two_chambers
from tests.harness.plugin import OpenArchipelago


async def _notes(chamber: ClearingChamber, token: str, language: str = "en") -> list[Any]:
    answer = await chamber.client.get(
        "/api/v1/notifications", headers={**bearer(token), "Accept-Language": language}
    )
    assert answer.status_code == 200, answer.text
    items: list[Any] = answer.json()["items"]
    return items


async def test_both_members_hear_that_an_unsettled_acceptance_reopened_the_exchange(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings, credit_line=30) as (lille, gand):
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
        accepted = await gand.client.post(
            f"/api/v1/exchanges/{copy['key']}/accept", headers=bearer(bob)
        )
        assert accepted.json()["state"] == "settling"
        await gand.deliver()  # Lille refuses the settlement: Gand's credit line is 30 min
        await lille.deliver()  # its Reject: Gand's copy is proposed again
        for chamber, token, key in (
            (lille, alice, declared.json()["key"]),
            (gand, bob, copy["key"]),
        ):
            shown = await chamber.client.get(f"/api/v1/exchanges/{key}", headers=bearer(token))
            assert shown.json()["state"] == "proposed"
            [note] = [n for n in await _notes(chamber, token) if n["type"] == "exchange.reopened"]
            assert note["url"].endswith(f"/exchanges/{key}")
            assert "could not be settled" in note["summary"] and "Un atelier" in note["summary"]
        [french] = [n for n in await _notes(gand, bob, "fr") if n["type"] == "exchange.reopened"]
        assert "n’a pas pu être réglé" in french["summary"]
        [dutch] = [n for n in await _notes(lille, alice, "nl") if n["type"] == "exchange.reopened"]
        assert "weer open" in dutch["summary"]


async def test_a_settled_exchange_is_not_reopened(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        await settled_exchange(lille, gand)
        for chamber in (lille, gand):
            async with read_only(chamber.node.sessionmaker) as session:
                types = set((await session.execute(select(Notification.type))).scalars())
            assert "exchange.settled" in types and "exchange.reopened" not in types
