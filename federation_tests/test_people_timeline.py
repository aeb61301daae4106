"""Issue 15 from a member's browser, with three real chambers (Lille, Gand, Roubaix): a Lille
member finds a Gand member by handle with the search box, follows them with the button, and
reads their new brick and Gand's chamber news in their timeline (``/api/v1/timeline``).

``archipelago`` (module-scoped) and ``Browser`` are the extension point of the issue's
scenario: the offers part (a Gand offer found in Lille's federated offers, the exchange
declared from it) reuses them in another test of this module or its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from federation_tests.conftest import NodeFactory
from federation_tests.harness import NodeProcess, Trader, together, wait_for

pytestmark = pytest.mark.federation
PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Browser:
    """A person on a chamber's web pages: a cookie jar, the CSRF token of the last page."""

    def __init__(self, node: NodeProcess, username: str) -> None:
        self.node = node
        self.http = httpx.Client(base_url=node.url, headers={"Accept-Language": "en"}, timeout=30)
        page = self.http.get("/login")
        signed = self.http.post(
            "/login",
            data={"username": username, "password": PASSWORD, "csrf_token": self.csrf(page)},
        )
        assert signed.status_code == 303, signed.text

    @staticmethod
    def csrf(page: httpx.Response) -> str:
        found = _CSRF.search(page.text)
        assert found, "no csrf_token field in the page"
        return found.group(1)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def press(self, page: httpx.Response, action: str) -> httpx.Response:
        """Submit the page's form whose action is ``action`` (it only carries its token)."""
        assert f'action="{action}"' in page.text, f"no form to {action} on the page"
        return self.http.post(action, data={"csrf_token": self.csrf(page)})

    def close(self) -> None:
        self.http.close()


@dataclass
class Archipelago:
    lille: NodeProcess
    gand: NodeProcess
    roubaix: NodeProcess
    alice: Trader  # Lille
    bob: Trader  # Gand
    ada: str  # Lille's administrator (a username)


@pytest.fixture(scope="module")
def archipelago(make_module_node: NodeFactory) -> Archipelago:
    lille, gand, roubaix = together(
        *(lambda n=name: make_module_node(n) for name in ("lille", "gand", "roubaix"))
    )
    together(
        lambda: lille.add_partner(gand, 600),
        lambda: (gand.add_partner(lille, 600), gand.add_partner(roubaix, 600)),
        lambda: roubaix.add_partner(gand, 600),
    )
    for node, username in ((lille, "alice"), (lille, "ada"), (gand, "bob")):
        node.cli("member", "add", username, "--password", PASSWORD)
    lille.cli("admin", "promote", "ada", "--reason", "federation test")
    gand.cli("member", "add", "lotte", "--password", PASSWORD)  # a second Gand member
    alice = Trader(lille, "alice", lille.token("alice"))
    bob = Trader(gand, "bob", gand.token("bob"))
    gand.wait_partnered(lille, roubaix)
    return Archipelago(lille, gand, roubaix, alice, bob, "ada")


@pytest.fixture
def alice_browser(archipelago: Archipelago) -> Iterator[Browser]:
    browser = Browser(archipelago.lille, "alice")
    yield browser
    browser.close()


def timeline(trader: Trader) -> list[dict[str, Any]]:
    response = trader.api("GET", "/api/v1/timeline")
    response.raise_for_status()
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_a_lille_member_follows_a_gand_member_and_reads_them_in_the_timeline(
    archipelago: Archipelago, alice_browser: Browser
) -> None:
    lille, gand = archipelago.lille, archipelago.gand
    handle = f"@bob@{gand.handle_host}"

    found = alice_browser.get("/people", params={"q": handle}, follow_redirects=False)
    assert found.status_code == 303, found.text
    page_url = found.headers["location"]
    assert page_url == f"/@bob@{gand.handle_host}"
    profile = alice_browser.get(page_url)
    assert profile.status_code == 200
    assert "Chambre de Gand" in profile.text
    followed = alice_browser.press(profile, f"{page_url}/follow")
    assert followed.status_code == 303
    wait_for(
        lambda: "You follow this account." in alice_browser.get(page_url).text,
        what="Gand to accept Alice's follow",
    )

    admin = Browser(lille, archipelago.ada)
    try:
        chamber_url = f"/@gand@{gand.handle_host}"
        admin.press(admin.get(chamber_url), f"{chamber_url}/follow")
        wait_for(
            lambda: "This chamber follows it." in admin.get(chamber_url).text,
            what="Gand to accept Lille's follow",
        )
    finally:
        admin.close()

    brick = archipelago.bob.api(
        "POST",
        "/api/v1/bricks",
        json={
            "title": "Traduire une demande de subvention",
            "category": "methode",
            "summary": "Les étapes pour traduire un dossier NL-FR.",
            "body": "Relire à deux.",
            "tags": ["traduction"],
        },
    )
    assert brick.status_code == 201, brick.text
    gand.cli("announce", "Assemblée des communs jeudi à 19 h")

    def both_arrived() -> bool:
        summaries = [item["summary"] for item in timeline(archipelago.alice)]
        return any("Traduire une demande" in s for s in summaries) and any(
            "Assemblée des communs" in s for s in summaries
        )

    wait_for(both_arrived, what="the brick and the news in Alice's timeline")
    items = timeline(archipelago.alice)
    by_summary = {item["summary"].split(" ")[0]: item for item in items}
    assert by_summary["Traduire"]["actor"] == gand.actor("bob")
    assert by_summary["Traduire"]["type"] == "Article"
    assert by_summary["Assemblée"]["actor"] == gand.chamber()
    page = alice_browser.get("/timeline")
    assert "Traduire une demande de subvention" in page.text
    assert f'href="/@bob@{gand.handle_host}"' in page.text
