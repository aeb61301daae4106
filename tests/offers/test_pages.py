"""The pages of offers and needs, the declaration prefilled from an offer, and the
directory (members appear only when they choose to)."""

from __future__ import annotations

import html

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.clearing.ledger.models import Exchange
from node.db import read_only
from tests.bricks._helpers import add_member, bearer, csrf_of, sign_in
from tests.offers._helpers import OFFER, grant_clearing

HTML = {"Accept": "text/html"}


async def test_publish_from_the_form_and_close(app: Starlette, client: httpx.AsyncClient) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    form = await client.get("/offers/new?kind=need", headers=HTML)
    assert 'value="need" checked' in form.text
    refused = await client.post(
        "/offers/new",
        data={
            "csrf_token": csrf_of(form.text),
            "kind": "need",
            "title": "Aide pour un dossier",
            "description": "",
            "tags": "subvention",
            "minutes": "beaucoup",
        },
        headers=HTML,
    )
    assert refused.status_code == 422
    assert 'value="Aide pour un dossier"' in refused.text  # the work is kept
    assert 'id="description-error"' in refused.text and 'id="minutes-error"' in refused.text
    made = await client.post(
        "/offers/new",
        data={
            "csrf_token": csrf_of(form.text),
            "kind": "need",
            "title": "Aide pour un dossier",
            "description": "Relire un dossier de subvention.",
            "tags": "subvention",
            "minutes": "2 h",
        },
    )
    assert made.status_code == 303
    page = await client.get(made.headers["location"], headers=HTML)
    assert "Aide pour un dossier" in page.text and "2 h 00" in page.text
    assert "/close" in page.text and "/clearing?offer=" not in page.text  # the author's page
    listed = await client.get("/offers?q=subvention", headers=HTML)
    assert "Aide pour un dossier" in listed.text
    closed = await client.post(
        made.headers["location"] + "/close", data={"csrf_token": csrf_of(page.text)}
    )
    assert closed.status_code == 303
    assert "Aide pour un dossier" not in (await client.get("/offers", headers=HTML)).text


async def test_declare_an_exchange_from_an_offer(app: Starlette, client: httpx.AsyncClient) -> None:
    marie = await add_member(app, "marie")
    await add_member(app, "paul")
    for name in ("marie", "paul"):
        await grant_clearing(app, name)
    offer = (await client.post("/api/v1/offers", json=OFFER, headers=bearer(marie))).json()
    await sign_in(client, "paul")
    page = await client.get(f"/offers/{offer['key']}", headers=HTML)
    assert f"/clearing?offer={offer['key']}#declare" in page.text and "/close" not in page.text
    clearing = await client.get(f"/clearing?offer={offer['key']}", headers=HTML)
    text = html.unescape(clearing.text)
    assert f'name="offer" value="{offer["key"]}"' in text
    assert 'id="counterparty" name="counterparty" required maxlength="300" value="marie"' in text
    assert 'value="beneficiary" checked' in text  # marie offers: she provides
    assert 'value="1 h 30"' in text and "Traduction NL-FR</textarea>" in text
    declared = await client.post(
        "/clearing/exchanges",
        data={
            "csrf_token": csrf_of(clearing.text),
            "role": "beneficiary",
            "counterparty": "marie",
            "duration": "1 h 30",
            "description": "Traduction NL-FR",
            "offer": offer["key"],
        },
    )
    assert declared.status_code == 303, declared.text
    async with read_only(app.state.node.sessionmaker) as session:
        (exchange,) = (await session.execute(select(Exchange))).scalars()
    assert exchange.offer_uri == offer["id"] and exchange.provider_uri.endswith("/actors/marie")


async def test_the_directory_lists_only_members_who_chose_it(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie", display_name="Marie Dupont")
    await add_member(app, "paul", display_name="Paul Martin")
    await client.post("/api/v1/offers", json=OFFER, headers=bearer(marie))
    directory = await client.get("/directory", headers=HTML)
    assert "Marie Dupont" not in directory.text and "Paul Martin" not in directory.text
    await sign_in(client, "marie")
    account = await client.get("/account", headers=HTML)
    assert (
        'id="directory_listed" name="directory_listed" type="checkbox" value="yes" >'
        in account.text
    )
    saved = await client.post(
        "/account/profile",
        data={
            "csrf_token": csrf_of(account.text),
            "display_name": "Marie Dupont",
            "directory_listed": "yes",
        },
    )
    assert saved.status_code == 303
    directory = await client.get("/directory", headers=HTML)
    assert "Marie Dupont" in directory.text and "Paul Martin" not in directory.text
    assert "Traduction NL-FR" in directory.text and "#traduction" in directory.text
