"""What the protocol tests share: a remote actor (Bob) behind an injected transport, and an
app that reaches the network only through it. A module overrides ``remote`` to know others."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette

from node.config import Settings
from tests.activitypub._remote import BOB, FakeRemote, actor_document
from tests.harness.chambers import quiet_app


@pytest.fixture
def remote() -> FakeRemote:
    fake = FakeRemote()
    fake.add(actor_document(BOB))
    return fake


@pytest.fixture
async def app(settings: Settings, remote: FakeRemote) -> AsyncIterator[Starlette]:
    async with quiet_app(settings, transport=remote.transport()) as application:
        yield application
