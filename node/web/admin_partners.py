"""Administration of trade between chambers: ``/admin/partners``.

The partners (credit lines, mirror balances), a form to add one and a form per partner to change
its credit line (both logged in the audit log), the settlements in flight and recent, the
reconciliation with each partner, and the clearing rounds. Server-rendered, no JavaScript; every
form carries the session's CSRF token; a refused form comes back (422) with its errors next to
its fields, or above the forms when they concern none of them. Thin:
`node.clearing.partners.service` does the work.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.clearing.partners.service import (
    PartnerError,
    add_partner,
    list_partners,
    list_settlements,
    partner_by_uri,
    set_credit_line,
)
from node.clearing.units import DurationError, format_minutes, parse_duration
from node.db import read_only
from node.members.models import Member
from node.web._members import page_admin
from node.web.context import NodeContext, node_context
from node.web.people import load_people
from node.web.templating import render

__all__ = ["routes"]

PAGE = "/admin/partners"
ADD_FORM = "add"


def _text(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def _credit_line(text: str, errors: dict[str, str]) -> int | None:
    """Minutes from "10 h", "1:30", "90 min"...; the error goes to ``errors``."""
    try:
        minutes = parse_duration(text)
    except DurationError as exc:
        errors["credit_line"] = str(exc)
        return None
    if minutes < 0:
        errors["credit_line"] = i18n.gettext(
            "A credit line is zero or more: how far that chamber may owe this one."
        )
        return None
    return minutes


async def _page(
    request: Request,
    node: NodeContext,
    *,
    status_code: int = 200,
    form: str = "",
    values: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
) -> Response:
    async with read_only(node.sessionmaker) as session:
        partners = await list_partners(session)
        settlements = await list_settlements(session)
        reconciliations = await node.services.reconciler.status(session)
        rounds = await node.services.rounds.list_rounds(session, limit=10)
        people = await load_people(
            session,
            node.federation,
            node.settings,
            [*(p.chamber_uri for p in partners), *(s.partner_uri for s in settlements)],
        )
    names = {p.chamber_uri: people[p.chamber_uri].name for p in partners}
    return render(
        request,
        "admin/partners.html",
        status_code=status_code,
        partners=partners,
        settlements=settlements,
        reconciliations=reconciliations,
        rounds=rounds,
        names=names,
        people=people,
        format_minutes=format_minutes,
        form=form,
        values=values or {},
        errors=errors or {},
        message=request.query_params.get("done"),
    )


async def partners_page(request: Request) -> Response:
    admin = await page_admin(request)
    if not isinstance(admin, Member):
        return admin
    return await _page(request, node_context(request))


async def add(request: Request) -> Response:
    admin = await page_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    values = {
        "chamber": _text(form, "chamber", 2048),
        "credit_line": _text(form, "credit_line", 40),
        "reason": _text(form, "reason", 2000),
    }
    errors: dict[str, str] = {}
    if not values["chamber"]:
        errors["chamber"] = i18n.gettext(
            "Give the chamber's address: @chamber@host or its actor URL."
        )
    line = _credit_line(values["credit_line"], errors)
    if not errors and line is not None:
        try:
            await add_partner(
                node.federation, values["chamber"], line, by=admin, reason=values["reason"]
            )
        except PartnerError as exc:
            errors["chamber"] = str(exc)
    if errors:
        return await _page(
            request, node, status_code=422, form=ADD_FORM, values=values, errors=errors
        )
    await node.services.reconciler.schedule()
    return RedirectResponse(f"{PAGE}?done=added", status_code=303)


async def change_credit_line(request: Request) -> Response:
    admin = await page_admin(request)
    if not isinstance(admin, Member):
        return admin
    node = node_context(request)
    form = await request.form()
    values = {
        "chamber": _text(form, "chamber", 2048),
        "credit_line": _text(form, "credit_line", 40),
        "reason": _text(form, "reason", 2000),
    }
    errors: dict[str, str] = {}
    async with read_only(node.sessionmaker) as session:
        if await partner_by_uri(session, values["chamber"]) is None:
            errors["form"] = i18n.gettext(
                "%(chamber)s is not a partner chamber (any more): reload the page."
            ) % {"chamber": values["chamber"]}
    line = _credit_line(values["credit_line"], errors)
    if not values["reason"]:
        errors["reason"] = i18n.gettext("Say why the credit line changes: it is logged.")
    if not errors and line is not None:
        try:
            await set_credit_line(
                node.federation, values["chamber"], line, by=admin, reason=values["reason"]
            )
        except PartnerError as exc:
            errors["credit_line"] = str(exc)
    if errors:
        return await _page(
            request, node, status_code=422, form=values["chamber"], values=values, errors=errors
        )
    return RedirectResponse(f"{PAGE}?done=credit-line", status_code=303)


routes = [
    Route(PAGE, partners_page, methods=["GET"]),
    Route(PAGE, add, methods=["POST"]),
    Route(f"{PAGE}/credit-line", change_credit_line, methods=["POST"]),
]
