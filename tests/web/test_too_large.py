"""A body too large for the chamber, on a page form: a page in the visitor's language (the
form itself with a note where the form is known), never the English text the API keeps."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from starlette.applications import Starlette

from tests.bricks._helpers import BRICK, add_member, bearer, csrf_of, sign_in

DUTCH = {"Accept": "text/html", "Accept-Language": "nl"}
FRENCH = {"Accept": "text/html", "Accept-Language": "fr"}


def _too_large(
    client: httpx.AsyncClient, path: str, csrf: str, headers: dict[str, str]
) -> httpx.Request:
    request = client.build_request(
        "POST", path, data={"csrf_token": csrf, "comment": "x"}, headers=headers
    )
    request.headers["Content-Length"] = str(2_000_000)  # over max_body_bytes
    return request


async def test_a_page_form_without_its_own_page_gets_a_translated_page(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    csrf = csrf_of((await client.get("/account/password", headers=FRENCH)).text)
    refused = await client.send(_too_large(client, "/account/password", csrf, DUTCH))
    assert refused.status_code == 413
    assert '<html lang="nl"' in refused.text
    assert "larger than this node accepts" not in refused.text
    assert "groter dan deze kamer aanvaardt" in refused.text


async def test_a_body_sent_in_chunks_gets_a_translated_page_too(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"bio=" + b"x" * 600_000  # no Content-Length: counted as it comes

    refused = await client.post(
        "/account/password",
        content=chunks(),
        headers={**FRENCH, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert refused.status_code == 413
    assert "dépasse ce que cette chambre accepte" in refused.text
    assert "larger than this node accepts" not in refused.text


async def test_the_clearing_forms_come_back_with_a_note(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    token = await add_member(app, "marie")
    await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))
    await sign_in(client, "marie")
    page = await client.get("/clearing", headers=DUTCH)
    refused = await client.send(
        _too_large(client, "/clearing/exchanges", csrf_of(page.text), DUTCH)
    )
    assert refused.status_code == 413
    assert 'name="counterparty"' in refused.text  # the declaration form, to fill again
    assert 'id="declare-form-error"' in refused.text
    assert "groter dan deze kamer aanvaardt" in refused.text


async def test_the_registration_and_profile_forms_come_back_with_a_note(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    csrf = csrf_of((await client.get("/register", headers=FRENCH)).text)
    refused = await client.send(_too_large(client, "/register", csrf, FRENCH))
    assert refused.status_code == 413
    assert 'name="username"' in refused.text and 'id="form-error"' in refused.text
    assert "dépasse ce que cette chambre accepte" in refused.text
    await add_member(app, "marie")
    await sign_in(client, "marie")
    csrf = csrf_of((await client.get("/account", headers=FRENCH)).text)
    refused = await client.send(_too_large(client, "/account/profile", csrf, FRENCH))
    assert refused.status_code == 413
    assert 'name="display_name"' in refused.text and 'id="form-error"' in refused.text


async def test_the_api_keeps_its_json_413(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "marie")
    request = client.build_request(
        "POST", "/api/v1/bricks", json=BRICK, headers={**bearer(token), "Accept-Language": "fr"}
    )
    request.headers["Content-Length"] = str(2_000_000)
    refused = await client.send(request)
    assert refused.status_code == 413
    assert "larger than this node accepts" in refused.json()["error"]
