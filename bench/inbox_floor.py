"""The two reference inboxes ``bench.inbox`` compares our node with, each a server process.

    python -m bench.inbox_floor verify --port P --key-file actor.json
    python -m bench.inbox_floor one-tx --port P --key-file actor.json --database-url URL

``verify``: a bare Starlette app that parses the JSON body, verifies the HTTP signature
(``node.activitypub.signatures``, the node's own code) with the sender's key held in memory,
and answers 202: the floor of a verified POST in Python.

``one-tx``: the same, then one transaction (SQLAlchemy Core, the node's drivers: asyncpg or
aiosqlite) that inserts the activity (idempotent on its id) and its processing job, in
tables of its own. What an inbox that stores and enqueues must at least do.

Both run under uvicorn with uvloop and httptools, like ``archipel serve``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    insert,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from node.activitypub.keys import load_rsa_public_pem
from node.activitypub.signatures import verify_request
from node.db import make_engine

__all__ = ["make_app", "metadata"]

metadata = MetaData()
activities = Table(
    "bench_floor_activities",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("activity_id", String(2048), unique=True, nullable=False),
    Column("actor_uri", String(2048), nullable=False),
    Column("activity_type", String(64), nullable=False),
    Column("document", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
jobs = Table(
    "bench_floor_jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("state", String(16), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("activity_pk", ForeignKey("bench_floor_activities.id"), nullable=False),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
)


def make_app(mode: str, key: rsa.RSAPublicKey, key_id: str, database_url: str | None) -> Starlette:
    engine: AsyncEngine | None = None
    statement: Any = None

    def resolve(candidate: str) -> rsa.RSAPublicKey | None:
        return key if candidate == key_id else None

    async def inbox(request: Request) -> Response:
        body = await request.body()
        activity = json.loads(body)
        url = f"http://{request.headers['host']}{request.url.path}"
        result = verify_request(
            "POST", url, request.headers.items(), body, resolve_key=resolve, now=datetime.now(UTC)
        )
        if not result.ok:
            return JSONResponse({"error": result.message}, status_code=401)
        if engine is not None:
            now = datetime.now(UTC)
            async with engine.begin() as connection:
                pk = (
                    await connection.execute(
                        statement,
                        {
                            "activity_id": activity["id"],
                            "actor_uri": activity["actor"],
                            "activity_type": activity["type"],
                            "document": activity,
                            "created_at": now,
                        },
                    )
                ).scalar_one_or_none()
                if pk is not None:
                    await connection.execute(
                        insert(jobs).values(
                            kind="inbox.process",
                            state="pending",
                            payload={"activity": pk},
                            activity_pk=pk,
                            next_attempt_at=now,
                        )
                    )
        return JSONResponse({"status": "accepted"}, status_code=202)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        nonlocal engine, statement
        if mode == "one-tx":
            assert database_url is not None
            engine = make_engine(database_url)
            async with engine.begin() as connection:
                await connection.run_sync(metadata.create_all)
            dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
            statement = (
                dialect.insert(activities)
                .on_conflict_do_nothing(index_elements=["activity_id"])
                .returning(activities.c.id)
            )
        yield
        if engine is not None:
            await engine.dispose()

    routes = [
        Route("/inbox", inbox, methods=["POST"]),
        Route("/{rest:path}/inbox", inbox, methods=["POST"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("verify", "one-tx"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--key-file", type=Path, required=True, help='{"id":…, "pem":…}')
    parser.add_argument("--database-url")
    args = parser.parse_args()
    key = json.loads(args.key_file.read_text())
    app = make_app(args.mode, load_rsa_public_pem(key["pem"]), key["id"], args.database_url)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        access_log=False,
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
