"""Fixtures of the clearing house tests: a running app, members with clearing access, tokens."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from starlette.applications import Starlette

from node.clearing.service import ClearingHouse
from node.db import session_scope
from node.members.models import ClearingOverride, Member, MemberStatus
from node.members.service import create_member, create_token
from tests.clearing._two_chambers import (  # noqa: F401 (fixtures: Lille and Gand in-process)
    gand_database_url,
    second_postgres_database,
    settled,
)

MakeMember = Callable[..., Awaitable[tuple[Member, str]]]


@pytest.fixture
def house(app: Starlette) -> ClearingHouse:
    node = app.state.node
    return ClearingHouse(node.federation, node.settings)


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
