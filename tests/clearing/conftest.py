"""Fixtures of the clearing house tests: a running app, members with clearing access, tokens,
and an exchange settled between two in-process chambers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from starlette.applications import Starlette

from node.clearing.exchanges.house import ClearingHouse
from node.config import Settings
from node.db import session_scope
from node.members.models import ClearingOverride, Member, MemberStatus
from node.members.service import create_member, create_token
from tests.clearing._chambers import Settled, settle_between, two_chambers
from tests.harness.plugin import OpenArchipelago

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


@pytest.fixture
async def settled(settings: Settings, archipelago: OpenArchipelago) -> AsyncIterator[Settled]:
    """Alice (Lille) did 2 h for Bob (Gand); Bob accepted; both chambers settled it."""
    async with two_chambers(archipelago, settings) as (lille, gand):
        yield await settle_between(lille, gand)
