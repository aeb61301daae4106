"""The API's contract: the OpenAPI document lists exactly the /api/ routes the app serves, and
every query parameter is checked before a handler runs (a 400 naming it, never a 500)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from node.db import session_scope
from node.members.models import ClearingOverride, Member, MemberRole
from tests.bricks.test_openapi import validate_spec
from tests.web._members import add_member

BEYOND_INT32 = str(2**31)
BEYOND_INT64 = str(2**63)


def bearer(token: str | None) -> dict[str, str]:
    assert token is not None
    return {"Authorization": f"Bearer {token}"}


async def test_the_document_lists_every_api_route(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    spec = (await client.get("/api/v1/openapi.json")).json()
    validate_spec(spec)
    served = {
        (method.lower(), route.path)
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    documented = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert served == documented
    assert len(served) >= 38
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert any(status.startswith("2") for status in responses), (method, path)
            if operation.get("security"):
                assert "401" in responses, (method, path)
            if operation.get("requestBody"):
                assert {"400", "413", "415"} <= set(responses), (method, path)
            if operation.get("parameters"):
                assert "400" in responses, (method, path)


async def _tokens(app: Starlette) -> tuple[str, str]:
    member = await add_member(app, "marie", token=True)
    admin = await add_member(app, "ada", role=MemberRole.ADMIN, token=True)
    async with session_scope(app.state.node.sessionmaker) as session:
        for row in (await session.execute(Member.__table__.select())).all():
            stored = await session.get(Member, row.id)
            assert stored is not None
            stored.clearing_override = ClearingOverride.GRANTED
    assert member is not None and admin is not None
    return member, admin


# (path, query, who: "member"/"admin"/None, the parameter at fault)
OUT_OF_RANGE = [
    ("/api/v1/exchanges", {"before": BEYOND_INT32}, "member", "before"),
    ("/api/v1/exchanges", {"before": "0"}, "member", "before"),
    ("/api/v1/exchanges", {"state": "nope"}, "member", "state"),
    ("/api/v1/exchanges", {"role": "nobody"}, "member", "role"),
    ("/api/v1/bricks", {"after": BEYOND_INT32}, None, "after"),
    ("/api/v1/bricks", {"after": BEYOND_INT64}, None, "after"),
    ("/api/v1/bricks", {"cursor": "-1"}, None, "cursor"),
    ("/api/v1/bricks", {"limit": "0"}, None, "limit"),
    ("/api/v1/bricks", {"limit": "101"}, None, "limit"),
    ("/api/v1/bricks", {"limit": "ten"}, None, "limit"),
    ("/api/v1/bricks", {"category": "nope"}, None, "category"),
    ("/api/v1/bricks", {"scope": "moon"}, None, "scope"),
    ("/api/v1/admin/audit", {"before": BEYOND_INT32}, "admin", "before"),
    ("/api/v1/admin/audit", {"before": BEYOND_INT64}, "admin", "before"),
    ("/api/v1/admin/members", {"status": "nope"}, "admin", "status"),
    ("/api/v1/inbox", {"before": BEYOND_INT32}, "member", "before"),
    ("/api/v1/rounds", {"state": "nope"}, None, "state"),
]


@pytest.mark.parametrize(("path", "query", "who", "name"), OUT_OF_RANGE)
async def test_a_bad_query_parameter_answers_400_naming_it(
    app: Starlette,
    client: httpx.AsyncClient,
    path: str,
    query: dict[str, str],
    who: str | None,
    name: str,
) -> None:
    member, admin = await _tokens(app)
    headers = {} if who is None else bearer(member if who == "member" else admin)
    response = await client.get(path, params=query, headers=headers)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["status"] == 400 and body["error"].startswith(f"{name}: ")
    assert body["field"] == name


async def test_cursors_at_the_edge_still_page(app: Starlette, client: httpx.AsyncClient) -> None:
    member, admin = await _tokens(app)
    edge = str(2**31 - 1)
    for path, query, token in (
        ("/api/v1/exchanges", {"before": edge}, member),
        ("/api/v1/bricks", {"after": edge, "limit": "100"}, member),
        ("/api/v1/admin/audit", {"before": edge}, admin),
        ("/api/v1/inbox", {"before": edge}, member),
        ("/api/v1/rounds", {"state": "committed"}, member),
    ):
        response = await client.get(path, params=query, headers=bearer(token))
        assert response.status_code == 200, (path, response.text)


async def test_a_body_in_another_media_type_answers_415(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    member, admin = await _tokens(app)
    for path, token in (("/api/v1/exchanges", member), ("/api/v1/admin/charter", admin)):
        method = "PUT" if "charter" in path else "POST"
        response = await client.request(
            method,
            path,
            content=b"text=x",
            headers={**bearer(token), "Content-Type": "text/plain"},
        )
        assert response.status_code == 415, response.text
        assert "application/json" in response.json()["error"]


async def test_the_catalogue_page_refuses_an_out_of_range_cursor(client: httpx.AsyncClient) -> None:
    for cursor in (BEYOND_INT32, BEYOND_INT64):
        response = await client.get(
            "/bricks", params={"after": cursor}, headers={"Accept": "text/html"}
        )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("text/html")


async def test_a_handle_with_an_invalid_host_name_is_refused(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Found by schemathesis: a host that is not a valid IDNA name answered 500."""
    member, _admin = await _tokens(app)
    for path in ("/api/v1/follows",):
        response = await client.post(path, json={"handle": "@x@¾£µù"}, headers=bearer(member))
        assert response.status_code == 422, response.text
        assert "handle" in response.json()["fields"]


@pytest.mark.parametrize(
    ("path", "body", "statuses"),
    [
        ("/api/v1/members/me/follow-requests", {"actor": None, "decision": "accept"}, {404}),
        ("/api/v1/admin/domain-blocks", {"host": None, "reason": "x"}, {422}),
    ],
)
async def test_a_null_text_field_is_refused_not_a_500(
    app: Starlette, client: httpx.AsyncClient, path: str, body: dict[str, Any], statuses: set[int]
) -> None:
    """Found by schemathesis: null where text is expected answered 500."""
    _member, admin = await _tokens(app)
    response = await client.post(path, json=body, headers=bearer(admin))
    assert response.status_code in statuses, response.text


async def test_text_with_a_nul_character_is_refused(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """Found by schemathesis on PostgreSQL (which cannot store NUL in text): 500s."""
    _member, admin = await _tokens(app)
    answers = [
        await client.get("/api/v1/rounds", params={"uri": "https://x.example/\x00"}),
        await client.get("/api/v1/members/a%00b"),
        await client.put(
            "/api/v1/admin/charter", json={"text": "a\x00", "reason": "x"}, headers=bearer(admin)
        ),
    ]
    for response, field in zip(answers, ("uri", "username", "text"), strict=True):
        assert response.status_code == 400, response.text
        assert response.json()["field"] == field
