"""Who is asking: a bearer token (JSON API) or a signed session cookie (pages).

The cookie's contents and its CSRF token are in ``node.web.sessions`` (re-exported here);
``node.web.csrf.CsrfMiddleware`` checks the token on every unsafe request, whatever the route.
"""

from __future__ import annotations

from sqlalchemy import select
from starlette.requests import Request

from node.db import read_only, session_scope
from node.members.errors import TokenRefused
from node.members.models import Member, MemberStatus
from node.members.service import check_token
from node.web.context import node_context
from node.web.errors import ApiError
from node.web.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    csrf_matches,
    csrf_token,
    log_in,
    log_out,
    session_is_protected,
    session_member_id,
)

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


async def current_member(request: Request) -> Member | None:
    """The approved member of the session cookie, or None."""
    member_id = session_member_id(request)
    if member_id is None:
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
