"""In-process networking: each request goes to the app of its host, through ASGI (no socket)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
from starlette.applications import Starlette

__all__ = ["HostRouter", "Intercept"]

#: Called with every request (and its JSON body, if any): a status to answer instead of
#: delivering it, or None to deliver it.
Intercept = Callable[[httpx.Request, dict[str, Any] | None], int | None]


class HostRouter(httpx.AsyncBaseTransport):
    """Routes each request to the app of its host, as the Internet would; an unknown host
    cannot be reached (``httpx.ConnectError``). ``intercept`` drops or refuses chosen
    requests; ``posts`` and ``sent`` record the POSTs delivered (requests, JSON bodies)."""

    def __init__(self, apps: dict[str, Starlette] | None = None) -> None:
        self.transports: dict[str, httpx.ASGITransport] = {}
        self.intercept: Intercept | None = None
        self.posts: list[httpx.Request] = []
        self.sent: list[dict[str, Any]] = []
        for host, app in (apps or {}).items():
            self.add(host, app)

    def add(self, host: str, app: Starlette) -> None:
        self.transports[host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = None
        if request.method == "POST":
            await request.aread()
            try:
                body = json.loads(request.content)
            except ValueError:
                body = None
        if self.intercept is not None:
            status = self.intercept(request, body)
            if status is not None:
                return httpx.Response(status, text="intercepted")
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no chamber at {request.url.host}", request=request)
        if request.method == "POST":
            self.posts.append(request)
            if body is not None:
                self.sent.append(body)
        return await transport.handle_async_request(request)
