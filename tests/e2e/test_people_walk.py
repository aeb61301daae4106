"""The archipelago in a real browser (issue 15): two chambers served by uvicorn on 127.0.0.1,
each with its worker; Alice of Lille searches Bob's handle from her timeline, opens his page
here, follows him with the button, and reads his new brick in her timeline.

The offers part of the issue's walk (offer → exchange declared from it) continues from
``walk_to_the_timeline`` in its own test.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from node.config import Settings, new_settings
from tests.e2e.conftest import _free_port, launch_chromium
from tests.e2e.test_member_journey import check_accessible, screenshots_on_failure
from tests.web._members import PASSWORD

BRICK = {
    "title": "Traduire une demande de subvention",
    "category": "methode",
    "summary": "Les étapes pour traduire un dossier NL-FR.",
    "body": "Relire à deux.",
    "tags": ["traduction"],
}


async def _seed(settings: Settings, username: str) -> str:
    """The chamber actor and an approved member (password ``PASSWORD``); their token."""
    from node.chamber import ensure_chamber_actor
    from node.db import make_engine, make_sessionmaker, session_scope
    from node.members.models import MemberStatus
    from node.members.service import create_member, create_token
    from node.secretbox import SecretBox

    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            box = SecretBox(settings.secret_key)
            await ensure_chamber_actor(session, settings, box)
            member = await create_member(
                session,
                box,
                username=username,
                chamber_username=settings.chamber_username,
                password=PASSWORD,
                status=MemberStatus.APPROVED,
            )
            return await create_token(session, member)
    finally:
        await engine.dispose()


def _serve(settings: Settings) -> Any:
    import uvicorn

    from node.web.app import create_app

    port = int(settings.url.rsplit(":", 1)[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    return server


@pytest.fixture
def two_chambers(tmp_path: Path, sqlite_template: Path) -> Iterator[dict[str, Any]]:
    """Lille (Alice) and Gand (Bob), real servers that federate over 127.0.0.1."""
    servers = []
    found: dict[str, Any] = {}
    try:
        for name, member in (("lille", "alice"), ("gand", "bob")):
            database = tmp_path / f"{name}.db"
            shutil.copyfile(sqlite_template, database)
            settings = new_settings(
                tmp_path / name,
                url=f"http://127.0.0.1:{_free_port()}",
                name=f"Chambre de {name.title()}",
                chamber_username=name,
                database_url=f"sqlite+aiosqlite:///{database}",
                allow_private_addresses=True,
            )
            token = asyncio.run(_seed(settings, member))
            servers.append(_serve(settings))
            found[name] = settings.url
            found[f"{member}_token"] = token
        yield found
    finally:
        for server in servers:
            server.should_exit = True


@pytest.fixture
def people_browser(chromium: str, two_chambers: dict[str, Any]) -> Iterator[Any]:
    """Started after the servers (their set-up runs its own event loop first)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright, chromium)
        try:
            yield launched
        finally:
            launched.close()


def _until(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Polls ``condition``: soon after the first try (a delivery between the chambers takes
    a tenth of a second or so), then every 0.3 s."""
    deadline = time.monotonic() + timeout
    pause = 0.05
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(pause)
        pause = min(pause * 2, 0.3)


def walk_to_the_timeline(page: Any, chambers: dict[str, Any]) -> str:
    """Alice signs in, searches Bob's handle, follows him; returns the handle."""
    lille, gand = chambers["lille"], chambers["gand"]
    handle = f"@bob@{gand.removeprefix('http://')}"
    page.goto(lille + "/login?lang=en")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(re.compile(r".*/account$"))

    page.get_by_role("link", name="Timeline").first.click()
    page.wait_for_url(re.compile(r".*/timeline$"))
    check_accessible(page)
    page.get_by_label("Find a person or a chamber").fill(handle)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url(re.compile(re.escape(lille + "/" + handle) + "$"))
    check_accessible(page)
    assert page.locator("h1").inner_text() == "bob"
    assert "Chambre de Gand" in page.content()

    page.get_by_role("button", name="Follow", exact=True).click()
    page.wait_for_url(re.compile(re.escape(lille + "/" + handle) + "$"))
    assert page.get_by_role("status").count() >= 1  # the request waits for Gand's answer

    def followed() -> bool:
        page.reload()
        return page.get_by_role("button", name="Unfollow").count() == 1

    _until(followed, "Gand to accept the follow")
    return handle


def test_search_a_handle_follow_and_read_the_timeline(
    two_chambers: dict[str, Any], people_browser: Any
) -> None:
    context = people_browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    with screenshots_on_failure("people-walk", page):
        walk_to_the_timeline(page, two_chambers)
        published = httpx.post(
            two_chambers["gand"] + "/api/v1/bricks",
            json=BRICK,
            headers={"Authorization": f"Bearer {two_chambers['bob_token']}"},
            timeout=30,
        )
        assert published.status_code == 201, published.text

        def in_the_timeline() -> bool:
            page.goto(two_chambers["lille"] + "/timeline")
            return page.get_by_text(BRICK["title"]).count() > 0

        _until(in_the_timeline, "Bob's brick in Alice's timeline")
        check_accessible(page)
        page.get_by_role("link", name=BRICK["title"]).first.click()
        page.wait_for_url(re.compile(r".*/bricks/[^/]+$"))
        assert page.locator("h1").inner_text() == BRICK["title"]
    context.close()
