"""A real browser (Debian's chromium, driven by Playwright) against a real server.

Chromium comes from Debian's package, installed by ``.ci/run`` (never by a fixture); where it
is missing these tests are skipped with the reason printed. Never ``playwright install``: it
downloads a browser build of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from node.config import Settings, new_settings
from tests.web._members import PASSWORD

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
#: Chromium features no test looks at, turned off on top of Playwright's own list: the omnibox
#: popup is a WebUI page Chromium renders, in a renderer of its own, for each window (each
#: browser context): about 0.4 s of CPU per context.
UNUSED_FEATURES = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")
_PLAYWRIGHT_FEATURES = re.compile(r"disabledFeatures = \[([^\]]*)\]")


def _playwright_disabled_features() -> list[str]:
    """The features Playwright's driver turns off with ``--disable-features``, read from its
    script (empty where it cannot be read)."""
    import playwright

    lib = Path(playwright.__file__).parent / "driver" / "package" / "lib"
    for script in (lib / "coreBundle.js", lib / "server" / "chromium" / "chromiumSwitches.js"):
        try:
            found = _PLAYWRIGHT_FEATURES.search(script.read_text(encoding="utf-8"))
        except OSError:
            continue
        if found:
            return re.findall(r'"(\w+)"', re.sub(r"//[^\n]*", "", found.group(1)))
    return []


def launch_chromium(playwright: Any, chromium: str) -> Any:
    """Chromium, headless. Chromium obeys only the last ``--disable-features`` switch: ours
    repeats Playwright's list before adding the unused features (where the list cannot be
    read, nothing is added)."""
    args = ["--no-sandbox"]
    playwright_features = _playwright_disabled_features()
    if playwright_features:
        args.append("--disable-features=" + ",".join([*playwright_features, *UNUSED_FEATURES]))
    return playwright.chromium.launch(executable_path=chromium, args=args)


def _chromium_missing() -> str | None:
    """None when Chromium is there, else why it is not (``.ci/run`` installs it)."""
    if Path(CHROMIUM).exists():
        return None
    return f"{CHROMIUM} is missing (as root: apt-get install chromium, as .ci/run does)"


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Chromium; skips (printing why) where it is not installed."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "playwright is not installed (pip install -e '.[test]')"
        print(f"\nbrowser tests skipped: {reason}")
        pytest.skip(reason)
    reason = _chromium_missing()
    if reason is not None:
        print(f"\nbrowser tests skipped: {reason}")
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture
def browser(chromium: str, live_server: str) -> Iterator[Any]:
    """Started after the server: Playwright's sync API keeps an event loop running in this
    thread, so the database set-up (asyncio.run) must be done before."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright, chromium)
        try:
            yield launched
        finally:
            launched.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(settings: Settings) -> None:
    from node.chamber import ensure_chamber_actor
    from node.db import make_engine, make_sessionmaker, session_scope
    from node.members.models import MemberRole, MemberStatus
    from node.members.service import create_member
    from node.secretbox import SecretBox

    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            box = SecretBox(settings.secret_key)
            await ensure_chamber_actor(session, settings, box)
            await create_member(
                session,
                box,
                username="ada",
                chamber_username=settings.chamber_username,
                password=PASSWORD,
                status=MemberStatus.APPROVED,
                role=MemberRole.ADMIN,
            )
    finally:
        await engine.dispose()


@pytest.fixture
def live_server(tmp_path: Path, database_url: str) -> Iterator[str]:
    """The node served by uvicorn in a thread; the gate asks for one brick, no waiting."""
    import uvicorn

    from node.web.app import create_app

    port = _free_port()
    settings = new_settings(
        tmp_path / "node",
        url=f"http://127.0.0.1:{port}",
        name="Chambre de Lille",
        chamber_username="lille",
        database_url=database_url,
    )
    settings = dataclasses.replace(settings, clearing_min_bricks=1, clearing_min_days=0)
    asyncio.run(_seed(settings))
    config = uvicorn.Config(
        create_app(settings, run_worker=False), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield settings.url
    finally:
        server.should_exit = True
        thread.join(timeout=10)
