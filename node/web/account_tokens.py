"""The account's API tokens page: list them, create one (shown once), revoke one. Thin:
``node.members.service`` does the work; CSRF is checked by ``node.web.csrf``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from node import i18n
from node.db import read_only, session_scope, utcnow
from node.members.errors import InvalidMemberInput, TokenNotFound
from node.members.models import Member
from node.members.service import MAX_TOKEN_NAME_LENGTH, create_token, list_tokens, revoke_token
from node.web._members import page_member
from node.web.context import node_context
from node.web.templating import render

__all__ = ["EXPIRY_CHOICES", "routes"]

#: The expiries the page offers, in days (0: never).
EXPIRY_CHOICES = (0, 30, 90, 365)


def _text(form: Any, name: str, limit: int = 500) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _page(
    request: Request,
    member: Member,
    *,
    status_code: int = 200,
    error: str | None = None,
    new_token: str | None = None,
    new_name: str = "",
) -> Response:
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        tokens = await list_tokens(session, member)
    return render(
        request,
        "account/tokens.html",
        status_code=status_code,
        tokens=list(reversed(tokens)),
        now=utcnow(),
        error=error,
        new_token=new_token,
        new_name=new_name,
        expiry_choices=EXPIRY_CHOICES,
        max_name_length=MAX_TOKEN_NAME_LENGTH,
        revoked=request.query_params.get("revoked", ""),
    )


async def tokens_page(request: Request) -> Response:
    """GET: the list and the creation form; POST: create a token and show it once."""
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    if request.method == "GET":
        return await _page(request, member)
    form = await request.form()
    days = _text(form, "expires_in_days", 10)
    name = _text(form, "name", MAX_TOKEN_NAME_LENGTH + 1)
    if not days.isdigit() or int(days) not in EXPIRY_CHOICES:
        error = i18n.gettext("Choose one of the proposed expiries.")
        return await _page(request, member, status_code=422, error=error)
    expires_at = utcnow() + timedelta(days=int(days)) if int(days) else None
    try:
        async with session_scope(node_context(request).sessionmaker) as session:
            token = await create_token(session, member, name, expires_at=expires_at)
            created = (await list_tokens(session, member))[-1].name
    except InvalidMemberInput as exc:
        if "already" in exc.message:
            error = i18n.gettext("You already have a token named %(name)s: choose another name.")
        else:
            error = i18n.gettext(
                "A token's name has 1 to %(max)d letters, digits, spaces or punctuation signs."
            )
        values = {"name": name.strip(), "max": MAX_TOKEN_NAME_LENGTH}
        return await _page(request, member, status_code=422, error=error % values)
    return await _page(request, member, status_code=201, new_token=token, new_name=created)


async def revoke(request: Request) -> Response:
    member = await page_member(request)
    if not isinstance(member, Member):
        return member
    form = await request.form()
    name = _text(form, "name", MAX_TOKEN_NAME_LENGTH + 1)
    try:
        async with session_scope(node_context(request).sessionmaker) as session:
            await revoke_token(session, member, name)
    except TokenNotFound:
        error = i18n.gettext("You have no token named %(name)s to revoke.") % {"name": name}
        return await _page(request, member, status_code=404, error=error)
    return RedirectResponse("/account/tokens?revoked=1", status_code=303)


routes = [
    Route("/account/tokens", tokens_page, methods=["GET", "POST"]),
    Route("/account/tokens/revoke", revoke, methods=["POST"]),
]
