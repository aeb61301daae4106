"""Who is asking: a bearer token (JSON API) or a signed session cookie (pages), and CSRF.

Sessions are Starlette's signed cookies (itsdangerous), keyed by the node secret. Every
form that changes something carries ``csrf_token`` (``csrf_token`` puts it in templates);
``node.web.csrf.CsrfMiddleware`` checks it on every unsafe request, whatever the route.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from starlette.requests import Request

from node.db import read_only, session_scope
from node.members.errors import TokenRefused
from node.members.models import Member, MemberStatus
from node.members.service import check_token
from node.web.context import node_context
from node.web.errors import ApiError

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "csrf_matches",
    "csrf_token",
    "current_member",
    "log_in",
    "log_out",
    "require_member",
    "session_is_protected",
]

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SESSION_MEMBER = "member_id"
_SESSION_CSRF = "csrf"


def log_in(request: Request, member: Member) -> None:
    """Start a session for ``member`` (a fresh CSRF token too, against session fixation)."""
    request.session.clear()
    request.session[_SESSION_MEMBER] = member.id
    request.session[_SESSION_CSRF] = secrets.token_urlsafe(32)


def log_out(request: Request) -> None:
    request.session.clear()


async def current_member(request: Request) -> Member | None:
    """The approved member of the session cookie, or None."""
    member_id = request.session.get(_SESSION_MEMBER)
    if not isinstance(member_id, int):
        return None
    node = node_context(request)
    async with read_only(node.sessionmaker) as session:
        member = (
            await session.execute(select(Member).where(Member.id == member_id))
        ).scalar_one_or_none()
    if member is None or member.status != MemberStatus.APPROVED:
        return None
    return member


async def require_member(request: Request) -> Member:
    """The approved member behind ``Authorization: Bearer ...`` or the session, or 401."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(401, "use Authorization: Bearer <token>", headers=_CHALLENGE)
        node = node_context(request)
        try:
            async with session_scope(node.sessionmaker) as session:
                return await check_token(session, token.strip())
        except TokenRefused as exc:
            raise ApiError(401, str(exc), headers=_CHALLENGE) from None
    member = await current_member(request)
    if member is None:
        raise ApiError(
            401,
            "please sign in, or send a bearer token (archipel token create USERNAME)",
            headers=_CHALLENGE,
        )
    return member


_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use), for a hidden form field."""
    token = request.session.get(_SESSION_CSRF)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_CSRF] = token
    return token


def session_is_protected(session: Mapping[str, Any]) -> bool:
    """Whether the session cookie authenticates a member or backs a form (a CSRF token)."""
    return _SESSION_MEMBER in session or _SESSION_CSRF in session


def csrf_matches(session: Mapping[str, Any], given: object) -> bool:
    """Whether ``given`` (a header or form field) is the session's CSRF token."""
    expected = session.get(_SESSION_CSRF)
    return (
        isinstance(expected, str)
        and isinstance(given, str)
        and hmac.compare_digest(expected.encode(), given.encode())
    )
