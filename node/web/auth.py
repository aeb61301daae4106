"""Who is asking: bearer tokens for the JSON API."""

from __future__ import annotations

from starlette.requests import Request

from node.db import session_scope
from node.members.models import Member
from node.members.service import authenticate_token
from node.web.context import node_context
from node.web.errors import ApiError

__all__ = ["require_member"]


async def require_member(request: Request) -> Member:
    """The approved member behind ``Authorization: Bearer ...``, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "this API needs a bearer token (archipel token create USERNAME)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    node = node_context(request)
    async with session_scope(node.sessionmaker) as session:
        member = await authenticate_token(session, token.strip())
    if member is None:
        raise ApiError(401, "this token is unknown, revoked, or its member is not approved")
    return member
