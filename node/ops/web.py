"""The web side of operations: request metrics and access log, and ``GET /metrics``.

``MetricsMiddleware`` counts every HTTP request (method, status class, duration) and writes
one access-log record per request on the ``node.access`` logger (fields ``method``,
``path``, ``status``, ``duration_ms``, ``client``, ``scheme``: ``node.ops.logs.JsonFormatter``
puts them in the JSON line; behind ``serve --proxy-headers``, client and scheme are the
ones the trusted proxy forwarded). ``metrics_endpoint`` renders the in-process registry
plus gauges read from the database at scrape time (jobs written by any worker process,
members), optionally behind a bearer token (``metrics_token``).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from node.db import read_only
from node.jobs import Job, JobState
from node.members.models import Member
from node.ops.metrics import (
    CONTENT_TYPE,
    HTTP_DURATION,
    HTTP_REQUESTS,
    REGISTRY,
    Family,
    Registry,
    Sample,
    status_class,
)

__all__ = ["MetricsMiddleware", "install_default_collectors", "metrics_endpoint"]

access_log = logging.getLogger("node.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
DELIVER = "deliver"  # node.activitypub.outbox.DELIVER (not imported: no protocol import here)


class MetricsMiddleware:
    """Counts requests and logs one access record each; outermost, so it sees every answer."""

    def __init__(self, app: ASGIApp, registry: Registry = REGISTRY) -> None:
        self.app = app
        del registry  # the module-level metrics belong to REGISTRY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            duration = time.perf_counter() - start
            method = scope.get("method", "GET")
            label = method if method in _METHODS else "other"
            HTTP_REQUESTS.inc(method=label, status=status_class(status))
            HTTP_DURATION.observe(duration, method=label)
            client = scope.get("client")
            access_log.info(
                "%s %s %s %.1fms",
                method,
                scope.get("path", ""),
                status,
                duration * 1000,
                extra={
                    "method": method,
                    "path": scope.get("path", ""),
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "client": client[0] if client else None,
                    "scheme": scope.get("scheme", "http"),
                },
            )


async def jobs_collector(session: Any) -> Iterable[Family]:
    rows = (
        await session.execute(
            select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state)
        )
    ).all()
    counts = {(kind, state): int(n) for kind, state, n in rows}
    jobs = Family("archipel_jobs", "gauge", "Jobs in the jobs table, by kind and state.")
    for (kind, state), n in sorted(counts.items()):
        jobs.samples.append(Sample({"kind": kind, "state": state}, n))
    pending = Family(
        "archipel_deliveries_pending",
        "gauge",
        "Deliveries waiting to be sent or retried (all worker processes).",
        [Sample({}, counts.get((DELIVER, JobState.PENDING), 0))],
    )
    failed = Family(
        "archipel_deliveries_failed",
        "gauge",
        "Deliveries given up (kept in the jobs table until cleaned up).",
        [Sample({}, counts.get((DELIVER, JobState.FAILED), 0))],
    )
    return [pending, failed, jobs]


async def members_collector(session: Any) -> Iterable[Family]:
    rows = (
        await session.execute(select(Member.status, func.count()).group_by(Member.status))
    ).all()
    by_status = {status: int(n) for status, n in rows}
    return [
        Family(
            "archipel_members",
            "gauge",
            "Members of the chamber (every status).",
            [Sample({}, sum(by_status.values()))],
        ),
        Family(
            "archipel_members_by_status",
            "gauge",
            "Members of the chamber, by status.",
            [Sample({"status": s}, n) for s, n in sorted(by_status.items())],
        ),
    ]


def install_default_collectors(registry: Registry = REGISTRY) -> None:
    registry.add_collector("jobs", jobs_collector)
    registry.add_collector("members", members_collector)


def _authorized(request: Request, token: str) -> bool:
    if not token:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token)


async def metrics_endpoint(request: Request) -> Response:
    node = request.app.state.node
    if not _authorized(request, node.settings.metrics_token):
        return PlainTextResponse(
            "a bearer token is required (metrics_token)\n",
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    families = REGISTRY.families()
    up = 1
    try:
        async with read_only(node.sessionmaker) as session:
            for collector in REGISTRY.collectors:
                families.extend(await collector(session))
    except Exception:  # noqa: BLE001 - a scrape must answer even when the database does not
        logging.getLogger(__name__).exception("metrics collector failed")
        up = 0
    families.append(
        Family(
            "archipel_database_up",
            "gauge",
            "1 when the scrape-time database collectors succeeded.",
            [Sample({}, up)],
        )
    )
    return Response(REGISTRY.render(families), media_type=CONTENT_TYPE)
