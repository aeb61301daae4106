"""The profile shows a balance the way every other page does: "1 h 30", not "1.50"."""

from __future__ import annotations

import httpx

from node.clearing.exchanges.house import ClearingHouse
from node.clearing.exchanges.states import ExchangeEvent, Role
from tests.clearing.conftest import MakeMember


async def test_the_profile_shows_the_balance_in_hours_and_minutes(
    house: ClearingHouse, make_member: MakeMember, client: httpx.AsyncClient
) -> None:
    alice, _ = await make_member("alice")
    bob, _ = await make_member("bob")
    exchange, _ = await house.declare(
        alice, bob, role=Role.PROVIDER, minutes=90, description="Jardinage"
    )
    await house.act(bob, exchange.key, ExchangeEvent.ACCEPT)
    page = await client.get("/@alice", headers={"Accept": "text/html"})
    assert "Solde : 1 h 30" in page.text and "1.50" not in page.text
    other = await client.get("/@bob", headers={"Accept": "text/html"})
    assert "Solde : -1 h 30" in other.text
