"""What the navigation of a page needs to know about the signed-in member (whether to show
the Administration link), looked up once per page request."""

from __future__ import annotations

from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from node.db import read_only
from node.members.models import Member, MemberRole, MemberStatus

__all__ = ["NavigationMiddleware"]

#: Machine routes and files: no page, no look-up.
_SKIPPED = ("/static/", "/api/", "/files/", "/inbox", "/actors/", "/.well-known/", "/metrics")


class NavigationMiddleware:
    """Sets ``request.state.nav_admin`` for GET pages of a signed-in member."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            state = scope.setdefault("state", {})
            state["nav_admin"] = False
            member_id = scope.get("session", {}).get("member_id")
            path = scope.get("path", "")
            if isinstance(member_id, int) and not path.startswith(_SKIPPED):
                node = scope["app"].state.node
                async with read_only(node.sessionmaker) as session:
                    role = (
                        await session.execute(
                            select(Member.role).where(
                                Member.id == member_id, Member.status == MemberStatus.APPROVED
                            )
                        )
                    ).scalar_one_or_none()
                state["nav_admin"] = role == MemberRole.ADMIN
        await self.app(scope, receive, send)
