"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured) and the app.

PostgreSQL tests run when ``ARCHIPEL_TEST_POSTGRES_URL`` points at a server where we may
create databases (CI: postgresql://postgres@127.0.0.1:5432/postgres). One throwaway
database is created per test run, migrated once, and emptied between tests (over a
connection kept for the run: ``postgres_emptier``).
"""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from starlette.applications import Starlette

from node.activitypub import actors as actors_module
from node.config import Settings
from node.members import passwords
from node.migrate import upgrade
from tests.harness.chambers import lille_settings
from tests.harness.databases import migrated_postgres
from tests.harness.keys import KeyPool

pytest_plugins = ["tests.harness.plugin"]


#: The keys of the actors that tests make (``tests.harness.keys``); module-scoped chambers
#: take theirs from pools of their own, so that no two actors alive at once share keys.
TEST_KEYS = KeyPool()


@pytest.fixture(autouse=True)
def pooled_actor_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """New actors in this test get the pool's keys in order."""
    monkeypatch.setattr(actors_module, "generate_actor_keys", TEST_KEYS.hand_out())


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its production cost takes a fifth of a second per hash: tests use the
    cheapest parameters (hashes still verify as usual; real processes keep the real cost)."""
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """URL of a migrated throwaway PostgreSQL database for this test run."""
    with migrated_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (faster than migrating each time)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: every test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "archipel.db"
        shutil.copyfile(template, path)
        return f"sqlite+aiosqlite:///{path}"
    url: str = request.getfixturevalue("postgres_database")
    request.getfixturevalue("postgres_emptier").empty(url)
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return lille_settings(tmp_path, database_url)


@pytest.fixture
async def app(
    settings: Settings, federation_transport: httpx.AsyncBaseTransport | None
) -> AsyncIterator[Starlette]:
    """The app, its worker running; its federation sends through ``federation_transport``."""
    from node.chamber import ensure_chamber_actor
    from node.db import session_scope
    from node.web.app import create_app

    application = create_app(settings, transport=federation_transport)
    async with application.router.lifespan_context(application):
        node = application.state.node
        async with session_scope(node.sessionmaker) as session:
            await ensure_chamber_actor(session, settings, node.box)
        yield application


@pytest.fixture
async def client(app: Starlette, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=settings.url) as http:
        yield http
