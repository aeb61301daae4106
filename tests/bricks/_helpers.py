"""Members, tokens and signed-in clients for the commons bank's tests."""

from __future__ import annotations

import re
from typing import Any

import httpx
from starlette.applications import Starlette

from node.db import session_scope
from node.members.models import MemberStatus
from node.members.service import create_member, create_token

PASSWORD = "correct horse battery"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')

BRICK: dict[str, Any] = {
    "title": "Le jardin partagé",
    "category": "methode",
    "summary": "Comment ouvrir un jardin partagé\nen trois saisons.",
    "body": "# Étapes\n\n1. Trouver un terrain\n2. Réunir les voisins\n\n**Important** : charte.",
    "tags": ["jardin", "Quartier"],
    "links": ["https://example.org/jardins"],
}


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no csrf_token field in the page"
    return found.group(1)


async def add_member(app: Starlette, username: str, *, display_name: str = "") -> str:
    """An approved member; returns a bearer token."""
    node = app.state.node
    async with session_scope(node.sessionmaker) as session:
        member = await create_member(
            session,
            node.box,
            username=username,
            chamber_username=node.settings.chamber_username,
            password=PASSWORD,
            display_name=display_name,
            status=MemberStatus.APPROVED,
        )
        return await create_token(session, member)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def sign_in(client: httpx.AsyncClient, username: str) -> None:
    page = await client.get("/login")
    response = await client.post(
        "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": csrf_of(page.text)},
    )
    assert response.status_code in (200, 303), response.text
