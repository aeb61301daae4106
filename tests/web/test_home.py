"""The home page explains the chamber and shows its latest bricks and a few figures."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from tests.bricks._helpers import BRICK, add_member, bearer


async def test_the_home_page_explains_the_chamber(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await add_member(app, "marie")
    await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))
    page = await client.get("/", headers={"Accept": "text/html", "Accept-Language": "en"})
    text = page.text
    assert "What is this chamber?" in text and "A brick is a piece of knowledge" in text
    assert "The clearing house: hours" in text and "How to join" in text
    assert "Publish one brick and the clearing house opens to you." in text
    assert BRICK["title"] in text  # the latest bricks
    assert "1 member" in text and "1 brick published here" in text and "0 h 00 exchanged" in text
    assert "Partner chambers" in text and 'href="/register"' in text
