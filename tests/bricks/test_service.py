"""What a publication stores and sends; versions; contribution stats for the clearing gate."""

from __future__ import annotations

import httpx
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.models import StoredActivity
from node.bricks import contribution_stats
from node.bricks.models import BrickVersion
from node.db import read_only
from node.members.models import Member
from tests.bricks._helpers import BRICK, add_member, bearer


async def test_publication_federates_and_versions(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    marie = await add_member(app, "marie")
    await add_member(app, "jeanne")
    paul = await add_member(app, "paul")
    created = await client.post(
        "/api/v1/bricks", json={**BRICK, "authors": ["jeanne"]}, headers=bearer(marie)
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    edited = await client.patch(
        f"/api/v1/bricks/{key}", json={"body": "Autre", "tags": ["x"]}, headers=bearer(marie)
    )
    assert edited.status_code == 200
    same = await client.patch(
        f"/api/v1/bricks/{key}", json={"body": "Autre"}, headers=bearer(marie)
    )
    assert same.json()["version"] == 2  # nothing changed, no new version
    await client.post(f"/api/v1/bricks/{key}/reviews", json={"rating": 3}, headers=bearer(paul))

    node = app.state.node
    async with read_only(node.sessionmaker) as session:
        sent = [
            (a.actor_uri.rsplit("/", 1)[-1], a.activity_type, a.document)
            for a in (
                await session.execute(select(StoredActivity).order_by(StoredActivity.id))
            ).scalars()
        ]
        versions = list(
            (await session.execute(select(BrickVersion).order_by(BrickVersion.version))).scalars()
        )
        members = {m.username: m.id for m in (await session.execute(select(Member))).scalars()}
        stats = {name: await contribution_stats(session, mid) for name, mid in members.items()}
    kinds = [(actor, kind) for actor, kind, _ in sent]
    assert kinds == [
        ("marie", "Create"),
        ("lille", "Announce"),
        ("marie", "Update"),  # the chamber boosts the Article, never its Update
        ("paul", "Create"),
    ]
    create = sent[0][2]
    assert create["object"]["attributedTo"] == [
        "https://lille.test/actors/marie",
        "https://lille.test/actors/jeanne",
    ]
    assert create["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert sent[1][2]["object"]["type"] == "Article"
    assert sent[2][2]["object"]["type"] == "Article"
    assert sent[3][2]["object"]["inReplyTo"] == create["object"]["id"]
    assert [(v.version, v.editor_name, v.changed) for v in versions][1] == (
        2,
        "marie",
        ["body", "tags"],
    )
    assert stats["marie"] == (1, 3.0, 1) and stats["jeanne"] == (1, 3.0, 1)
    assert stats["paul"] == (0, None, 0)
