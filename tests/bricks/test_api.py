"""The JSON API under /api/v1, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette

from tests.bricks._helpers import BRICK, add_member, bearer


async def test_create_get_patch_delete(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "marie", display_name="Marie")
    created = await client.post("/api/v1/bricks", json=BRICK, headers=bearer(token))
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["id"] == body["url"] and body["url"].startswith("https://lille.test/bricks/")
    key = body["key"]

    got = (await client.get(f"/api/v1/bricks/{key}")).json()
    assert got["title"] == BRICK["title"] and got["category"] == "methode"
    assert got["tags"] == ["jardin", "quartier"]
    assert got["authors"][0]["name"] == "Marie" and got["local"] is True
    assert "<strong>Important</strong>" in got["content"] and got["version"] == 1
    assert got["licence"] == "https://creativecommons.org/licenses/by-sa/4.0/"

    patched = await client.patch(
        f"/api/v1/bricks/{key}", json={"title": "Le jardin des voisins"}, headers=bearer(token)
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["version"] == 2 and patched.json()["title"] == "Le jardin des voisins"

    other = await add_member(app, "paul")
    forbidden = await client.patch(
        f"/api/v1/bricks/{key}", json={"title": "Pris"}, headers=bearer(other)
    )
    assert forbidden.status_code == 403
    assert (await client.delete(f"/api/v1/bricks/{key}", headers=bearer(other))).status_code == 403
    assert (await client.delete(f"/api/v1/bricks/{key}", headers=bearer(token))).status_code == 204
    assert (await client.get(f"/api/v1/bricks/{key}")).status_code == 404


async def test_validation_errors_name_each_field(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "marie")
    bad: dict[str, Any] = {
        "title": "x",
        "category": "poème",
        "summary": "\n".join(["ligne"] * 8),
        "body": "",
        "tags": ["bad tag!"],
        "links": ["javascript:alert(1)"],
    }
    response = await client.post(
        "/api/v1/bricks", json=bad, headers={**bearer(token), "Accept-Language": "en"}
    )
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert set(errors) == {"title", "category", "summary", "body", "tags", "links"}
    assert "too many lines" in errors["summary"]


async def test_writes_need_a_token(app: Starlette, client: httpx.AsyncClient) -> None:
    assert (await client.post("/api/v1/bricks", json=BRICK)).status_code == 401


async def test_list_filters_search_and_pages(app: Starlette, client: httpx.AsyncClient) -> None:
    token = await add_member(app, "marie")
    for i in range(5):
        brick = {
            **BRICK,
            "title": f"Brique numéro {i}",
            "category": "concept" if i % 2 else "analyse",
            "tags": [f"t{i}", "commun"],
            "body": f"Texte sur les coopératives {i}" if i == 3 else "Autre texte",
        }
        response = await client.post("/api/v1/bricks", json=brick, headers=bearer(token))
        assert response.status_code == 201, response.text

    async def titles(**params: Any) -> list[str]:
        response = await client.get("/api/v1/bricks", params=params)
        assert response.status_code == 200, response.text
        return [item["title"] for item in response.json()["items"]]

    assert await titles(q="coopérative") == ["Brique numéro 3"]  # rare: the index's path
    assert await titles(q="briq", limit=2) == ["Brique numéro 4", "Brique numéro 3"]  # common
    assert await titles(q="brique coop") == ["Brique numéro 3"]
    assert await titles(category="concept") == ["Brique numéro 3", "Brique numéro 1"]
    assert await titles(tag="t2") == ["Brique numéro 2"]
    assert len(await titles(author="marie")) == 5
    assert await titles(scope="federated") == []
    assert len(await titles(scope="local")) == 5

    first = (await client.get("/api/v1/bricks", params={"limit": 2})).json()
    assert [i["title"] for i in first["items"]] == ["Brique numéro 4", "Brique numéro 3"]
    second = (
        await client.get("/api/v1/bricks", params={"limit": 2, "after": first["next_cursor"]})
    ).json()
    assert [i["title"] for i in second["items"]] == ["Brique numéro 2", "Brique numéro 1"]
    item = first["items"][0]
    assert set(item) >= {"id", "url", "title", "category", "tags", "summary", "authors", "local"}
    assert (await client.get("/api/v1/bricks", params={"scope": "moon"})).status_code == 400


async def test_reviews_record_rating_and_use(app: Starlette, client: httpx.AsyncClient) -> None:
    marie = await add_member(app, "marie")
    paul = await add_member(app, "paul")
    key = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(marie))).json()["key"]
    bad = await client.post(
        f"/api/v1/bricks/{key}/reviews", json={"rating": 9}, headers=bearer(paul)
    )
    assert bad.status_code == 422 and "rating" in bad.json()["errors"]
    own = await client.post(
        f"/api/v1/bricks/{key}/reviews", json={"rating": 5}, headers=bearer(marie)
    )
    assert own.status_code == 403
    ok = await client.post(
        f"/api/v1/bricks/{key}/reviews",
        json={"rating": 4, "comment": "Utilisé à *Fives*."},
        headers=bearer(paul),
    )
    assert ok.status_code == 201, ok.text
    got = (await client.get(f"/api/v1/bricks/{key}")).json()
    assert got["rating_average"] == 4.0 and got["rating_count"] == 1
    assert got["reviews"][0]["used"] is True and "<em>Fives</em>" in got["reviews"][0]["comment"]


async def test_rating_twice_as_the_same_member_counts_once(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie")
    paul = await add_member(app, "paul")
    jeanne = await add_member(app, "jeanne")
    key = (await client.post("/api/v1/bricks", json=BRICK, headers=bearer(marie))).json()["key"]
    for rating in (1, 5, 2):
        answer = await client.post(
            f"/api/v1/bricks/{key}/reviews", json={"rating": rating}, headers=bearer(paul)
        )
        assert answer.status_code == 201, answer.text
    await client.post(f"/api/v1/bricks/{key}/reviews", json={"rating": 4}, headers=bearer(jeanne))
    got = (await client.get(f"/api/v1/bricks/{key}")).json()
    assert got["rating_count"] == 2 and got["rating_average"] == 3.0
    assert sorted(r["rating"] for r in got["reviews"]) == [2, 4]
