"""What every request handler can reach: built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2 import Environment
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from node.activitypub.federation import Federation
from node.activitypub.inbox import InboxDispatcher
from node.config import Settings
from node.jobs import Worker
from node.members.contributions import ContributionStats
from node.runtime import Services
from node.secretbox import SecretBox

__all__ = ["NodeContext", "node_context"]


@dataclass
class NodeContext:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    box: SecretBox
    federation: Federation
    dispatcher: InboxDispatcher
    worker: Worker
    templates: Environment
    #: The application services, built once by the runtime (``node.runtime.Services``).
    services: Services
    #: What bricks and the clearing house report about members (registered at app build).
    contributions: ContributionStats = field(default_factory=ContributionStats)


def node_context(request: Request) -> NodeContext:
    context: NodeContext = request.app.state.node
    return context
