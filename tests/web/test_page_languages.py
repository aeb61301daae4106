"""Every page a visitor, a member and an administrator reach, rendered in each translated
language: no English message of the catalogue left untranslated, no internal code (a state,
a role, an audit action) shown as a word. The pages are the GET routes without a parameter
(found in ``app.routes``), the pages of a seeded brick, exchange, profile and charter, the
error pages (404, 403, 405) and forms sent back with their errors. One app for both
languages: ``?lang=`` then the cookie choose them, as the language switch does.
"""

from __future__ import annotations

import functools
import re
from html.parser import HTMLParser
from importlib import resources

import httpx
import pytest
from babel.messages.pofile import read_po
from starlette.applications import Starlette
from starlette.routing import Route

from node.activitypub.models import RemoteActor
from node.db import session_scope, utcnow
from node.members.models import MemberRole, MemberStatus
from node.members.notifications import NotificationType
from node.web import labels
from tests.bricks._helpers import BRICK, add_member, bearer, csrf_of, sign_in
from tests.web._members import add_member as add_account

HTML = {"Accept": "text/html"}
MACHINE = ("/.well-known", "/nodeinfo", "/api/", "/ns/", "/metrics", "/healthz", "/ledger/")
#: Codes no page may show as a word (categories are labelled by node.bricks: not here).
CODES = frozenset(
    code
    for kind, table in labels.LABELS.items()
    if kind not in ("brick_field", "reconciliation_status")
    for code in table
) | {v for k, v in vars(NotificationType).items() if k.isupper()}
#: Words of English sentences that no French or Dutch sentence uses.
ENGLISH = re.compile(r"\b(the|your|you|please|this|with|and|which)\b", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%\(\w+\)[sd]")
_SKIPPED_TAGS = {"script", "style", "textarea", "pre", "code"}
_SHOWN_ATTRIBUTES = {"title", "aria-label", "placeholder", "alt"}


class Shown(HTMLParser):
    """The text a person reads: text nodes (not user text areas) and shown attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED_TAGS:
            self._skipping += 1
        values = dict(attrs)
        for name, value in attrs:
            if value and (
                name in _SHOWN_ATTRIBUTES
                or (name == "value" and values.get("type") in ("submit", "button"))
            ):
                self.texts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED_TAGS and self._skipping:
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        text = " ".join(data.split())
        if text and not self._skipping:
            self.texts.append(text)


@functools.cache
def _untranslated(language: str) -> tuple[frozenset[str], re.Pattern[str] | None]:
    """The English msgids whose translation differs: exact ones, and one pattern matching
    those with placeholders (long enough not to match by chance). Read once per language:
    the catalogue is a file of the package, the same for every page."""
    path = resources.files("node") / "locale" / language / "LC_MESSAGES" / "archipel.po"
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    exact: set[str] = set()
    patterns: list[str] = []
    for message in catalog:
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for msgid in ids:
            if not msgid or msgid in strings:
                continue
            msgid = " ".join(msgid.split())
            if _PLACEHOLDER.search(msgid):
                literal = _PLACEHOLDER.sub("", msgid)
                if len(literal.strip()) >= 12:
                    parts = [re.escape(p) for p in _PLACEHOLDER.split(msgid)]
                    patterns.append("^" + ".+?".join(parts) + "$")
            else:
                exact.add(msgid)
    placeholders = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None
    return frozenset(exact), placeholders


@functools.cache
def _problems_of_text(text: str, language: str) -> tuple[str, ...]:
    """What is wrong with one shown text (the same menus and footers are on every page:
    each text is judged once)."""
    exact, placeholders = _untranslated(language)
    found = []
    if text in exact or (placeholders is not None and placeholders.match(text)):
        found.append(f"untranslated: {text!r}")
    elif ENGLISH.search(text):
        found.append(f"English: {text!r}")
    for word in re.findall(r"\w+(?:\.\w+)*", text):
        if word in CODES:
            found.append(f"code {word!r} in {text!r}")
    return tuple(found)


def problems_of(html: str, language: str) -> list[str]:
    shown = Shown()
    shown.feed(html)
    return [problem for text in shown.texts for problem in _problems_of_text(text, language)]


def test_the_checker_sees_english_and_codes() -> None:
    """What the page test relies on: it fails on each kind of fault of the finding."""
    page = (
        '<html><body><p>Statut : approved ; rôle : member</p><button title="x">accept</button>'
        "<p>Back to the home page</p><p>Publié le 3 juin 2027</p><td>clearing.grant</td>"
        '<input type="submit" value="Valider"><textarea>the user wrote this</textarea>'
        "<p>Too many failed attempts: try again in 5 minutes.</p></body></html>"
    )
    found = problems_of(page, "fr")
    assert "code 'approved' in 'Statut : approved ; rôle : member'" in found
    assert "code 'member' in 'Statut : approved ; rôle : member'" in found
    assert "code 'accept' in 'accept'" in found
    assert "untranslated: 'Back to the home page'" in found
    assert "code 'clearing.grant' in 'clearing.grant'" in found
    assert "untranslated: 'Too many failed attempts: try again in 5 minutes.'" in found
    assert len(found) == 6


async def _seed(app: Starlette, client: httpx.AsyncClient) -> dict[str, str]:
    """ada administers; marie published a brick paul rated; marie declared two exchanges
    with paul, one validated; zoe waits for approval; an approval is in the audit log."""
    await add_account(app, "ada", role=MemberRole.ADMIN)
    await add_account(app, "zoe", status=MemberStatus.PENDING)
    await add_account(app, "yves", status=MemberStatus.PENDING)
    marie = await add_member(app, "marie", display_name="Marie Dupont")
    paul = await add_member(app, "paul")
    made = await client.post("/api/v1/bricks", json=BRICK, headers=bearer(marie))
    assert made.status_code == 201, made.text
    brick = made.json()["url"].rsplit("/", 1)[-1]
    await client.post("/api/v1/bricks", json={**BRICK, "title": "Autre"}, headers=bearer(paul))
    rated = await client.post(
        f"/api/v1/bricks/{brick}/reviews",
        json={"rating": 4, "comment": "Très utile au quartier."},
        headers=bearer(paul),
    )
    assert rated.status_code in (200, 201), rated.text
    exchanges = []
    for description in ("Réparé un vélo", "Atelier cuisine"):
        made = await client.post(
            "/api/v1/exchanges",
            json={"beneficiary": "paul", "duration": "1 h 30", "description": description},
            headers=bearer(marie),
        )
        assert made.status_code in (200, 201, 202), made.text
        exchanges.append(made.json()["key"])
    accepted = await client.post(
        f"/api/v1/exchanges/{exchanges[0]}/accept", json={}, headers=bearer(paul)
    )
    assert accepted.status_code in (200, 202), accepted.text
    await sign_in(client, "ada")
    page = await client.get("/admin", headers=HTML)
    approved = await client.post(
        "/admin/members/yves", data={"action": "approve", "csrf_token": csrf_of(page.text)}
    )
    assert approved.status_code == 303
    offer = await client.post(
        "/api/v1/offers",
        json={
            "kind": "offer",
            "title": "Traduction NL-FR",
            "description": "Des courriers.",
            "tags": ["traduction"],
            "minutes": 90,
        },
        headers=bearer(marie),
    )
    assert offer.status_code == 201, offer.text
    client.cookies.clear()
    await _remote_person(app)
    return {
        "brick": brick,
        "posted": exchanges[0],
        "proposed": exchanges[1],
        "offer": offer.json()["key"],
    }


async def _remote_person(app: Starlette) -> None:
    """Lotte of another chamber, as her cached actor document (her page here needs no fetch)."""
    async with session_scope(app.state.node.sessionmaker) as session:
        session.add(
            RemoteActor(
                uri="https://gand.example/actors/lotte",
                host="gand.example",
                inbox="https://gand.example/actors/lotte/inbox",
                document={
                    "id": "https://gand.example/actors/lotte",
                    "type": "Person",
                    "preferredUsername": "lotte",
                    "name": "Lotte <b>Peeters</b>",
                    "summary": "<p>Vertaalster</p>",
                    "inbox": "https://gand.example/actors/lotte/inbox",
                    "manuallyApprovesFollowers": True,
                },
                fetched_at=utcnow(),
            )
        )


def _pages(app: Starlette, seeded: dict[str, str]) -> list[str]:
    fixed = sorted(
        route.path
        for route in app.routes
        if isinstance(route, Route)
        and "GET" in (route.methods or ())
        and "{" not in route.path
        and not route.path.startswith(MACHINE)
        and not route.path.endswith((".csv", ".atom"))
    )
    brick, posted, proposed = seeded["brick"], seeded["posted"], seeded["proposed"]
    return [
        *fixed,
        "/@marie",
        f"/bricks/{brick}",
        f"/bricks/{brick}/edit",
        f"/bricks/{brick}/delete",
        f"/bricks/{brick}/history",
        "/tags/jardin",
        f"/exchanges/{posted}",
        f"/exchanges/{proposed}",
        f"/offers/{seeded['offer']}",
        f"/clearing?offer={seeded['offer']}",
        "/charter/1",
        "/account/reset/not-a-token",
        "/no-such-page",
        "/bricks/no-such-brick",
        "/clearing/exchanges",  # 405: a form's address
        "/@lotte@gand.example",  # a remote person's page here
        "/people?q=" + "x" * 301,  # the search box's refusal
    ]


async def _forms_sent_back(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """Forms refused with their errors, as a signed-in member sees them."""
    brick_form = await client.get("/bricks/new", headers=HTML)
    bad_brick = await client.post(
        "/bricks/new",
        data={
            "csrf_token": csrf_of(brick_form.text),
            "title": "x",
            "category": "x",
            "summary": "",
            "body": "",
            "tags": "a/b",
            "links": "nope",
            "authors": "nobody",
        },
        headers=HTML,
    )
    clearing = await client.get("/clearing", headers=HTML)
    bad_exchange = await client.post(
        "/clearing/exchanges",
        data={
            "csrf_token": csrf_of(clearing.text),
            "role": "provider",
            "counterparty": "pual",
            "duration": "lots",
            "description": "",
            "date": "2999-01-01",
            "bricks": "x",
        },
        headers=HTML,
    )
    offer_form = await client.get("/offers/new", headers=HTML)
    bad_offer = await client.post(
        "/offers/new",
        data={
            "csrf_token": csrf_of(offer_form.text),
            "kind": "gift",
            "title": "x",
            "description": "",
            "tags": "a/b",
            "minutes": "lots",
            "bricks": "nope",
        },
        headers=HTML,
    )
    assert bad_offer.status_code == 422
    no_csrf = await client.post("/clearing/exchanges", data={}, headers=HTML)
    lookup = await client.post(
        "/clearing/exchanges",
        data={
            "csrf_token": csrf_of(clearing.text),
            "role": "provider",
            "counterparty": "paul",
            "duration": "1 h",
            "description": "Un coup de main",
            "step": "lookup",
        },
        headers=HTML,
    )
    return [
        ("refused offer form", bad_offer.text),
        ("refused brick form", bad_brick.text),
        ("refused exchange form", bad_exchange.text),
        ("refused form without its token", no_csrf.text),
        (
            "the exchange's confirmation step",
            lookup.text if 'value="confirm"' in lookup.text else "",
        ),
    ]


@pytest.mark.parametrize("language", ["fr", "nl"])
async def test_every_page_speaks_the_language(
    app: Starlette, client: httpx.AsyncClient, language: str
) -> None:
    seeded = await _seed(app, client)
    pages = _pages(app, seeded)
    found: dict[str, list[str]] = {}
    seen = 0
    for who in (None, "marie", "paul", "ada"):
        client.cookies.clear()
        if who is not None:
            await sign_in(client, who)
        first = await client.get(f"/?lang={language}", headers=HTML)
        assert f'<html lang="{language}">' in first.text
        shown = [(path, (await client.get(path, headers=HTML)).text) for path in pages]
        if who == "marie":
            shown += [("/admin (403)", (await client.get("/admin", headers=HTML)).text)]
            shown += await _forms_sent_back(client)
        for path, html in shown:
            if not html.lstrip().startswith("<!doctype html>"):
                continue  # a redirect's empty body, a file
            seen += 1
            assert f'<html lang="{language}">' in html, (who, path)
            problems = problems_of(html, language)
            if problems:
                found[f"{path} as {who or 'a visitor'}"] = problems
    assert seen > 80
    assert found == {}
