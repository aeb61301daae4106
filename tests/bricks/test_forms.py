"""The brick form keeps the work: a file of the promised size is accepted, a refused form
comes back filled with a note naming the files to attach again, a body too large comes back
as the form (not an English error page), tags with spaces become hyphenated; success
messages; deleting asks first."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette

from node.bricks.validation import MAX_FILE_BYTES, MAX_FORM_BYTES
from tests.bricks._helpers import add_member, csrf_of, sign_in

HTML = {"Accept": "text/html"}
FRENCH = {"Accept": "text/html", "Accept-Language": "fr"}


def fields(csrf: str, **changes: str) -> dict[str, str]:
    return {
        "csrf_token": csrf,
        "title": "Le four solaire",
        "category": "methode",
        "summary": "Un four en carton.",
        "body": "Découper, coller.",
        "tags": "énergie, communs urbains",
        **changes,
    }


async def signed_in_form(app: Starlette, client: httpx.AsyncClient) -> str:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    return csrf_of((await client.get("/bricks/new", headers=HTML)).text)


async def test_a_file_of_the_promised_size_is_accepted(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    csrf = await signed_in_form(app, client)
    content = b"%PDF-1.4 " + b"x" * (MAX_FILE_BYTES - 9)
    assert len(content) == MAX_FILE_BYTES
    published = await client.post(
        "/bricks/new",
        data=fields(csrf),
        files={"files": ("plan.pdf", content, "application/pdf")},
        headers=HTML,
    )
    assert published.status_code == 303, published.text[:500]
    page = await client.get(published.headers["location"], headers=FRENCH)
    assert "plan.pdf" in page.text
    assert 'href="/tags/communs-urbains"' in page.text
    assert "Votre brique est publiée." in page.text  # the success message, once
    again = await client.get(published.headers["location"], headers=FRENCH)
    assert "Votre brique est publiée." not in again.text


async def test_a_refused_form_keeps_the_text_and_names_the_files_in_french(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    csrf = await signed_in_form(app, client)
    refused = await client.post(
        "/bricks/new",
        data=fields(csrf, title="x", tags="bien, pas bien!"),
        files={"files": ("plan.pdf", b"%PDF-1.4 plan", "application/pdf")},
        headers=FRENCH,
    )
    assert refused.status_code == 422
    text = refused.text
    assert 'value="x"' in text and "Découper, coller." in text
    assert 'id="title-error"' in text and "au moins 3 caractères" in text
    assert "n’est pas valide" in text and "pas bien!" in text
    assert 'aria-describedby="tags-help tags-error"' in text
    assert "plan.pdf" in text and 'id="reattach"' in text
    assert "joignez à nouveau" in text


async def test_a_body_too_large_comes_back_as_the_form(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    csrf = await signed_in_form(app, client)
    request = client.build_request(
        "POST",
        "/bricks/new",
        data=fields(csrf),
        files={"files": ("plan.pdf", b"%PDF-1.4 plan", "application/pdf")},
        headers=FRENCH,
    )
    request.headers["Content-Length"] = str(MAX_FORM_BYTES + 1)
    refused = await client.send(request)
    assert refused.status_code == 413
    assert 'name="title"' in refused.text and "Rien n’a été enregistré" in refused.text


async def test_deleting_a_brick_asks_first(app: Starlette, client: httpx.AsyncClient) -> None:
    csrf = await signed_in_form(app, client)
    published = await client.post("/bricks/new", data=fields(csrf), headers=HTML)
    key = published.headers["location"].rsplit("/", 1)[-1]
    page = await client.get(f"/bricks/{key}", headers=HTML)
    assert f'href="/bricks/{key}/delete"' in page.text
    asked = await client.post(f"/bricks/{key}/delete", data={"csrf_token": csrf}, headers=HTML)
    assert asked.status_code == 200 and 'name="confirm" value="yes"' in asked.text
    assert (await client.get(f"/bricks/{key}", headers=HTML)).status_code == 200
    deleted = await client.post(
        f"/bricks/{key}/delete", data={"csrf_token": csrf, "confirm": "yes"}, headers=HTML
    )
    assert deleted.status_code == 303
    listing = await client.get(deleted.headers["location"], headers=HTML)
    assert "La brique est supprimée." in listing.text
    assert (await client.get(f"/bricks/{key}", headers=HTML)).status_code == 404


async def test_a_refused_review_keeps_the_comment(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    csrf = await signed_in_form(app, client)
    key = (
        (await client.post("/bricks/new", data=fields(csrf), headers=HTML))
        .headers["location"]
        .rsplit("/", 1)[-1]
    )
    await add_member(app, "paul")
    other = httpx.AsyncClient(transport=client._transport, base_url=str(client.base_url))
    async with other:
        await sign_in(other, "paul")
        token = csrf_of((await other.get(f"/bricks/{key}", headers=HTML)).text)
        refused = await other.post(
            f"/bricks/{key}/reviews",
            data={"csrf_token": token, "rating": "9", "comment": "Très utile"},
            headers=HTML,
        )
        assert refused.status_code == 422
        assert "Très utile" in refused.text and 'id="rating-error"' in refused.text
