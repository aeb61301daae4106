"""Errors as a person can read them: JSON for machines, an HTML page for browsers."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node import i18n
from node.web.flash import N_
from node.web.negotiation import parse_accept

__all__ = ["ApiError", "error_response", "exception_handlers"]

log = logging.getLogger(__name__)

_MACHINE_PREFIXES = ("/api/", "/.well-known/", "/nodeinfo/", "/actors/", "/inbox", "/ns/")


class ApiError(HTTPException):
    """An HTTP error with a message for the client and optional per-field details;
    ``page_message``: what an error page says instead, already in the page's language
    (the JSON keeps ``message``)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        page_message: str | None = None,
        **details: Any,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.details = details
        self.page_message = page_message


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith(_MACHINE_PREFIXES):
        return False
    for media, _params, quality in parse_accept(request.headers.get("accept", "")):
        if media in ("text/html", "application/xhtml+xml") and quality > 0:
            return True
    return False


_TITLES = {
    400: N_("Bad request"),
    401: N_("Please sign in"),
    403: N_("Forbidden"),
    404: N_("Page not found"),
    405: N_("Method not allowed"),
    406: N_("Not acceptable"),
    410: N_("Gone"),
    413: N_("Too large"),
    415: N_("Unsupported media type"),
    422: N_("Invalid input"),
    429: N_("Too many requests"),
    500: N_("Something went wrong"),
}
#: What a page says when the error carries no message of its own (Starlette's "Not Found").
_EXPLANATIONS = {
    401: N_("Sign in to see this page."),
    403: N_("This page is not for you."),
    404: N_("There is nothing at this address: it may have moved or been deleted."),
    405: N_("This address does not answer that kind of request."),
    500: N_("An unexpected error happened on this node; it has been logged."),
}


def _page_message(status_code: int, message: str) -> str:
    """The message of an error page in the request's language: a known message translated,
    the bare HTTP phrase replaced by an explanation."""
    try:
        phrase = HTTPStatus(status_code).phrase
    except ValueError:
        phrase = ""
    if not message or message == phrase:
        message = _EXPLANATIONS.get(status_code, _TITLES.get(status_code, N_("Error")))
    return i18n.gettext(message)


def error_response(
    request: Request,
    status_code: int,
    message: str,
    details: dict[str, Any] | None = None,
    *,
    page_message: str | None = None,
) -> Response:
    headers = {"Vary": "Accept"}
    if _wants_html(request) and "node" in request.app.state._state:
        from node.web.templating import render

        title = i18n.gettext(_TITLES.get(status_code, N_("Error")))
        response = render(
            request,
            "error.html",
            status_code=status_code,
            title=title,
            message=page_message or _page_message(status_code, message),
        )
        response.headers.update(headers)
        return response
    body: dict[str, Any] = {"error": message, "status": status_code}
    if details:
        body.update(details)
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    details = getattr(exc, "details", None)
    message = exc.detail if isinstance(exc.detail, str) else _TITLES.get(exc.status_code, "Error")
    page_message = getattr(exc, "page_message", None)
    response = error_response(request, exc.status_code, message, details, page_message=page_message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(request, 500, _EXPLANATIONS[500])


exception_handlers: dict[Any, Any] = {HTTPException: _http_exception, Exception: _unexpected}
