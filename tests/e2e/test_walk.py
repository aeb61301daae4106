"""The walk of a new member in a real browser, in each language of the chamber and at a
desktop (1280 px) and a phone (390 px) width: registration → approval by an administrator →
a first brick → clearing access → an exchange declared → validated by the other member →
the public ledger → an offer published → found, and an exchange declared from it → the
directory. Every page on the way must fit the width (no sideways scrolling),
pass axe-core without a serious or critical violation, keep the simple checks of
``test_member_journey`` (labelled fields, one h1, a <main>) and say its language.

The chamber's ``language`` setting chooses the language: the browser asks for German,
which no catalogue offers. One server per language, one browser for the whole module.
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

from node import i18n
from node.config import Settings, new_settings
from tests.e2e.conftest import _free_port, launch_chromium
from tests.e2e.test_member_journey import ACCESSIBILITY_PROBLEMS, screenshots_on_failure
from tests.web._members import PASSWORD

#: Dutch joins the walk as soon as its catalogue is part of the node.
LANGUAGES = [language for language in ("fr", "nl", "en") if language in i18n.SUPPORTED_LANGUAGES]
WIDTHS = (1280, 390)
BLOCKING_IMPACTS = ("serious", "critical")
#: Every check of a page in one round trip: whether it fits the width, its language and the
#: simple checks (read before axe runs, as they were), then axe-core's violations.
CHECKS = f"""() => {{
  const fits = [document.documentElement.scrollWidth, window.innerWidth];
  const lang = document.documentElement.lang;
  const problems = ({ACCESSIBILITY_PROBLEMS})();
  return axe.run(document, {{resultTypes: ['violations']}})
    .then(r => ({{fits, lang, problems, violations: r.violations}}));
}}"""


@pytest.fixture(scope="module")
def shared_browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch_chromium(playwright, chromium)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def axe() -> str:
    """axe-core as bundled by axe-playwright-python (no network): its script's path."""
    axe_playwright_python = pytest.importorskip(
        "axe_playwright_python", reason="axe-playwright-python is not installed (the test extra)"
    )
    return str(Path(axe_playwright_python.__file__).parent / "axe.min.js")


@pytest.fixture(scope="module")
def people(shared_browser: Any, axe: str) -> Iterator[list[Any]]:
    """Marie, Ada and Paul: a page each, in a browser context of its own, kept for every walk
    of the module (a walk clears their cookies and sets the width first). A context per
    person and walk cost the browser about half a second of CPU each."""
    contexts = []
    try:
        for _ in range(3):
            context = shared_browser.new_context(
                viewport={"width": WIDTHS[0], "height": 900}, locale="de-DE"
            )
            contexts.append(context)
            context.add_init_script(path=axe)  # axe-core in every page, loaded once
            context.new_page().set_default_timeout(10_000)
        yield [context.pages[0] for context in contexts]
    finally:
        for context in contexts:
            context.close()


def _in_a_thread(work: Any) -> None:
    """asyncio.run where Playwright's sync API may already own this thread's event loop."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(work)
        except BaseException as exc:  # noqa: BLE001 - re-raised below, in the test's thread
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]


async def _seed(settings: Settings) -> None:
    """The founding administrator (ada) and a member whose access is open (paul)."""
    from node.chamber import ensure_chamber_actor
    from node.db import make_engine, make_sessionmaker, session_scope
    from node.members.models import ClearingOverride, MemberRole, MemberStatus
    from node.members.service import create_member
    from node.secretbox import SecretBox

    engine = make_engine(settings.database_url)
    try:
        async with session_scope(make_sessionmaker(engine)) as session:
            box = SecretBox(settings.secret_key)
            await ensure_chamber_actor(session, settings, box)
            for username, role in (("ada", MemberRole.ADMIN), ("paul", MemberRole.MEMBER)):
                member = await create_member(
                    session,
                    box,
                    username=username,
                    chamber_username=settings.chamber_username,
                    password=PASSWORD,
                    status=MemberStatus.APPROVED,
                    role=role,
                )
                if username == "paul":
                    member.clearing_override = ClearingOverride.GRANTED
                    member.clearing_override_reason = "seed"
    finally:
        await engine.dispose()


@pytest.fixture
def chamber_in(tmp_path: Path, sqlite_template: Path, language: str) -> Iterator[str]:
    """A chamber speaking ``language``, served by uvicorn in a thread (the default rule:
    one published brick, no waiting)."""
    import shutil

    import uvicorn

    from node.web.app import create_app

    database = tmp_path / "walk.db"
    shutil.copyfile(sqlite_template, database)
    port = _free_port()
    settings = new_settings(
        tmp_path / "node",
        url=f"http://127.0.0.1:{port}",
        name="Chambre de Lille",
        chamber_username="lille",
        database_url=f"sqlite+aiosqlite:///{database}",
    )
    settings = dataclasses.replace(settings, language=language)
    _in_a_thread(_seed(settings))
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


class Walk:
    """Pages of one width; ``check`` runs every check on the page shown."""

    def __init__(self, people: list[Any], base: str, language: str, width: int) -> None:
        self.people, self.base = people, base
        self.language, self.width = language, width
        self.checked: list[str] = []
        for page in people:  # as new: signed out (cookies are per host, not per port)
            page.context.clear_cookies()
            page.set_viewport_size({"width": width, "height": 900})

    def check(self, page: Any) -> None:
        where = f"{page.url} at {self.width} px in {self.language}"
        found = page.evaluate(CHECKS)
        scroll_width, viewport = found["fits"]
        assert scroll_width <= viewport, f"{where} scrolls sideways ({scroll_width} px)"
        assert found["lang"] == self.language, where
        assert found["problems"] == [], where
        blocking = [
            (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
            for v in found["violations"]
            if v["impact"] in BLOCKING_IMPACTS
        ]
        assert blocking == [], f"{where}: {blocking}"
        self.checked.append(page.url.removeprefix(self.base))

    def sign_in(self, page: Any, username: str) -> None:
        page.goto(self.base + "/login")
        if "/login" not in self.checked:  # the same page for each person: checked once
            self.check(page)
        page.locator("#username").fill(username)
        page.locator("#password").fill(PASSWORD)
        page.locator("form[action='/login'] button[type=submit]").click()
        page.wait_for_url(re.compile(r".*/account$"))


def walk_once(walk: Walk) -> None:
    base, check = walk.base, walk.check
    name = f"marie{walk.width}"
    marie, ada, paul = walk.people
    with screenshots_on_failure(f"walk-{walk.language}-{walk.width}", marie, ada, paul):
        marie.goto(base + "/")
        check(marie)
        marie.goto(base + "/register")
        check(marie)
        marie.locator("#username").fill(name)
        marie.locator("#display_name").fill("Marie Dupont")
        marie.locator("#password").fill(PASSWORD)
        marie.locator("#password_confirm").fill(PASSWORD)
        marie.locator("#accept_charter").check()
        marie.locator("form[action='/register'] button[type=submit]").click()
        marie.wait_for_load_state()
        check(marie)

        walk.sign_in(ada, "ada")
        ada.goto(base + "/admin")
        check(ada)
        ada.locator(
            f"form[action='/admin/members/{name}']:has(input[name=action][value=approve])"
            " button[type=submit]"
        ).click()
        ada.wait_for_url(re.compile(r".*/admin\?done=approve"))
        check(ada)
        ada.goto(base + "/admin/audit")
        check(ada)

        walk.sign_in(marie, name)
        check(marie)
        assert marie.locator("#clearing-access a[href='/bricks/new']").count() == 1
        marie.locator("#clearing-access a[href='/bricks/new']").click()
        marie.wait_for_url(re.compile(r".*/bricks/new$"))
        check(marie)
        marie.locator("#title").fill(f"Four solaire {walk.width}")
        marie.locator("#category").select_option("methode")
        marie.locator("#summary").fill("Un four solaire simple, en carton et papier d'aluminium.")
        marie.locator("#body").fill(
            "Découper, coller, orienter au sud: https://example.org/" + "x" * 80
        )
        marie.locator("#tags").fill("énergie, communs urbains")
        marie.locator("form[action='/bricks/new'] button[type=submit]").click()
        marie.wait_for_url(re.compile(r".*/bricks/[^/]+$"))
        check(marie)
        marie.goto(base + "/bricks")
        check(marie)
        marie.goto(base + "/account")
        check(marie)
        assert marie.locator("#clearing-access .access-open").count() == 1

        marie.goto(base + "/clearing")
        check(marie)
        marie.locator("#role-provider").check()
        marie.locator("#counterparty").fill("paul")
        marie.locator("#duration").fill("1 h 30")
        marie.locator("#description").fill(f"Atelier four solaire ({walk.width})")
        marie.locator("form[action='/clearing/exchanges'] button[type=submit]").click()
        marie.wait_for_url(re.compile(r".*/clearing/exchanges$"))  # who was found: confirm
        check(marie)
        marie.locator("button[name=step][value=confirm]").click()
        marie.wait_for_url(re.compile(r".*/exchanges/[^/]+$"))
        check(marie)
        exchange = marie.url

        walk.sign_in(paul, "paul")
        paul.goto(base + "/clearing")
        check(paul)
        paul.goto(exchange)
        check(paul)
        paul.locator("form[action$='/accept'] button[type=submit]").click()
        paul.wait_for_url(exchange)
        check(paul)

        marie.goto(base + "/ledger")
        check(marie)
        assert f"Atelier four solaire ({walk.width})" in marie.locator("main").inner_text()
        marie.goto(base + f"/@{name}")
        check(marie)
        assert "1 h 30" in marie.locator("main").inner_text()
        walk_offer(walk, paul, marie)


def walk_offer(walk: Walk, paul: Any, marie: Any) -> None:
    """Paul proposes something; Marie finds it, opens it and declares the exchange from it
    (the form filled in from the offer)."""
    base, check = walk.base, walk.check
    title = f"Traduction NL-FR {walk.width}"
    paul.goto(base + "/offers")
    check(paul)
    paul.locator("a[href='/offers/new?kind=offer']").click()
    paul.wait_for_url(re.compile(r".*/offers/new\?kind=offer$"))
    check(paul)
    paul.locator("#title").fill(title)
    paul.locator("#description").fill("Je traduis vos courriers du néerlandais vers le français.")
    paul.locator("#tags").fill("traduction, néerlandais")
    paul.locator("#minutes").fill("45 min")
    paul.locator("form[action='/offers/new'] button[type=submit]").click()
    paul.wait_for_url(re.compile(r".*/offers/[0-9a-f]+$"))
    check(paul)

    marie.goto(base + "/offers?q=traduction")
    check(marie)
    marie.get_by_role("link", name=title).click()
    marie.wait_for_url(re.compile(r".*/offers/[0-9a-f]+$"))
    check(marie)
    marie.locator("a[href^='/clearing?offer=']").click()
    marie.wait_for_url(re.compile(r".*/clearing\?offer=.*"))
    check(marie)
    assert marie.locator("#counterparty").input_value() == "paul"
    assert marie.locator("#role-beneficiary").is_checked()
    assert marie.locator("#duration").input_value() == "0 h 45"
    marie.locator("form[action='/clearing/exchanges'] button[type=submit]").click()
    marie.wait_for_url(re.compile(r".*/clearing/exchanges$"))  # who was found: confirm
    check(marie)
    assert title in marie.locator("main").inner_text()  # the offer it answers, kept
    marie.locator("button[name=step][value=confirm]").click()
    marie.wait_for_url(re.compile(r".*/exchanges/[^/]+$"))
    check(marie)
    assert title in marie.locator("main").inner_text()
    marie.goto(base + "/directory")
    check(marie)


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_walk_of_a_new_member(people: list[Any], chamber_in: str, language: str) -> None:
    for width in WIDTHS:
        walk = Walk(people, chamber_in, language, width)
        walk_once(walk)
        assert len(walk.checked) >= 25, walk.checked
