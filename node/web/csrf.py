"""CSRF by construction: one middleware checks every unsafe request, whatever the route.

A request with ``POST``, ``PUT``, ``PATCH`` or ``DELETE`` passes when:

- it carries ``Authorization: Bearer ...`` or an HTTP signature (``Signature`` /
  ``Signature-Input``): a browser never adds those to a cross-site request by itself, and
  such a request is authenticated by them, not by the cookie (the routes and the inbox
  verify them). Other ``Authorization`` schemes (Basic, which a browser may resend by
  itself to a proxy) are not exempt;
- or its ``X-CSRF-Token`` header, or the ``csrf_token`` field of its form (urlencoded or
  multipart), is the session's CSRF token;
- or its body is JSON (``application/json``, ``application/*+json``: a cross-site page
  cannot send that without a CORS preflight, which this node never grants) and it comes
  from this node's own pages: ``Origin`` is the node's origin, or ``Sec-Fetch-Site:
  same-origin``;
- or the session cookie protects nothing (it authenticates no member and backs no form)
  and the body is not of a kind a cross-site form can send (urlencoded, multipart or plain
  text). So an anonymous client may post JSON, while a forged sign-in (login CSRF: a
  cross-site form signing the victim in as the attacker) is refused: the sign-in and
  registration forms always carry the token of the session their page started.

Anything else gets a 403 rendered by the usual error pages (JSON for the API, a page in the
visitor's language for people), before any route runs. The body is read (bounded by
``BodyLimitMiddleware``, which wraps this one) only to find a form's ``csrf_token``, then
replayed to the route.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node import i18n
from node.activitypub.urls import same_origin
from node.web.auth import CSRF_FIELD, CSRF_HEADER, csrf_matches, session_is_protected
from node.web.errors import error_response

__all__ = ["UNSAFE_METHODS", "CsrfMiddleware"]

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: What a cross-site ``<form>`` (or a "simple" cross-site fetch) can send.
_CROSS_SITE_TYPES = frozenset(
    {"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}
)
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
_MAX_FORM_PARTS = 1000


def _media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _exempt(headers: Headers) -> bool:
    """Authenticated by something other than the cookie, which browsers never add alone."""
    scheme = headers.get("authorization", "").partition(" ")[0]
    return scheme.lower() == "bearer" or "signature" in headers or "signature-input" in headers


class CsrfMiddleware:
    """Refuse unsafe requests the session cookie would authenticate without proof that they
    come from this node's pages (see the module's docstring). Place it after
    ``SessionMiddleware`` and inside ``BodyLimitMiddleware``."""

    def __init__(self, app: ASGIApp, *, origin: str) -> None:
        self.app = app
        self.origin = origin

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE_METHODS:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        session = scope.get("session") or {}
        media_type = _media_type(headers)
        if (
            _exempt(headers)
            or (not session_is_protected(session) and media_type not in _CROSS_SITE_TYPES)
            or csrf_matches(session, headers.get(CSRF_HEADER))
            or (_is_json(media_type) and self._from_this_site(headers))
        ):
            await self.app(scope, receive, send)
            return
        if media_type in _FORM_TYPES:
            try:
                body = await _read_body(receive)
                given = await _form_token(scope, body)
            except HTTPException as exc:  # too large (413), unparsable form (400)
                await self._refuse(
                    scope,
                    receive,
                    send,
                    exc.status_code,
                    str(exc.detail),
                    page_message=getattr(exc, "page_message", None),
                )
                return
            if csrf_matches(session, given):
                await self.app(scope, _replay(body, receive), send)
                return
        message = i18n.gettext(
            "This form expired or did not come from this site (CSRF check):"
            " reload the page and try again."
        )
        await self._refuse(scope, receive, send, 403, message, check="csrf")

    def _from_this_site(self, headers: Headers) -> bool:
        origin = headers.get("origin")
        if origin is not None:
            return same_origin(origin, self.origin)
        return headers.get("sec-fetch-site") == "same-origin"

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        status_code: int,
        message: str,
        page_message: str | None = None,
        **details: str,
    ) -> None:
        request = Request(scope, receive)
        response = error_response(
            request, status_code, message, details or None, page_message=page_message
        )
        await response(scope, receive, send)


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise HTTPException(400, "the client went away before sending the whole body")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _form_token(scope: Scope, body: bytes) -> object:
    request = Request(scope, _replay(body, None))
    form = await request.form(
        max_files=_MAX_FORM_PARTS, max_fields=_MAX_FORM_PARTS, max_part_size=len(body) + 1
    )
    try:
        return form.get(CSRF_FIELD)
    finally:
        await form.close()


def _replay(body: bytes, receive: Receive | None) -> Receive:
    """The body already read, then (for a disconnect) the original ``receive``."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        if receive is None:
            return {"type": "http.disconnect"}
        return await receive()

    return replay
