"""CSRF by construction (issue 12, finding 3): every unsafe route, enumerated from the app's
router, refuses a request the session cookie authenticates without the session's token,
before anything changes; the token, a bearer token or a same-origin JSON request pass."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from node.bricks.models import Brick
from node.db import read_only
from node.members.models import MemberRole
from node.models import Base
from tests.web._members import PASSWORD, add_member, csrf_of, sign_in

EVIL = {"Origin": "https://evil.example", "Accept": "application/json"}
#: What a forged form would carry: enough for most routes to do something if let through.
FORGED = {
    "title": "Une brique forgée",
    "category": "methode",
    "summary": "Forgée.",
    "body": "Par un autre site.",
    "action": "approve",
    "bio": "forged",
    "display_name": "Forged",
    "reason": "forged",
    "host": "victim.example",
    "current_password": PASSWORD,
    "new_password": "forged password 123",
    "new_password_confirm": "forged password 123",
}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
BRICK_JSON = '{"title": "Le jardin partagé", "category": "methode", "summary": "Court.",'
BRICK_JSON += ' "body": "Du texte."}'


def _unsafe_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) for every unsafe method of every route, through mounts; path
    parameters filled with a value of their type."""
    for route in routes:
        if isinstance(route, Mount):
            yield from _unsafe_routes(route.routes, prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(
                r"{(\w+)(?::(\w+))?}",
                lambda m: "1" if m.group(2) == "int" else "x",
                prefix + route.path,
            )
            for method in sorted((route.methods or set()) & UNSAFE_METHODS):
                yield method, path


def _is_csrf_refusal(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    try:
        body: Any = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("check") == "csrf"


async def _snapshot(app: Starlette) -> dict[str, list[str]]:
    """Every row of every table, to show that a refused request changed nothing."""
    node = app.state.node
    found: dict[str, list[str]] = {}
    async with read_only(node.sessionmaker) as session:
        for table in Base.metadata.sorted_tables:
            rows = await session.execute(select(table))
            found[table.name] = sorted(repr(tuple(row)) for row in rows)
    return found


async def _bricks(app: Starlette) -> int:
    async with read_only(app.state.node.sessionmaker) as session:
        return int((await session.execute(select(func.count(Brick.id)))).scalar_one())


async def test_every_unsafe_route_refuses_the_cookie_without_the_token(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    await add_member(app, "ada", role=MemberRole.ADMIN)
    await add_member(app, "marie")
    assert (await sign_in(client, "ada")).status_code == 303
    token = csrf_of((await client.get("/account")).text)
    routes = list(_unsafe_routes(app.routes))
    paths = {path for _method, path in routes}
    assert len(routes) > 30 and "/api/v1/bricks" in paths and "/inbox" in paths
    before = await _snapshot(app)
    for method, path in routes:
        for data in (FORGED, {**FORGED, "csrf_token": "not the token"}):
            response = await client.request(method, path, data=data, headers=EVIL)
            assert _is_csrf_refusal(response), (method, path, response.status_code)
        forged_json = await client.request(
            method, path, content=BRICK_JSON, headers={**EVIL, "Content-Type": "application/json"}
        )
        assert _is_csrf_refusal(forged_json), (method, path, forged_json.status_code)
        as_text = await client.request(
            method, path, content=BRICK_JSON, headers={**EVIL, "Content-Type": "text/plain"}
        )
        assert _is_csrf_refusal(as_text), (method, path, as_text.status_code)
    assert await _snapshot(app) == before

    # The same requests with the session's token reach their route (whatever it answers).
    for method, path in sorted(routes, key=lambda route: route[1] == "/logout"):
        with_field = await client.request(
            method, path, data={**FORGED, "csrf_token": token}, headers=EVIL
        )
        assert not _is_csrf_refusal(with_field), (method, path, with_field.text)
        if path == "/logout":
            break
        with_header = await client.request(
            method, path, data=FORGED, headers={**EVIL, "X-CSRF-Token": token}
        )
        assert not _is_csrf_refusal(with_header), (method, path, with_header.text)


async def test_the_forged_brick_of_the_review_is_refused(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """The review's attack: a form-encoded POST from another site created a brick (201)."""
    await add_member(app, "marie")
    await sign_in(client, "marie")
    fields = {k: FORGED[k] for k in ("title", "category", "summary", "body")}
    refused = await client.post("/api/v1/bricks", data=fields, headers=EVIL)
    assert refused.status_code == 403 and refused.json()["check"] == "csrf"
    no_origin = await client.post("/api/v1/bricks", data=fields)
    assert no_origin.status_code == 403
    assert await _bricks(app) == 0
    # JSON from the node's own pages: its Origin, or Sec-Fetch-Site, or the header token.
    ours = {"Origin": str(client.base_url).rstrip("/"), "Content-Type": "application/json"}
    assert (
        await client.post("/api/v1/bricks", content=BRICK_JSON, headers=ours)
    ).status_code == 201
    fetch = {"Sec-Fetch-Site": "same-origin", "Content-Type": "application/json"}
    assert (
        await client.post("/api/v1/bricks", content=BRICK_JSON, headers=fetch)
    ).status_code == 201
    cross = {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}
    assert (
        await client.post("/api/v1/bricks", content=BRICK_JSON, headers=cross)
    ).status_code == 403
    token = csrf_of((await client.get("/account")).text)
    with_token = await client.post(
        "/api/v1/bricks", data={**fields, "csrf_token": token}, headers=EVIL
    )
    assert with_token.status_code == 201, with_token.text
    assert await _bricks(app) == 3


async def test_bearer_tokens_and_anonymous_json_pass(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    bearer = await add_member(app, "marie", token=True)
    headers = {**EVIL, "Authorization": f"Bearer {bearer}"}
    created = await client.post(
        "/api/v1/bricks",
        content=BRICK_JSON,
        headers={**headers, "Content-Type": "application/json"},
    )
    assert created.status_code == 201
    # No cookie: nothing to forge; the route answers for itself (401: who are you?).
    anonymous = await client.post(
        "/api/v1/bricks", content=BRICK_JSON, headers={"Content-Type": "application/json"}
    )
    assert anonymous.status_code == 401
    # A browser may resend Basic credentials by itself: they exempt nothing.
    basic = {**EVIL, "Authorization": "Basic YTpi"}
    await sign_in(client, "marie")
    assert _is_csrf_refusal(await client.post("/api/v1/bricks", data=FORGED, headers=basic))
    assert await _bricks(app) == 1


async def test_login_csrf_is_refused(app: Starlette, client: httpx.AsyncClient) -> None:
    """A cross-site form signing the visitor in as someone else: without a session (no
    token to match) or with one, the sign-in form must carry the session's token."""
    await add_member(app, "mallory")
    fresh = {"username": "mallory", "password": PASSWORD}
    refused = await client.post("/login", data=fresh, headers={"Accept": "text/html"})
    assert refused.status_code == 403 and "archipel_session" not in refused.cookies
    assert "CSRF" in refused.text and "<html" in refused.text  # a page, in the chamber's language
    assert (await client.get("/account")).status_code == 303
    assert (await sign_in(client, "mallory")).status_code == 303
