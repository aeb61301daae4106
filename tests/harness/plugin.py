"""The harness's fixtures (``pytest_plugins`` in ``tests/conftest.py``).

- ``federation_transport``: what the ``app`` fixture's federation sends through (None: the
  guarded network). A module overrides it, e.g. with a ``FakeRemote``'s transport.
- ``second_database_url``: a second migrated, empty database on the same engine as
  ``database_url`` (a copy of the SQLite template, or a second PostgreSQL database).
- ``clock``: a ``Clock`` standing at the current second until the test moves it.
- ``archipelago``: opens N in-process chambers (``tests.harness.chambers``); the first on
  ``database_url``, the second on ``second_database_url``, any other on a SQLite copy.
- ``shared_compiled_cache`` (automatic): every engine of the test run shares one compiled
  statement cache (``tests.harness.engines``).
- ``postgres_template`` (migrated once, copied for the other databases), ``postgres_emptier``
  (empties them between tests) and ``postgres_shelf`` (databases for ``module_databases``:
  chambers that the tests of a module share).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Mapper

import node.db
from node.config import Settings, new_settings
from node.db import utcnow
from tests.harness.chambers import Archipelago, Chamber, open_archipelago
from tests.harness.clock import Clock
from tests.harness.databases import PostgresEmptier, copied_postgres, migrated_postgres
from tests.harness.engines import SharedCompiledCache

__all__ = ["OpenArchipelago", "PostgresShelf", "chamber_settings", "module_databases"]

OpenArchipelago = Callable[..., AbstractAsyncContextManager[Archipelago]]


#: Distinct statements of the whole run, of both kinds of database, fit (about 2,000).
COMPILED_CACHE_SIZE = 20_000


@pytest.fixture(scope="session", autouse=True)
def shared_compiled_cache() -> Iterator[SharedCompiledCache]:
    """Every engine ``node.db.make_engine`` makes in this run compiles into one cache, and so
    do the ORM's flushes (their INSERTs and UPDATEs go to a cache of the mapper, itself keyed
    by each engine's dialect)."""
    cache = SharedCompiledCache(COMPILED_CACHE_SIZE)
    create_async_engine = node.db.create_async_engine

    def create(url: str, **kwargs: Any) -> AsyncEngine:
        options = {"compiled_cache": cache, **kwargs.pop("execution_options", {})}
        return create_async_engine(url, execution_options=options, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(node.db, "create_async_engine", create)
        patch.setattr(Mapper, "_compiled_cache", cache)
        yield cache


@pytest.fixture
def federation_transport() -> httpx.AsyncBaseTransport | None:
    return None


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated PostgreSQL database that others are copied from (nothing connects to it)."""
    with migrated_postgres("archipel_test_template") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_emptier() -> Iterator[PostgresEmptier]:
    emptier = PostgresEmptier()
    yield emptier
    emptier.close()


@pytest.fixture(scope="session")
def second_postgres_database(
    postgres_template: str, postgres_emptier: PostgresEmptier
) -> Iterator[str]:
    with copied_postgres(postgres_template, "archipel_test_second") as url:
        yield url
        postgres_emptier.forget(url)


def sqlite_copy(template: Path, path: Path) -> str:
    shutil.copyfile(template, path)
    return f"sqlite+aiosqlite:///{path}"


class PostgresShelf:
    """Copies of ``postgres_template`` for chambers that the tests of a module share, made
    as needed and kept for the run: each module takes them emptied (dropping a database
    forces a checkpoint of the whole server, up to seconds)."""

    def __init__(self, template: str, emptier: PostgresEmptier, stack: ExitStack) -> None:
        self._template, self._emptier, self._stack = template, emptier, stack
        self._databases: list[str] = []

    def take(self, count: int) -> list[str]:
        while len(self._databases) < count:
            url = self._stack.enter_context(copied_postgres(self._template, "archipel_test_shared"))
            self._stack.callback(self._emptier.forget, url)  # closed before the drop
            self._databases.append(url)
        for url in self._databases[:count]:
            self._emptier.empty(url)
        return self._databases[:count]


@pytest.fixture(scope="session")
def postgres_shelf(
    postgres_template: str, postgres_emptier: PostgresEmptier
) -> Iterator[PostgresShelf]:
    with ExitStack() as stack:
        yield PostgresShelf(postgres_template, postgres_emptier, stack)


def module_databases(request: pytest.FixtureRequest, kind: str, count: int) -> list[str]:
    """``count`` migrated, empty databases of ``kind`` ("sqlite" or "postgresql") for
    chambers that the tests of a module share, from a module-scoped synchronous fixture (no
    test's ``database_url`` is among them): copies of the run's SQLite template, or
    PostgreSQL databases of the run's ``PostgresShelf``."""
    if kind == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        factory: pytest.TempPathFactory = request.getfixturevalue("tmp_path_factory")
        directory = factory.mktemp("module-databases")
        return [sqlite_copy(template, directory / f"{index}.db") for index in range(count)]
    shelf: PostgresShelf = request.getfixturevalue("postgres_shelf")
    return shelf.take(count)


@pytest.fixture
def second_database_url(database_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second database, on the same engine as ``database_url`` (another chamber's)."""
    if database_url.startswith("sqlite"):
        return sqlite_copy(request.getfixturevalue("sqlite_template"), tmp_path / "second.db")
    url: str = request.getfixturevalue("second_postgres_database")
    request.getfixturevalue("postgres_emptier").empty(url)
    return url


@pytest.fixture
def clock() -> Clock:
    return Clock(utcnow().replace(microsecond=0))


def chamber_settings(tmp_path: Path, name: str, database_url: str, **changes: str) -> Settings:
    """A chamber ``name`` at https://NAME.test, its chamber actor called ``name``."""
    options = {"name": f"Chambre de {name.title()}", "description": "", **changes}
    return new_settings(
        tmp_path / name,
        url=f"https://{name}.test",
        chamber_username=name,
        database_url=database_url,
        **options,
    )


@pytest.fixture
def archipelago(
    tmp_path: Path, database_url: str, second_database_url: str, sqlite_template: Path
) -> OpenArchipelago:
    """``async with archipelago("lille", "gand", ...) as world``: in-process chambers wired to
    one another. A name may be replaced by ready ``Settings`` (e.g. the ``settings`` fixture,
    which is on ``database_url``); ``clock=`` gives them all one clock; ``kind=`` is the
    ``Chamber`` subclass to build. (The databases are made before the test's event loop runs.)"""

    def database(index: int) -> str:
        if index < 2:
            return (database_url, second_database_url)[index]
        return sqlite_copy(sqlite_template, tmp_path / f"chamber-{index}.db")

    def open_(
        *chambers: str | Settings,
        clock: Callable[[], datetime] | None = None,
        kind: type[Chamber] = Chamber,
    ) -> AbstractAsyncContextManager[Archipelago]:
        settings = [
            chamber
            if isinstance(chamber, Settings)
            else chamber_settings(tmp_path, chamber, database(index))
            for index, chamber in enumerate(chambers)
        ]
        return open_archipelago(settings, clock=clock, kind=kind)

    return open_
