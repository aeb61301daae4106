"""Fixtures of the clearing house tests: a running app, members with clearing access, tokens,
and an exchange settled between two in-process chambers (made once a module: ``settled``)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack

import pytest
import pytest_asyncio
from starlette.applications import Starlette

from node.activitypub import actors as actors_module
from node.clearing.exchanges.house import ClearingHouse
from node.db import session_scope
from node.members.models import ClearingOverride, Member, MemberStatus
from node.members.service import create_member, create_token
from tests.clearing._chambers import (
    IN_MODULE_LOOP,
    ClearingChamber,
    Settled,
    partner_both_ways,
    settle_between,
)
from tests.harness.chambers import lille_settings, open_archipelago
from tests.harness.keys import KeyPool
from tests.harness.plugin import chamber_settings, module_databases

MakeMember = Callable[..., Awaitable[tuple[Member, str]]]


@pytest.fixture
def house(app: Starlette) -> ClearingHouse:
    house: ClearingHouse = app.state.node.services.clearing
    return house


@pytest.fixture
def make_member(app: Starlette) -> MakeMember:
    """An approved member (with clearing access unless ``access=False``) and a bearer token."""
    node = app.state.node

    async def make(username: str, *, access: bool = True) -> tuple[Member, str]:
        async with session_scope(node.sessionmaker) as session:
            member = await create_member(
                session,
                node.box,
                username=username,
                chamber_username=node.settings.chamber_username,
                status=MemberStatus.APPROVED,
            )
            if access:
                member.clearing_override = ClearingOverride.GRANTED
                member.clearing_override_reason = "test"
            token = await create_token(session, member)
        return member, token

    return make


#: The keys of the chambers that ``settled_once`` makes (apart from the tests' own).
SHARED_KEYS = KeyPool()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def settled_databases(request: pytest.FixtureRequest) -> list[str]:
    """Lille's and Gand's databases for ``settled_once`` (made before its loop runs)."""
    return module_databases(request, request.param, 2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def settled_once(
    settled_databases: list[str], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Settled]:
    """Alice (Lille) did 2 h for Bob (Gand); Bob accepted; both chambers settled it. Made once
    a module on each kind of database, on databases of its own (setting it up costs a
    quarter of a second of CPU, and the tests that use it only read)."""
    directory = tmp_path_factory.mktemp("settled")
    lille_database, gand_database = settled_databases
    chambers = [
        lille_settings(directory, lille_database),
        chamber_settings(directory, "gand", gand_database),
    ]
    async with AsyncExitStack() as stack:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(actors_module, "generate_actor_keys", SHARED_KEYS.hand_out())
            world = await stack.enter_async_context(
                open_archipelago(chambers, kind=ClearingChamber)
            )
            lille, gand = world["lille"], world["gand"]
            assert isinstance(lille, ClearingChamber) and isinstance(gand, ClearingChamber)
            await partner_both_ways(lille, gand)
            settled = await settle_between(lille, gand)
        yield settled


@pytest.fixture
def settled(request: pytest.FixtureRequest, settled_once: Settled) -> Settled:
    """``settled_once``, with documents of the test's own to alter. The chambers are the
    module's: a test that uses them runs in the module's event loop (``IN_MODULE_LOOP``)
    and leaves them as they were."""
    marker = request.node.get_closest_marker("asyncio")
    assert marker == IN_MODULE_LOOP.mark, f"{request.node.name} needs @IN_MODULE_LOOP"
    return dataclasses.replace(
        settled_once,
        at_lille=copy.deepcopy(settled_once.at_lille),
        at_gand=copy.deepcopy(settled_once.at_gand),
        actors=copy.deepcopy(settled_once.actors),
    )
