"""Pages: catalogue, brick page (OpenGraph, AS2 on negotiation), forms with inline errors,
history, tags, Atom feeds, files; nodeinfo counts local bricks."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
from starlette.applications import Starlette

from tests.bricks._helpers import BRICK, add_member, bearer, csrf_of, sign_in

AS2 = {"Accept": "application/activity+json"}
HTML = {"Accept": "text/html"}


async def test_new_brick_needs_a_signed_in_member(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    response = await client.get("/bricks/new", headers=HTML)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fbricks%2Fnew"


async def test_form_shows_errors_inline_then_publishes(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "marie")
    await sign_in(client, "marie")
    form = await client.get("/bricks/new", headers=HTML)
    assert form.status_code == 200
    for name in ("title", "category", "summary", "body", "tags", "links", "files", "csrf_token"):
        assert f'name="{name}"' in form.text
    csrf = csrf_of(form.text)
    bad = await client.post(
        "/bricks/new",
        data={"csrf_token": csrf, "title": "x", "category": "methode", "summary": "s", "body": "b"},
        headers=HTML,
    )
    assert bad.status_code == 422
    assert 'id="title-error"' in bad.text and "au moins 3 caractères" in bad.text
    assert 'aria-invalid="true"' in bad.text and 'value="x"' in bad.text
    good = await client.post(
        "/bricks/new",
        data={
            "csrf_token": csrf,
            "title": "Le jardin partagé",
            "category": "methode",
            "summary": "Court.",
            "body": "Du **texte**.",
            "tags": "jardin, quartier",
            "links": "https://example.org/a",
        },
        files={"files": ("plan.pdf", b"%PDF-1.4 plan", "application/pdf")},
        headers=HTML,
    )
    assert good.status_code == 303, good.text
    page = await client.get(good.headers["location"], headers=HTML)
    assert page.status_code == 200
    assert '<meta property="og:title" content="Le jardin partagé">' in page.text
    assert '<meta property="og:description" content="Court.">' in page.text
    assert '<meta property="og:type" content="article">' in page.text
    assert "<strong>texte</strong>" in page.text and "CC BY-SA 4.0" in page.text
    assert 'href="/tags/jardin"' in page.text
    file_url = page.text.split('href="https://lille.test/files/')[1].split('"')[0]
    download = await client.get(f"/files/{file_url}")
    assert download.status_code == 200 and download.content == b"%PDF-1.4 plan"
    assert download.headers["content-type"] == "application/pdf"

    key = good.headers["location"].rsplit("/", 1)[-1]
    edit = await client.get(f"/bricks/{key}/edit", headers=HTML)
    edited = await client.post(
        f"/bricks/{key}/edit",
        data={
            "csrf_token": csrf_of(edit.text),
            "title": "Le jardin des voisins",
            "category": "methode",
            "summary": "Court.",
            "body": "Du **texte**.",
            "tags": "jardin, quartier",
            "links": "https://example.org/a",
        },
        headers=HTML,
    )
    assert edited.status_code == 303
    history = await client.get(f"/bricks/{key}/history", headers=HTML)
    assert "Version 2" in history.text and "title" in history.text and "marie" in history.text
    missing_csrf = await client.post(f"/bricks/{key}/delete", data={}, headers=HTML)
    assert missing_csrf.status_code == 403


async def test_brick_negotiates_as2_and_feeds(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "marie")
    created = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))).json()
    document = await client.get(f"/bricks/{created['key']}", headers=AS2)
    assert document.headers["content-type"].startswith("application/activity+json")
    article = document.json()
    assert article["id"] == created["id"] and article["type"] == "Article"
    assert article["tag"][0] == {
        "type": "Hashtag",
        "href": "https://lille.test/tags/jardin",
        "name": "#jardin",
    }

    catalogue = await client.get("/bricks", params={"q": "jardin"}, headers=HTML)
    assert catalogue.status_code == 200 and "Le jardin partagé" in catalogue.text
    tag = await client.get("/tags/jardin", headers=HTML)
    assert "Le jardin partagé" in tag.text

    atom = "{http://www.w3.org/2005/Atom}"
    for url in ("/bricks/feed.atom", "/tags/jardin/feed.atom"):
        feed = await client.get(url)
        assert feed.headers["content-type"].startswith("application/atom+xml")
        root = ET.fromstring(feed.content)
        [entry] = root.findall(f"{atom}entry")
        assert entry.find(f"{atom}title").text == "Le jardin partagé"  # type: ignore[union-attr]
    assert (
        ET.fromstring((await client.get("/tags/autre/feed.atom")).content).findall(f"{atom}entry")
        == []
    )

    nodeinfo = (await client.get("/nodeinfo/2.1")).json()
    assert nodeinfo["usage"]["localPosts"] == 1
    profile = await client.get("/@marie", headers=HTML)
    assert "Le jardin partagé" in profile.text
