"""The session cookie's contents: who signed in, and the CSRF token of its forms.

Sessions are Starlette's signed cookies (itsdangerous), keyed by the node secret. No database
and no error pages here: ``node.web.auth`` reads the member, ``node.web.templating`` puts
``csrf_token`` in forms, ``node.web.csrf`` checks it.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

from node.members.models import Member

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "csrf_matches",
    "csrf_token",
    "log_in",
    "log_out",
    "session_is_protected",
    "session_member_id",
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


def session_member_id(request: Request) -> int | None:
    """The id of the member the session cookie names, if any (not checked against the
    database: ``node.web.auth.current_member`` does that)."""
    member_id = request.session.get(_SESSION_MEMBER)
    return member_id if isinstance(member_id, int) else None


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
