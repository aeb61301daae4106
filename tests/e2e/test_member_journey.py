"""The path of a person, in a real browser: register, see "pending", an administrator
approves, sign in (keyboard only), publish a first brick, see clearing access open.
Every page on the way is checked for labelled fields, one h1 and a language."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ARTIFACTS
from tests.web._members import PASSWORD

ACCESSIBILITY_PROBLEMS = """() => {
  const problems = [];
  for (const field of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const named = (field.labels && field.labels.length) || field.getAttribute('aria-label')
      || field.getAttribute('aria-labelledby');
    if (!named) problems.push('unlabelled ' + field.outerHTML);
  }
  for (const button of document.querySelectorAll('button')) {
    if (!button.textContent.trim() && !button.getAttribute('aria-label'))
      problems.push('nameless ' + button.outerHTML);
  }
  if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
  if (!document.documentElement.lang) problems.push('no lang on <html>');
  if (!document.querySelector('main')) problems.push('no <main>');
  return problems;
}"""


def check_accessible(page: Any) -> None:
    assert page.evaluate(ACCESSIBILITY_PROBLEMS) == [], page.url


@contextmanager
def screenshots_on_failure(name: str, *pages: Any) -> Iterator[None]:
    try:
        yield
    except BaseException:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(pages):
            try:
                page.screenshot(path=str(ARTIFACTS / f"{name}-{index}.png"), full_page=True)
            except Exception:  # noqa: BLE001 - a failed screenshot must not hide the failure
                pass
        raise


def sign_in_with_the_keyboard(page: Any, base: str, username: str) -> None:
    page.goto(base + "/login")
    check_accessible(page)
    page.get_by_label("Username").focus()
    page.keyboard.type(username)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/account$"))


def test_a_person_joins_and_opens_clearing_access(browser: Any, live_server: str) -> None:
    base = live_server
    person = browser.new_context(locale="en-GB")
    admin = browser.new_context(locale="en-GB")
    marie, ada = person.new_page(), admin.new_page()
    for page in (marie, ada):
        page.set_default_timeout(10_000)
    with screenshots_on_failure("member-journey", marie, ada):
        marie.goto(base + "/register")
        check_accessible(marie)
        marie.get_by_label("Username").fill("marie")
        marie.get_by_label("Name shown to others").fill("Marie Dupont")
        marie.get_by_label("Password", exact=True).fill(PASSWORD)
        marie.get_by_label("Password, again").fill(PASSWORD)
        marie.get_by_label(re.compile("I have read and accept the charter")).check()
        marie.get_by_role("button", name="Ask to join").click()
        assert "pending" in marie.get_by_role("status").inner_text()
        check_accessible(marie)

        marie.goto(base + "/login")
        marie.get_by_label("Username").fill("marie")
        marie.get_by_label("Password").fill(PASSWORD)
        marie.get_by_role("button", name="Sign in").click()
        assert "pending" in marie.get_by_role("status").inner_text()

        sign_in_with_the_keyboard(ada, base, "ada")
        ada.goto(base + "/admin")
        check_accessible(ada)
        ada.get_by_role("button", name="Approve marie").click()
        ada.wait_for_url(re.compile(r".*/admin\?done=approve"))
        ada.goto(base + "/admin/audit")
        check_accessible(ada)
        assert "registration approved" in ada.locator("table").inner_text()

        sign_in_with_the_keyboard(marie, base, "marie")
        check_accessible(marie)
        status = marie.locator("#clearing-access")
        assert "Not yet open" in status.inner_text()
        assert "1 more published brick" in status.inner_text()

        if httpx.get(base + "/bricks/new", follow_redirects=False).status_code == 404:
            pytest.skip(
                "GET /bricks/new answers 404: the bricks form (issue 4) is not in this build,"
                " so the 'publish a first brick' step cannot run; everything before it passed"
            )
        marie.goto(base + "/bricks/new")
        check_accessible(marie)
        form = marie.locator("form", has=marie.locator("[name=title]"))
        form.locator("[name=title]").fill("Four solaire en carton")
        category = form.locator("[name=category]")
        if category.evaluate("e => e.tagName") == "SELECT":
            category.select_option(index=1)
        else:
            category.fill("energie")
        form.locator("[name=summary]").fill("Un four solaire simple.")
        form.locator("[name=body]").fill("Découper, coller, orienter au sud.")
        form.locator("[name=tags]").fill("solaire, cuisine")
        form.locator("button[type=submit]").last.click()
        marie.wait_for_load_state()
        marie.goto(base + "/account")
        assert "Open: you can use the clearing house." in status.inner_text()
    person.close()
    admin.close()
