"""Errors as a person can read them: JSON for machines, an HTML page for browsers."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from node import i18n
from node.bricks.service import BrickNotFound
from node.web.negotiation import parse_accept

__all__ = ["ApiError", "error_response", "exception_handlers"]

log = logging.getLogger(__name__)

_MACHINE_PREFIXES = ("/api/", "/.well-known/", "/nodeinfo/", "/actors/", "/inbox", "/ns/")


class ApiError(HTTPException):
    """An HTTP error with a message for the client and optional per-field details."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(status_code=status_code, detail=message, headers=headers)
        self.details = details


def _wants_html(request: Request) -> bool:
    if request.url.path.startswith(_MACHINE_PREFIXES):
        return False
    for media, _params, quality in parse_accept(request.headers.get("accept", "")):
        if media in ("text/html", "application/xhtml+xml") and quality > 0:
            return True
    return False


_TITLES = {
    400: "Bad request",
    401: "Please sign in",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    406: "Not acceptable",
    410: "Gone",
    413: "Too large",
    415: "Unsupported media type",
    422: "Invalid input",
    429: "Too many requests",
    500: "Something went wrong",
}


def error_response(
    request: Request, status_code: int, message: str, details: dict[str, Any] | None = None
) -> Response:
    headers = {"Vary": "Accept"}
    if _wants_html(request) and "node" in request.app.state._state:
        from node.web.templating import render

        title = i18n.gettext(_TITLES.get(status_code, "Error"))
        response = render(
            request, "error.html", status_code=status_code, title=title, message=message
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
    response = error_response(request, exc.status_code, message, details)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(
        request, 500, "An unexpected error happened on this node; it has been logged."
    )


async def _not_found(request: Request, exc: Exception) -> Response:
    """A domain's ``LookupError`` for what a route asked by key (``BrickNotFound``)."""
    return error_response(request, 404, str(exc))


exception_handlers: dict[Any, Any] = {
    HTTPException: _http_exception,
    BrickNotFound: _not_found,
    Exception: _unexpected,
}
