"""First contact race on ``POST /api/v1/exchanges`` (issue 16): several Lille members declare
at once to Gand members Lille has never fetched; each declaration fetches and stores the
remote member's actor, all at the same moment. Storing must be an upsert, or all but one lose
with a duplicate key (``uq_remote_actors_uri``, a 500 on PostgreSQL)."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from node.activitypub.models import RemoteActor
from node.config import Settings
from node.db import read_only
from tests.clearing._chambers import bearer, two_chambers
from tests.harness.plugin import OpenArchipelago


async def test_members_declaring_at_once_to_uncached_remote_members_all_succeed(
    settings: Settings, archipelago: OpenArchipelago
) -> None:
    async with two_chambers(archipelago, settings) as (lille, gand):
        remote = [f"bob{n}" for n in range(3)]
        bobs = [await gand.member(name) for name in remote]
        # Two declarers per remote member: each remote actor is first fetched twice at once.
        tokens = [await lille.member(f"alice{n}") for n in range(6)]
        remote_uris = [f"https://gand.test/actors/{name}" for name in remote]
        async with read_only(lille.node.sessionmaker) as session:
            cached = (
                await session.execute(select(func.count()).where(RemoteActor.uri.in_(remote_uris)))
            ).scalar_one()
        assert cached == 0

        answers = await asyncio.gather(
            *(
                lille.client.post(
                    "/api/v1/exchanges",
                    json={
                        "beneficiary": f"@{remote[n % 3]}@gand.test",
                        "minutes": 30 + n,
                        "description": f"Atelier {n}",
                    },
                    headers=bearer(token),
                )
                for n, token in enumerate(tokens)
            )
        )
        assert [a.status_code for a in answers] == [201] * 6, [a.text for a in answers]
        async with read_only(lille.node.sessionmaker) as session:
            rows = (
                await session.execute(
                    select(RemoteActor.uri).where(RemoteActor.uri.in_(remote_uris))
                )
            ).scalars()
            assert sorted(rows) == remote_uris

        await lille.deliver()
        for token in bobs:  # each Gand member got the two declarations made to them
            listed = await gand.client.get("/api/v1/exchanges", headers=bearer(token))
            assert len(listed.json()["items"]) == 2, listed.text
