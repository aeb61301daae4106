"""JSON API for partner chambers: list them (public, as the ledger is), add one or change its
credit line (administrators). Thin: `node.clearing.partners.service` does the work."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node.clearing.partners.service import PartnerError, add_partner, list_partners, set_credit_line
from node.db import read_only
from node.web.api import Answer, Body, Endpoint, Param, json_object, routes_of
from node.web.auth import require_member
from node.web.context import node_context
from node.web.errors import ApiError

__all__ = ["endpoints", "routes"]


async def partners(request: Request) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        items = await list_partners(session)
    return JSONResponse({"items": [p.as_json() for p in items]})


async def add(request: Request) -> Response:
    """POST {"chamber": "@chamber@host" or actor URL, "credit_line_minutes": int, "reason"}."""
    node = node_context(request)
    admin = await require_member(request)
    if not admin.is_admin:
        raise ApiError(403, "only the chamber's administrators can add partner chambers")
    body = await json_object(request)
    chamber = body.get("chamber")
    if not isinstance(chamber, str) or not chamber.strip():
        raise ApiError(422, "invalid input", fields={"chamber": "@chamber@host or an actor URL"})
    reason = body.get("reason", "")
    try:
        view = await add_partner(
            node.federation,
            chamber,
            body.get("credit_line_minutes"),
            by=admin,
            reason=reason if isinstance(reason, str) else "",
        )
    except PartnerError as exc:
        raise ApiError(422, str(exc)) from None
    await node.services.reconciler.schedule()
    return JSONResponse(view.as_json(), status_code=201)


async def change(request: Request) -> Response:
    """PATCH /api/v1/partners?chamber=URI {"credit_line_minutes": int, "reason": str}."""
    node = node_context(request)
    admin = await require_member(request)
    if not admin.is_admin:
        raise ApiError(403, "only the chamber's administrators can change credit lines")
    body = await json_object(request)
    chamber = request.query_params.get("chamber") or body.get("chamber")
    if not isinstance(chamber, str) or not chamber:
        raise ApiError(422, "invalid input", fields={"chamber": "the partner's actor id"})
    reason = body.get("reason", "")
    try:
        view = await set_credit_line(
            node.federation,
            chamber,
            body.get("credit_line_minutes"),
            by=admin,
            reason=reason if isinstance(reason, str) else "",
        )
    except PartnerError as exc:
        raise ApiError(404 if "not a partner" in str(exc) else 422, str(exc)) from None
    return JSONResponse(view.as_json())


_TAGS = ("clearing",)
_CSRF = "not an administrator, or no CSRF token"

endpoints = [
    Endpoint(
        "GET",
        "/api/v1/partners",
        partners,
        "listPartners",
        "Public: the partner chambers, their credit lines and mirror balances",
        {200: Answer("items", "Partners")},
        tags=_TAGS,
    ),
    Endpoint(
        "POST",
        "/api/v1/partners",
        add,
        "addPartner",
        "Administrators: trade with a chamber (or set its credit line if it is one)",
        {
            201: Answer("the partner", "Partner"),
            403: Answer(_CSRF),
            422: Answer("invalid field, unreachable, or not a chamber (Group)"),
        },
        auth="admin",
        body=Body("PartnerAddition"),
        tags=_TAGS,
    ),
    Endpoint(
        "PATCH",
        "/api/v1/partners",
        change,
        "changeCreditLine",
        "Administrators: change the credit line extended to a partner (logged)",
        {
            200: Answer("the partner after the change", "Partner"),
            403: Answer(_CSRF),
            404: Answer("not a partner chamber"),
            422: Answer("an invalid field"),
        },
        auth="admin",
        params=(
            Param("chamber", "the partner's actor id (or chamber in the body)", max_length=2048),
        ),
        body=Body("CreditLineChange"),
        tags=_TAGS,
    ),
]
routes = routes_of(endpoints)
