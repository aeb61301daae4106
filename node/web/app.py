"""The ASGI application. Nothing is built at import time: ``create_app(settings)`` does it."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from node import __version__, i18n
from node.activitypub.jsonld import install_offline_loader
from node.config import Settings
from node.db import make_engine, make_sessionmaker
from node.migrate import current_revision, head_revision
from node.secretbox import SecretBox
from node.web import actors, discovery
from node.web.context import NodeContext
from node.web.errors import exception_handlers
from node.web.templating import make_templates

__all__ = ["DatabaseNotMigrated", "create_app"]

log = logging.getLogger(__name__)


class DatabaseNotMigrated(RuntimeError):
    pass


def user_agent(settings: Settings) -> str:
    return f"Archipel/{__version__} (+{settings.url}/)"


class LanguageMiddleware:
    """Chooses the language of the request (member setting, Accept-Language, chamber)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            settings = scope["app"].state.node.settings
            accept_language = Headers(scope=scope).get("accept-language")
            i18n.use_language(i18n.negotiate_language(None, accept_language, settings.language))
        await self.app(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        install_offline_loader()
        engine = make_engine(settings.database_url)
        revision = await current_revision(engine)
        if revision != head_revision():
            await engine.dispose()
            raise DatabaseNotMigrated(
                f"the database is at revision {revision!r}, this code needs {head_revision()!r}:"
                f" run `archipel migrate --data-dir {settings.data_dir}`"
            )
        http = httpx.AsyncClient(
            headers={"User-Agent": user_agent(settings)}, timeout=10.0, trust_env=False
        )
        app.state.node = NodeContext(
            settings=settings,
            engine=engine,
            sessionmaker=make_sessionmaker(engine),
            box=SecretBox(settings.secret_key),
            http=http,
            templates=make_templates(),
        )
        try:
            yield
        finally:
            await http.aclose()
            await engine.dispose()

    routes = [
        *discovery.routes,
        *actors.routes,
        Mount("/static", StaticFiles(packages=[("node.web", "static")]), name="static"),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=exception_handlers,
        middleware=[Middleware(LanguageMiddleware)],
        max_body_size=settings.max_body_bytes,
    )
