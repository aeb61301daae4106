"""The exchange declaration form: a mistyped beneficiary comes back as the form, filled,
with the error next to the field and in the page's language; radio buttons carry their
own labels; a declaration then says it was made."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from tests.bricks._helpers import BRICK, add_member, bearer, csrf_of, sign_in

HTML = {"Accept": "text/html"}


async def test_a_mistyped_beneficiary_keeps_the_declaration(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await add_member(app, "marie")
    await add_member(app, "paul")
    await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))  # opens access
    await sign_in(client, "marie")
    page = await client.get("/clearing", headers=HTML)
    assert '<input type="radio" id="role-provider"' in page.text
    assert '<label for="role-provider">' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "role": "beneficiary",
        "counterparty": "pual",
        "duration": "1 h 30",
        "description": "Réparé mon vélo",
        "date": "",
        "bricks": "",
    }
    refused = await client.post("/clearing/exchanges", data=form, headers=HTML)
    assert refused.status_code == 422
    text = refused.text
    assert 'value="pual"' in text and 'value="1 h 30"' in text and "Réparé mon vélo" in text
    assert 'id="role-beneficiary" name="role" value="beneficiary" checked' in text
    assert 'aria-describedby="counterparty-error"' in text
    assert "Vérifiez l’autre membre" in text
    bad_duration = await client.post(
        "/clearing/exchanges", data={**form, "counterparty": "paul", "duration": "lots"}
    )
    assert bad_duration.status_code == 422 and 'id="duration-error"' in bad_duration.text
    declared = await client.post(
        "/clearing/exchanges", data={**form, "counterparty": "paul"}, headers=HTML
    )
    assert declared.status_code == 303
    shown = await client.get(declared.headers["location"], headers=HTML)
    assert "Votre échange est déclaré" in shown.text


async def test_the_form_shows_who_was_found_before_declaring(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Issue 15: the first step finds the other member and asks to confirm; nothing is
    declared until then; confirming declares with the person found."""
    token = await add_member(app, "marie")
    await add_member(app, "paul", display_name="Paul Martin")
    await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))
    await sign_in(client, "marie")
    page = await client.get("/clearing", headers=HTML)
    assert 'name="step" value="lookup"' in page.text
    form = {
        "csrf_token": csrf_of(page.text),
        "role": "provider",
        "counterparty": "@paul@lille.test",
        "duration": "2 h",
        "description": "Un coup de main",
        "step": "lookup",
    }
    found = await client.post("/clearing/exchanges", data=form, headers=HTML)
    assert found.status_code == 200
    assert '<a href="/@paul">Paul Martin</a>' in found.text
    assert 'name="step" value="confirm"' in found.text
    listed = await client.get("/api/v1/exchanges", headers=bearer(token))
    assert listed.json()["items"] == []  # not declared yet
    confirmed = await client.post(
        "/clearing/exchanges",
        data={**form, "counterparty": "paul", "step": "confirm"},
        headers=HTML,
    )
    assert confirmed.status_code == 303
    [exchange] = (await client.get("/api/v1/exchanges", headers=bearer(token))).json()["items"]
    assert exchange["beneficiary"].endswith("/actors/paul")


async def _declared(app: Starlette, client: httpx.AsyncClient) -> str:
    """marie declared 1 h 30 for paul; the key of the exchange (marie still signed in)."""
    token = await add_member(app, "marie")
    paul = await add_member(app, "paul")
    await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))
    await client.post("/api/v1/bricks", json={**BRICK, "title": "Autre"}, headers=bearer(paul))
    await sign_in(client, "marie")
    page = await client.get("/clearing", headers=HTML)
    form = {
        "csrf_token": csrf_of(page.text),
        "role": "provider",
        "counterparty": "paul",
        "duration": "1 h 30",
        "description": "Réparé son vélo",
    }
    declared = await client.post("/clearing/exchanges", data=form, headers=HTML)
    assert declared.status_code == 303
    return declared.headers["location"].rsplit("/", 1)[1]


async def test_a_refused_contest_keeps_what_was_typed(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    key = await _declared(app, client)
    await sign_in(client, "paul")
    page = await client.get(f"/exchanges/{key}", headers=HTML)
    typed = "Ce n’était pas 1 h 30. " * 100  # longer than the 2000 characters allowed
    refused = await client.post(
        f"/exchanges/{key}/contest",
        data={"csrf_token": csrf_of(page.text), "comment": typed},
        headers=HTML,
    )
    assert refused.status_code == 422
    assert typed[:60] in refused.text
    assert 'aria-describedby="comment-error"' in refused.text
    assert 'id="comment-error"' in refused.text and "Dites ce qui ne va pas" in refused.text
    assert '<html lang="fr"' in refused.text
    contested = await client.post(
        f"/exchanges/{key}/contest",
        data={"csrf_token": csrf_of(page.text), "comment": "Plutôt 1 h"},
        headers=HTML,
    )
    assert contested.status_code == 303


async def test_a_refused_amendment_keeps_what_was_typed(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    key = await _declared(app, client)
    await sign_in(client, "paul")
    page = await client.get(f"/exchanges/{key}", headers=HTML)
    await client.post(
        f"/exchanges/{key}/contest",
        data={"csrf_token": csrf_of(page.text), "comment": "Plutôt 1 h"},
    )
    await sign_in(client, "marie")
    page = await client.get(f"/exchanges/{key}", headers=HTML)
    refused = await client.post(
        f"/exchanges/{key}/amend",
        data={
            "csrf_token": csrf_of(page.text),
            "duration": "une heure",
            "description": "Réparé son vélo et sa sonnette",
        },
        headers=HTML,
    )
    assert refused.status_code == 422
    assert 'value="une heure"' in refused.text
    assert "Réparé son vélo et sa sonnette</textarea>" in refused.text
    assert 'aria-describedby="duration-error"' in refused.text
    assert "Donnez une durée" in refused.text
    # An answer the exchange no longer allows: the page says why, translated.
    page = await client.get(f"/exchanges/{key}", headers=HTML)
    await client.post(f"/exchanges/{key}/withdraw", data={"csrf_token": csrf_of(page.text)})
    late = await client.post(
        f"/exchanges/{key}/amend",
        data={"csrf_token": csrf_of(page.text), "duration": "1 h", "description": "x"},
        headers=HTML,
    )
    assert late.status_code == 409
    assert 'id="answer-form-error"' in late.text and "n’est plus possible" in late.text
