"""Shared by the account, admin and members API routes: member errors as HTTP errors,
the signed-in member of a page, the client's address."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse

from node import i18n
from node.members.errors import (
    InvalidMemberInput,
    InvalidTransition,
    LastAdministrator,
    LoginRefused,
    LoginThrottled,
    MemberError,
    MemberNotFound,
    NotAllowed,
    TokenNotFound,
    UsernameTaken,
)
from node.members.models import Member
from node.web.auth import current_member
from node.web.errors import ApiError

__all__ = [
    "LANGUAGE_KEY",
    "api_error",
    "client_address",
    "page_admin",
    "page_member",
    "remember_language",
]

LANGUAGE_KEY = "language"


def api_error(exc: MemberError) -> ApiError:
    """The HTTP status a member error means, with its message (and field, for inputs)."""
    if isinstance(exc, InvalidMemberInput):
        return ApiError(422, exc.message, field=exc.field)
    if isinstance(exc, MemberNotFound | TokenNotFound):
        return ApiError(404, str(exc))
    if isinstance(exc, NotAllowed | LoginRefused):
        return ApiError(403, str(exc))
    if isinstance(exc, LoginThrottled):
        return ApiError(429, str(exc), headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, UsernameTaken | LastAdministrator | InvalidTransition):
        return ApiError(409, str(exc))
    return ApiError(400, str(exc))


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def remember_language(request: Request, language: str | None) -> None:
    """The member's language setting, kept in the session for the language middleware."""
    if language:
        request.session[LANGUAGE_KEY] = language
        i18n.use_language(language)
    else:
        request.session.pop(LANGUAGE_KEY, None)


async def page_member(request: Request) -> Member | RedirectResponse:
    """The signed-in member, or a redirect to the sign-in page."""
    member = await current_member(request)
    if member is None:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    return member


async def page_admin(request: Request) -> Member | RedirectResponse:
    member = await page_member(request)
    if isinstance(member, Member) and not member.is_admin:
        raise ApiError(403, i18n.gettext("This page is for the chamber's administrators."))
    return member
