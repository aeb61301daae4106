"""How a page chooses its language: the chamber's ``language`` (Gand: Dutch), the browser,
the member's setting, and the switch on every page (``?lang=``, kept in a cookie), which
overrides them all; ``<html lang>`` says which one is shown."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from starlette.applications import Starlette

from node.config import Settings
from tests.web._members import add_member, csrf_of, sign_in

HTML = {"Accept": "text/html"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Gand: a chamber configured in Dutch."""
    return dataclasses.replace(settings, name="Kamer van Gent", language="nl")


async def test_a_dutch_chamber_speaks_dutch(client: httpx.AsyncClient) -> None:
    page = await client.get("/", headers=HTML)
    assert '<html lang="nl">' in page.text
    assert "Verrekenkamer" in page.text and "Chambre de compensation" not in page.text
    missing = await client.get("/no-such-page", headers=HTML)
    assert missing.status_code == 404
    assert "Pagina niet gevonden" in missing.text and '<html lang="nl">' in missing.text


async def test_the_browser_then_the_switch_choose(client: httpx.AsyncClient) -> None:
    french = await client.get("/ledger", headers={**HTML, "Accept-Language": "fr-BE,fr"})
    assert '<html lang="fr">' in french.text
    switched = await client.get("/ledger?lang=en", headers={**HTML, "Accept-Language": "fr"})
    assert '<html lang="en">' in switched.text and "Public ledger" in switched.text
    cookie = switched.headers["set-cookie"]
    assert cookie.startswith("archipel_lang=en;")
    assert "Max-Age=31536000" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    later = await client.get("/bricks", headers={**HTML, "Accept-Language": "fr"})
    assert '<html lang="en">' in later.text  # the cookie beats the browser
    assert "set-cookie" not in later.headers
    ignored = await client.get("/bricks?lang=de", headers=HTML)
    assert '<html lang="en">' in ignored.text and "set-cookie" not in ignored.headers


async def test_the_switch_beats_the_members_setting(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    account = await client.get("/account", headers=HTML)
    saved = await client.post(
        "/account/profile",
        data={"csrf_token": csrf_of(account.text), "display_name": "Marie", "language": "fr"},
    )
    assert saved.status_code == 303
    assert '<html lang="fr">' in (await client.get("/account", headers=HTML)).text
    await client.get("/account?lang=nl", headers=HTML)
    assert '<html lang="nl">' in (await client.get("/account", headers=HTML)).text


async def test_every_page_has_a_link_per_language_to_itself(client: httpx.AsyncClient) -> None:
    page = await client.get("/bricks?q=four&tag=énergie&lang=fr", headers=HTML)
    for code, name in (("fr", "Français"), ("nl", "Nederlands"), ("en", "English")):
        link = (
            f'<a href="/bricks?q=four&amp;tag=%C3%A9nergie&amp;lang={code}" lang="{code}"'
            f' hreflang="{code}"'
        )
        assert link in page.text, code
        assert f">{name}</a>" in page.text
    assert 'hreflang="fr" aria-current="true">Français</a>' in page.text
