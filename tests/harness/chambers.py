"""Chambers in one process: each an app on its own database, without background worker, its
federation sending through a ``HostRouter`` to the others' apps. Nothing is delivered until the
test steps the jobs (``Chamber.deliver``, ``Archipelago.settle``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.federation import Federation
from node.activitypub.models import LocalActor
from node.config import Settings, new_settings
from node.db import read_only, session_scope, utcnow
from node.jobs import Worker
from node.members.models import ClearingOverride, MemberRole, MemberStatus
from node.members.service import create_member, create_token
from tests.harness.network import HostRouter

__all__ = ["Archipelago", "Chamber", "lille_settings", "open_archipelago", "quiet_app"]


def lille_settings(tmp_path: Path, database_url: str) -> Settings:
    """The chamber most tests run: Lille, at https://lille.test (the ``settings`` fixture)."""
    return new_settings(
        tmp_path / "data",
        url="https://lille.test",
        name="Chambre des communs de Lille",
        description="Les communs de Lille.\n\nUne chambre d'essai.",
        chamber_username="lille",
        database_url=database_url,
    )


@asynccontextmanager
async def quiet_app(
    settings: Settings,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> AsyncIterator[Starlette]:
    """The app with its chamber actor, but no background worker: tests step jobs themselves."""
    from node.chamber import ensure_chamber_actor
    from node.web.app import create_app

    application = create_app(settings, run_worker=False, transport=transport, clock=clock)
    async with application.router.lifespan_context(application):
        node = application.state.node
        async with session_scope(node.sessionmaker) as session:
            await ensure_chamber_actor(session, settings, node.box)
        yield application


@dataclass
class Chamber:
    """One in-process chamber: its app, a client of its own API, the network it sends on."""

    name: str
    app: Starlette
    settings: Settings
    client: httpx.AsyncClient
    network: HostRouter

    @property
    def node(self) -> Any:
        return self.app.state.node

    @property
    def federation(self) -> Federation:
        federation: Federation = self.node.federation
        return federation

    @property
    def worker(self) -> Worker:
        worker: Worker = self.node.worker
        return worker

    @property
    def uri(self) -> str:
        """The chamber actor's URI."""
        return f"{self.settings.url}/actors/{self.settings.chamber_username}"

    actor_uri = uri

    async def member(
        self, username: str, *, role: str = MemberRole.MEMBER, password: str | None = None
    ) -> str:
        """An approved member with clearing access; returns a bearer token."""
        async with session_scope(self.node.sessionmaker) as session:
            member = await create_member(
                session,
                self.node.box,
                username=username,
                chamber_username=self.settings.chamber_username,
                password=password,
                status=MemberStatus.APPROVED,
                role=role,
            )
            member.clearing_override = ClearingOverride.GRANTED
            member.clearing_override_reason = "test"
            return await create_token(session, member)

    async def deliver(self) -> int:
        """Run every job due now (deliveries first of all)."""
        ran: int = await self.worker.run_until_idle()
        return ran

    async def local_actor(self, username: str) -> LocalActor:
        async with read_only(self.node.sessionmaker) as session:
            return (
                await session.execute(select(LocalActor).where(LocalActor.username == username))
            ).scalar_one()

    async def sign_as(self, username: str, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` (its proof removed) signed again by this chamber's actor ``username``."""
        unsigned = {k: v for k, v in document.items() if k != "proof"}
        return dict(self.federation.sign_object(await self.local_actor(username), unsigned))


@dataclass
class Archipelago:
    """Chambers by name, the network between them and, if the test gave one, their clock."""

    chambers: dict[str, Chamber]
    network: HostRouter
    clock: Any = None

    def __getitem__(self, name: str) -> Chamber:
        return self.chambers[name]

    async def settle(self, max_passes: int = 100) -> None:
        """Run every chamber's due jobs, a batch each in turn, until none is left."""
        for _ in range(max_passes):
            ran = 0
            for chamber in self.chambers.values():
                ran += await chamber.worker.run_once()
            if ran == 0:
                return
        raise AssertionError("the jobs never settle")


@asynccontextmanager
async def open_archipelago(
    settings: list[Settings],
    *,
    clock: Callable[[], datetime] | None = None,
    kind: type[Chamber] = Chamber,
) -> AsyncIterator[Archipelago]:
    """One in-process chamber per ``settings`` (named by its chamber username), each sending
    through one ``HostRouter`` that knows all of them; ``kind`` is the ``Chamber`` subclass
    that a domain's tests give their helpers on."""
    network = HostRouter()
    world = Archipelago({}, network, clock)
    async with AsyncExitStack() as stack:
        for chamber_settings in settings:
            app = await stack.enter_async_context(
                quiet_app(chamber_settings, transport=network, clock=clock or utcnow)
            )
            network.add(chamber_settings.host, app)
            client = await stack.enter_async_context(
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url=chamber_settings.url
                )
            )
            name = chamber_settings.chamber_username
            world.chambers[name] = kind(name, app, chamber_settings, client, network)
        yield world
