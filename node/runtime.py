"""Everything a running node holds, built from the settings in one place.

The web app's lifespan and the CLI commands that talk to the network (``worker``,
``follow``) both open a ``Runtime``; nothing here happens at import time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from node import __version__
from node.activitypub.federation import Federation
from node.activitypub.follows import register_follow_handlers
from node.activitypub.inbox import InboxDispatcher
from node.activitypub.jsonld import install_offline_loader
from node.activitypub.notes import register_timeline_handlers
from node.activitypub.outbox import DELIVER, deliver_job
from node.activitypub.transport import make_async_client
from node.bricks.inbox import register_brick_handlers
from node.clearing.inbox import register_clearing_handlers
from node.clearing.jobs import clearing_job_handlers
from node.clearing.reconciliation_service import (
    reconciliation_job_handlers,
    register_reconciliation_handlers,
)
from node.clearing.round_service import register_round_handlers, round_job_handlers
from node.clearing.service import ClearingHouse
from node.config import Settings
from node.db import make_engine, make_sessionmaker, utcnow
from node.jobs import Handler, Worker
from node.mail import MAIL_JOB, mail_job
from node.members.notifications import (
    NOTIFICATION_MAIL_JOB,
    follow_notifier,
    notification_mail_job,
)
from node.offers import register_offer_handlers
from node.secretbox import SecretBox

__all__ = ["Runtime", "open_runtime", "user_agent"]


def user_agent(settings: Settings) -> str:
    return f"Archipel/{__version__} (+{settings.url}/)"


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    federation: Federation
    dispatcher: InboxDispatcher
    worker: Worker


def job_handlers(federation: Federation, settings: Settings) -> dict[str, Handler]:
    return {
        DELIVER: deliver_job(federation, retry_base=settings.retry_base_seconds),
        **clearing_job_handlers(federation, settings),
        **round_job_handlers(federation, settings),
        **reconciliation_job_handlers(federation, settings),
        MAIL_JOB: mail_job(settings, federation.sessionmaker),
        NOTIFICATION_MAIL_JOB: notification_mail_job(settings, federation.sessionmaker),
    }


@asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> AsyncIterator[Runtime]:
    """Everything the node holds. Tests pass a ``transport`` (instead of the guarded network)
    and a ``clock`` (the federation's, so every service's, and the worker's)."""
    install_offline_loader()
    engine = make_engine(settings.database_url)
    sessionmaker = make_sessionmaker(engine)
    box = SecretBox(settings.secret_key)
    http = make_async_client(
        allow_private_addresses=settings.allow_private_addresses,
        user_agent=user_agent(settings),
        transport=transport,
    )
    federation = Federation(
        base_url=settings.url,
        sessionmaker=sessionmaker,
        box=box,
        http=http,
        instance_username=settings.chamber_username,
        allow_http=settings.allow_private_addresses,
        clock=clock,
    )
    dispatcher = InboxDispatcher()
    register_follow_handlers(dispatcher, on_followed=follow_notifier())
    register_timeline_handlers(dispatcher)
    register_brick_handlers(dispatcher)
    register_offer_handlers(dispatcher)
    register_clearing_handlers(dispatcher, ClearingHouse(federation, settings))
    register_round_handlers(dispatcher)
    register_reconciliation_handlers(dispatcher, settings)
    worker = Worker(
        sessionmaker,
        job_handlers(federation, settings),
        lease=timedelta(seconds=settings.job_lease_seconds),
        retry_base=settings.retry_base_seconds,
        clock=clock,
    )
    try:
        yield Runtime(settings, engine, sessionmaker, box, federation, dispatcher, worker)
    finally:
        await http.aclose()
        await engine.dispose()
