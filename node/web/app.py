"""The ASGI application. Nothing is built at import time: ``create_app(settings)`` does it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from http.cookies import SimpleCookie

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node import i18n
from node.bricks.service import brick_stats
from node.bricks.validation import MAX_FORM_BYTES
from node.clearing.exchanges.house import clearing_stats
from node.config import Settings
from node.db import utcnow
from node.members.clearing_access import clearing_opener
from node.members.contributions import ContributionStats
from node.migrate import current_heads, head_revisions
from node.ops.web import MetricsMiddleware, install_default_collectors, metrics_endpoint
from node.runtime import open_runtime
from node.web import (
    account,
    account_tokens,
    actors,
    admin,
    admin_partners,
    api_document,
    bricks,
    bricks_api,
    clearing,
    clearing_api,
    directory,
    discovery,
    federation,
    members_api,
    notifications,
    offers,
    offers_api,
    partners_api,
    recovery,
    remote_actors,
    rounds,
    timeline,
)
from node.web._members import LANGUAGE_KEY
from node.web.context import NodeContext
from node.web.csrf import CsrfMiddleware
from node.web.errors import ApiError, exception_handlers
from node.web.navigation import NavigationMiddleware
from node.web.templating import make_templates

__all__ = ["DatabaseNotMigrated", "create_app"]

log = logging.getLogger(__name__)


class DatabaseNotMigrated(RuntimeError):
    pass


TooLargePage = Callable[[Request, str], Awaitable[Response | None]]


def too_large_note(limit: int) -> str:
    """What a person reads when a body over ``limit`` bytes is refused (their language)."""
    return i18n.gettext(
        "What was sent is larger than this chamber accepts (%(size)s MB at most)."
    ) % {"size": f"{limit / 1_000_000:.1f}".removesuffix(".0")}


class BodyLimitMiddleware:
    """Refuse request bodies over ``limit`` bytes with a 413 the error handlers render
    (JSON for machines, in English; for people a page in their language, and the form they
    sent again with a note when one of ``pages`` knows it), whatever ``Content-Length``
    claims. Multipart forms (the only ones carrying files) may weigh ``form_limit``: what
    the brick form promises (``MAX_FORM_BYTES``)."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        form_limit: int = 0,
        pages: Sequence[TooLargePage] = (),
    ) -> None:
        self.app = app
        self.limit = limit
        self.form_limit = form_limit
        #: Each gives the form a person sent, with the note, or None when not theirs.
        self.pages = tuple(pages)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length", "")
        limit = self.limit
        if headers.get("content-type", "").lower().startswith("multipart/form-data"):
            limit = max(limit, self.form_limit)
        too_large = f"the request body is larger than this node accepts ({limit} bytes)"
        note = too_large_note(limit)
        if declared.isdigit() and int(declared) > limit:
            for page in self.pages:
                response = await page(Request(scope), note)
                if response is not None:
                    await response(scope, receive, send)
                    return

            async def refuse() -> Message:
                raise ApiError(413, too_large, page_message=note)

            await self.app(scope, refuse, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise ApiError(413, too_large, page_message=note)
            return message

        await self.app(scope, counted, send)


#: The language picked with the page's switch (``?lang=``), for a year.
LANGUAGE_COOKIE = "archipel_lang"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600


class LanguageMiddleware:
    """Chooses the language of the request: ``?lang=`` (remembered in a cookie), the
    cookie, the member's setting, ``Accept-Language``, the chamber's ``language``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = scope["app"].state.node.settings
        request = Request(scope)
        asked = request.query_params.get("lang")
        picked = asked if asked in i18n.SUPPORTED_LANGUAGES else None
        i18n.use_language(
            i18n.negotiate_language(
                scope.get("session", {}).get(LANGUAGE_KEY),
                request.headers.get("accept-language"),
                settings.language,
                chosen=picked or request.cookies.get(LANGUAGE_COOKIE),
            )
        )
        if picked is None:
            await self.app(scope, receive, send)
            return
        cookie = SimpleCookie()
        cookie[LANGUAGE_COOKIE] = picked
        cookie[LANGUAGE_COOKIE]["path"] = "/"
        cookie[LANGUAGE_COOKIE]["max-age"] = LANGUAGE_COOKIE_AGE
        cookie[LANGUAGE_COOKIE]["samesite"] = "Lax"
        if settings.url.startswith("https://"):
            cookie[LANGUAGE_COOKIE]["secure"] = True
        set_cookie = cookie.output(header="").strip().encode("latin-1")

        async def remember(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"set-cookie", set_cookie)]
            await send(message)

        await self.app(scope, receive, remember)


def _routes() -> list[BaseRoute]:
    """Every route, by domain."""
    return [
        *discovery.routes,
        *actors.routes,
        *remote_actors.routes,
        *timeline.routes,
        *federation.routes,
        *account.routes,
        *recovery.routes,
        *notifications.routes,
        *account_tokens.routes,
        *admin.routes,
        *admin_partners.routes,
        *members_api.routes,
        *bricks.routes,
        *bricks_api.routes,
        *api_document.routes,
        *partners_api.routes,
        *rounds.routes,
        *clearing.routes,
        *clearing_api.routes,
        *offers.routes,
        *offers_api.routes,
        *directory.routes,
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Mount("/static", StaticFiles(packages=[("node.web", "static")]), name="static"),
    ]


def _contributions(settings: Settings) -> ContributionStats:
    """Domains report bricks, ratings and clearing use here (node.members.contributions),
    and hear of newly published bricks (the clearing-access notice)."""
    contributions = ContributionStats()
    contributions.register_bricks(brick_stats)
    contributions.register_clearing(clearing_stats)
    contributions.on_bricks_published(clearing_opener(settings, contributions))
    return contributions


def create_app(
    settings: Settings,
    *,
    run_worker: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Starlette:
    """The app; with ``run_worker`` the durable job worker runs inside the server process.
    ``transport`` carries the federation's outgoing requests instead of the network and
    ``clock`` tells the time (tests inject in-process chambers or a fake remote, and a clock
    they move; production passes neither)."""
    contributions = _contributions(settings)
    install_default_collectors()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with open_runtime(settings, transport=transport, clock=clock) as runtime:
            current, expected = await current_heads(runtime.engine), head_revisions()
            if current != expected:
                raise DatabaseNotMigrated(
                    f"the database is at revision {sorted(current)}, this code needs"
                    f" {sorted(expected)}: run `archipel migrate --data-dir {settings.data_dir}`"
                )
            app.state.node = NodeContext(
                settings=settings,
                engine=runtime.engine,
                sessionmaker=runtime.sessionmaker,
                box=runtime.box,
                federation=runtime.federation,
                dispatcher=runtime.dispatcher,
                worker=runtime.worker,
                templates=make_templates(),
                services=runtime.services,
                contributions=contributions,
            )
            worker_task = None
            if run_worker:
                worker_task = asyncio.create_task(runtime.worker.run_forever())
            try:
                yield
            finally:
                if worker_task is not None:
                    worker_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await worker_task

    return Starlette(
        routes=_routes(),
        lifespan=lifespan,
        exception_handlers=exception_handlers,
        middleware=[
            Middleware(MetricsMiddleware),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="archipel_session",
                max_age=14 * 24 * 3600,
                same_site="lax",
                https_only=settings.url.startswith("https://"),
            ),
            Middleware(LanguageMiddleware),
            Middleware(NavigationMiddleware),
            Middleware(notifications.UnreadCountMiddleware),
            Middleware(
                BodyLimitMiddleware,
                limit=settings.max_body_bytes,
                form_limit=MAX_FORM_BYTES,
                pages=[
                    bricks.too_large_form,
                    clearing.too_large_form,
                    account.too_large_form,
                ],
            ),
            # Inside the body limit (it reads forms) and the session (it reads the token).
            Middleware(CsrfMiddleware, origin=settings.url),
        ],
    )
