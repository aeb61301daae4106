"""Two chambers in one process: Lille and Gand, each with its own app and database, talking
over an httpx transport that routes each host to its app (no socket). Nothing is delivered
until the test steps a chamber's jobs (`Chamber.deliver`).

``tests/clearing/conftest.py`` makes its fixtures available (``settled``, ``gand_database_url``):
Gand's database is a copy of the SQLite template, or a second PostgreSQL database, as Lille's
``database_url`` is.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url
from starlette.applications import Starlette

from node.activitypub.models import LocalActor
from node.clearing.partners import add_partner
from node.config import Settings, new_settings
from node.db import read_only, session_scope
from node.members.models import ClearingOverride, MemberRole, MemberStatus
from node.members.service import create_member, create_token
from node.migrate import upgrade
from tests.activitypub._remote import quiet_app
from tests.conftest import _admin_execute, _empty_postgres, postgres_admin_url

AS2 = {"Accept": "application/activity+json"}


@pytest.fixture(scope="session")
def second_postgres_database() -> Iterator[str]:
    admin_url = postgres_admin_url()
    if admin_url is None:
        pytest.skip("ARCHIPEL_TEST_POSTGRES_URL is not set")
    name = f"archipel_test_{os.getpid()}_{uuid.uuid4().hex[:8]}_gand"
    asyncio.run(_admin_execute(admin_url, f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        asyncio.run(_admin_execute(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def gand_database_url(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """Gand's database, on the same engine as Lille's (``database_url``)."""
    if database_url.startswith("sqlite"):
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "gand.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("second_postgres_database")
    asyncio.run(_empty_postgres(url))
    return url


class HostRouter(httpx.AsyncBaseTransport):
    """Each request goes to the app of its host; an unknown host cannot be reached."""

    def __init__(self, apps: dict[str, Starlette]) -> None:
        self.transports = {host: httpx.ASGITransport(app=app) for host, app in apps.items()}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.transports.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no chamber at {request.url.host}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class Chamber:
    app: Starlette
    settings: Settings
    client: httpx.AsyncClient
    router: HostRouter

    @property
    def node(self) -> Any:
        return self.app.state.node

    @property
    def actor_uri(self) -> str:
        return f"{self.settings.url}/actors/{self.settings.chamber_username}"

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
        return await self.node.worker.run_until_idle()

    async def local_actor(self, username: str) -> LocalActor:
        async with read_only(self.node.sessionmaker) as session:
            return (
                await session.execute(select(LocalActor).where(LocalActor.username == username))
            ).scalar_one()

    async def sign_as(self, username: str, document: dict[str, Any]) -> dict[str, Any]:
        """``document`` (its proof removed) signed again by this chamber's actor ``username``."""
        unsigned = {k: v for k, v in document.items() if k != "proof"}
        return dict(self.node.federation.sign_object(await self.local_actor(username), unsigned))


def chamber_settings(tmp_path: Path, name: str, database_url: str) -> Settings:
    return new_settings(
        tmp_path / name,
        url=f"https://{name}.test",
        name=f"Chambre de {name.title()}",
        description="",
        chamber_username=name,
        database_url=database_url,
    )


@asynccontextmanager
async def two_chambers(
    lille_settings: Settings,
    gand_settings: Settings,
    *,
    credit_line: int = 600,
    partners: bool = True,
) -> AsyncIterator[tuple[Chamber, Chamber]]:
    """Lille and Gand, partners of each other with ``credit_line`` minutes both ways (none
    yet without ``partners``)."""
    async with AsyncExitStack() as stack:
        apps = {
            "lille.test": await stack.enter_async_context(quiet_app(lille_settings)),
            "gand.test": await stack.enter_async_context(quiet_app(gand_settings)),
        }
        router = HostRouter(apps)
        chambers = []
        for settings in (lille_settings, gand_settings):
            app = apps[settings.host]
            federation = app.state.node.federation
            original = federation.http
            federation.http = httpx.AsyncClient(transport=router)
            stack.push_async_callback(original.aclose)
            stack.push_async_callback(federation.http.aclose)
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.url)
            )
            chambers.append(Chamber(app, settings, client, router))
        lille, gand = chambers
        if partners:
            await partner_both_ways(lille, gand, credit_line)
        yield lille, gand


async def partner_both_ways(lille: Chamber, gand: Chamber, credit_line: int = 600) -> None:
    """Each adds the other; the partnership offers and answers are delivered: confirmed."""
    for here, there in ((lille, gand), (gand, lille)):
        await add_partner(here.node.federation, there.actor_uri, credit_line, by=None)
    for chamber in (lille, gand, lille):
        await chamber.deliver()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def settled_exchange(lille: Chamber, gand: Chamber, *, minutes: int = 120) -> tuple[str, str]:
    """Alice (Lille) declares ``minutes`` for Bob (Gand); Bob accepts; the chambers settle it
    (Lille decides: commit, or abort when a limit refuses). Returns the exchange's key on
    Lille and on Gand."""
    alice = await lille.member("alice")
    bob = await gand.member("bob")
    declared = await lille.client.post(
        "/api/v1/exchanges",
        json={"beneficiary": "@bob@gand.test", "minutes": minutes, "description": "Un atelier"},
        headers=bearer(alice),
    )
    assert declared.status_code == 201, declared.text
    await lille.deliver()
    [copy] = (await gand.client.get("/api/v1/exchanges", headers=bearer(bob))).json()["items"]
    accepted = await gand.client.post(
        f"/api/v1/exchanges/{copy['key']}/accept", headers=bearer(bob)
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["state"] == "settling"
    await gand.deliver()  # the Offer of the settlement: Lille decides
    await lille.deliver()  # Lille's Accept: Gand posts its holds
    return declared.json()["key"], copy["key"]


async def exchange_document(chamber: Chamber, key: str) -> dict[str, Any]:
    response = await chamber.client.get(f"/exchanges/{key}", headers=AS2)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


async def actor_documents(chamber: Chamber, uris: set[str]) -> list[dict[str, Any]]:
    """The public actor documents, fetched over the chambers' transport."""
    async with httpx.AsyncClient(transport=chamber.router) as http:
        return [(await http.get(uri, headers=AS2)).json() for uri in sorted(uris)]


@dataclass
class Settled:
    """A cross-chamber exchange as both chambers serve it, and the actors who signed it."""

    lille: Chamber
    gand: Chamber
    at_lille: dict[str, Any]
    at_gand: dict[str, Any]
    keys: tuple[str, str]
    actors: list[dict[str, Any]]


async def settle_between(lille: Chamber, gand: Chamber, *, minutes: int = 120) -> Settled:
    keys = await settled_exchange(lille, gand, minutes=minutes)
    at_lille = await exchange_document(lille, keys[0])
    at_gand = await exchange_document(gand, keys[1])
    signers = {a["actor"] for a in at_lille["history"] + at_gand["history"]}
    return Settled(lille, gand, at_lille, at_gand, keys, await actor_documents(lille, signers))


@pytest.fixture
async def settled(
    settings: Settings, gand_database_url: str, tmp_path: Path
) -> AsyncIterator[Settled]:
    """Alice (Lille) did 2 h for Bob (Gand); Bob accepted; both chambers settled it."""
    gand_settings = chamber_settings(tmp_path, "gand", gand_database_url)
    async with two_chambers(settings, gand_settings) as (lille, gand):
        yield await settle_between(lille, gand)
