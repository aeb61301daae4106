"""Publishing the brick that meets the chamber's rule tells the member their clearing
access opened (``clearing.opened``), once, co-authors included; in the same transaction
as the brick."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
from starlette.applications import Starlette

from node.config import Settings
from tests.bricks._helpers import BRICK, add_member, bearer


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return replace(settings, clearing_min_bricks=2, clearing_min_days=0)


async def _opened(client: httpx.AsyncClient, token: str) -> list[str]:
    found = await client.get("/api/v1/notifications", headers=bearer(token))
    assert found.status_code == 200, found.text
    return [n["url"] for n in found.json()["items"] if n["type"] == "clearing.opened"]


async def test_the_brick_that_meets_the_rule_opens_access_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie")
    paul = await add_member(app, "paul")
    first = await client.post("/api/v1/bricks", json=BRICK, headers=bearer(marie))
    assert first.status_code == 201, first.text
    assert await _opened(client, marie) == []  # one brick of the two the rule asks
    second = {**BRICK, "title": "Le compost", "authors": ["paul"]}
    assert (await client.post("/api/v1/bricks", json=second, headers=bearer(marie))).is_success
    assert await _opened(client, marie) == ["https://lille.test/account"]
    assert await _opened(client, paul) == []  # paul co-wrote one brick only
    third = {**BRICK, "title": "La ruche", "authors": ["marie"]}
    assert (await client.post("/api/v1/bricks", json=third, headers=bearer(paul))).is_success
    assert await _opened(client, paul) == ["https://lille.test/account"]
    assert await _opened(client, marie) == ["https://lille.test/account"]  # once, not again
