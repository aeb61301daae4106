"""Helpers for page and API tests of accounts: members in the database, signed-in clients."""

from __future__ import annotations

import re

import httpx
from starlette.applications import Starlette

from node.db import session_scope
from node.members import governance
from node.members.models import MemberRole, MemberStatus
from node.members.service import create_member, create_token

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


async def add_member(
    app: Starlette,
    username: str,
    *,
    role: str = MemberRole.MEMBER,
    status: str = MemberStatus.APPROVED,
    token: bool = False,
) -> str | None:
    """A member in ``status``: a refused or suspended one is created, then moved there by the
    operator (as the members' graph allows)."""
    node = app.state.node
    first = {
        MemberStatus.REFUSED: MemberStatus.PENDING,
        MemberStatus.SUSPENDED: MemberStatus.APPROVED,
    }
    async with session_scope(node.sessionmaker) as session:
        member = await create_member(
            session,
            node.box,
            username=username,
            chamber_username=node.settings.chamber_username,
            password=PASSWORD,
            status=first.get(status, status),
            role=role,
        )
        if status == MemberStatus.REFUSED:
            await governance.refuse_member(session, None, member, "refused in a test")
        elif status == MemberStatus.SUSPENDED:
            await governance.suspend_member(session, None, member, "suspended in a test")
        return await create_token(session, member) if token else None


async def sign_in(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    page = await client.get("/login")
    return await client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
    )
