"""Everything a running node holds, built from the settings in one place: the composition root.

The web app's lifespan and the CLI commands that talk to the network (``worker``,
``follow``) both open a ``Runtime``; nothing here happens at import time. Each service is
built once here (``Services``) and handed to the inbox handlers, the routes (through
``NodeContext``) and the commands: nothing else builds a ``ClearingHouse`` or a
``RoundService``.
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
from node.activitypub.inbox import ANY, InboxContext, InboxDispatcher
from node.activitypub.jsonld import install_offline_loader
from node.activitypub.notes import register_timeline_handlers
from node.activitypub.outbox import DELIVER, deliver_job
from node.activitypub.transport import make_async_client
from node.bricks.inbox import on_delete as delete_brick_object
from node.bricks.inbox import register_brick_handlers, rename_remote_author
from node.bricks.operations import BrickService
from node.clearing.exchanges.house import ClearingHouse
from node.clearing.exchanges.inbox import register_clearing_handlers
from node.clearing.exchanges.jobs import clearing_job_handlers
from node.clearing.reconciliation.service import (
    Reconciler,
    reconciliation_job_handlers,
    register_reconciliation_handlers,
)
from node.clearing.rounds.service import RoundService, register_round_handlers, round_job_handlers
from node.clearing.settlement import prepare as prepare_settlement
from node.clearing.settlement import register_settlement_handlers, settlement_job_handlers
from node.config import Settings
from node.db import make_engine, make_sessionmaker, utcnow
from node.jobs import Handler, Worker
from node.mail import MAIL_JOB, mail_job
from node.members.notifications import (
    NOTIFICATION_MAIL_JOB,
    follow_notifier,
    notification_mail_job,
)
from node.offers import forget_deleted_offer, register_offer_handlers
from node.secretbox import SecretBox

__all__ = ["Runtime", "Services", "open_runtime", "register_deletion_handler", "user_agent"]


def user_agent(settings: Settings) -> str:
    return f"Archipel/{__version__} (+{settings.url}/)"


@dataclass(frozen=True)
class Services:
    """The application services, each built once per running node."""

    clearing: ClearingHouse
    rounds: RoundService
    reconciler: Reconciler
    bricks: BrickService

    @classmethod
    def build(cls, federation: Federation, settings: Settings, worker: Worker) -> Services:
        clearing = ClearingHouse(federation, settings, settle=prepare_settlement)
        return cls(
            bricks=BrickService(
                federation,
                federation.sessionmaker,
                settings.files_dir,
                settings.url,
                wake=worker.wakeup.set,
            ),
            clearing=clearing,
            rounds=RoundService.from_settings(federation, settings),
            reconciler=Reconciler.from_settings(federation, settings),
        )


async def _forget_deleted_object(ctx: InboxContext) -> None:
    """A remote ``Delete``: its id alone does not say which domain holds the object, so each
    forgets what it holds under it (only the owner's Delete changes anything)."""
    await delete_brick_object(ctx)
    await forget_deleted_offer(ctx)


def register_deletion_handler(dispatcher: InboxDispatcher) -> None:
    """``("Delete", ANY)``: every domain that keeps remote objects forgets the deleted one."""
    dispatcher.register("Delete", ANY, _forget_deleted_object)


def inbox_dispatcher(services: Services) -> InboxDispatcher:
    """Every domain registers the (activity type, object type) pairs it owns."""
    dispatcher = InboxDispatcher()
    register_follow_handlers(
        dispatcher, on_followed=follow_notifier(), on_actor_updated=rename_remote_author
    )
    register_timeline_handlers(dispatcher)
    register_brick_handlers(dispatcher)
    register_offer_handlers(dispatcher)
    register_deletion_handler(dispatcher)
    register_clearing_handlers(dispatcher, services.clearing)
    register_settlement_handlers(dispatcher, services.clearing)
    register_round_handlers(dispatcher, services.rounds)
    register_reconciliation_handlers(dispatcher, services.reconciler)
    return dispatcher


@dataclass
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    federation: Federation
    dispatcher: InboxDispatcher
    worker: Worker
    services: Services


def job_handlers(
    federation: Federation, settings: Settings, services: Services
) -> dict[str, Handler]:
    """Every job kind's handler, each with the node's one service that does the work."""
    return {
        DELIVER: deliver_job(federation, retry_base=settings.retry_base_seconds),
        **clearing_job_handlers(services.clearing),
        **settlement_job_handlers(services.clearing),
        **round_job_handlers(services.rounds),
        **reconciliation_job_handlers(services.reconciler),
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
    worker = Worker(
        sessionmaker,
        {},
        lease=timedelta(seconds=settings.job_lease_seconds),
        retry_base=settings.retry_base_seconds,
        clock=clock,
    )
    services = Services.build(federation, settings, worker)
    worker.handlers.update(job_handlers(federation, settings, services))
    dispatcher = inbox_dispatcher(services)
    try:
        yield Runtime(settings, engine, sessionmaker, box, federation, dispatcher, worker, services)
    finally:
        await http.aclose()
        await engine.dispose()
