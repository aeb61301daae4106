"""Catalogue latency at 100,000 bricks (local and federated), on SQLite and PostgreSQL.

    .venv/bin/python -m bench.bricks_catalogue [--bricks 100000] [--runs 30]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Fills a fresh, migrated database (a temporary SQLite file; a throwaway PostgreSQL
database when ``--postgres`` or ``ARCHIPEL_TEST_POSTGRES_URL`` is given), then times
``search_bricks`` — what the catalogue page and ``GET /api/v1/bricks`` run — for first
pages, a deep keyset page, each filter and full-text searches. The baseline, measured in
the same run, is a primary-key lookup of one brick: the floor of a query on that database.
Prints median and 95th percentile in milliseconds, and JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import make_url

from node.bricks.catalogue import CatalogueQuery, search_bricks
from node.bricks.models import Brick, BrickAuthor, BrickTag
from node.db import make_engine, make_sessionmaker, read_only
from node.migrate import upgrade

WORDS = (
    "commun jardin quartier énergie coopérative monnaie temps école santé habitat eau vélo "
    "atelier réparation cuisine semence forêt musique danse théâtre lecture archive carte "
    "assemblée charte gouvernance budget mutuelle crédit échange don soin marché"
).split()
RARE = "zygomorphe"
CATEGORIES = ("concept", "analyse", "methode")
HOSTS = ["lille.example", "gand.example", "roubaix.example", "arras.example"]


def vocabulary(rng: random.Random, size: int = 5_000) -> list[str]:
    """Our words first (the most frequent), then made-up ones: drawn with a Zipf-like law,
    so a few words are in many bricks and most in few, as in real text."""
    syllables = ["ba", "co", "di", "fe", "ga", "li", "mo", "nu", "pa", "ri", "so", "tu", "ve"]
    made_up = {"".join(rng.choices(syllables, k=rng.randint(2, 4))) for _ in range(size * 2)}
    return WORDS + sorted(made_up - set(WORDS))[: size - len(WORDS)]


def fake_rows(
    count: int, seed: int = 4
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    rng = random.Random(seed)
    vocab = vocabulary(rng)
    weights = [1 / (rank + 1) for rank in range(len(vocab))]

    def draw(k: int) -> list[str]:
        return rng.choices(vocab, weights=weights, k=k)

    start = datetime(2024, 1, 1, tzinfo=UTC)
    bricks, tags, authors = [], [], []
    for i in range(1, count + 1):
        host = HOSTS[0] if i % 2 else rng.choice(HOSTS[1:])
        words = draw(12)
        if i % 10_000 == 0:
            words.append(RARE)
        brick_tags = list(dict.fromkeys(draw(3)))
        body = " ".join(draw(80))
        when = start + timedelta(minutes=i)
        bricks.append(
            {
                "id": i,
                "key": f"{i:016x}",
                "uri": f"https://{host}/bricks/{i}",
                "url": f"https://{host}/bricks/{i}",
                "local": host == HOSTS[0],
                "host": host,
                "chamber_uri": f"https://{host}/actors/chamber",
                "title": " ".join(words[:5]).capitalize(),
                "category": CATEGORIES[i % 3],
                "summary": " ".join(words[5:]),
                "body_markdown": body,
                "body_html": f"<p>{body}</p>",
                "body_text": body,
                "tags_text": " ".join(brick_tags),
                "links": [],
                "files": [],
                "licence": "https://creativecommons.org/licenses/by-sa/4.0/",
                "version": 1,
                "rating_sum": 0,
                "rating_count": 0,
                "like_count": 0,
                "published_at": when,
                "updated_at": when,
            }
        )
        tags += [{"brick_id": i, "position": p, "name": t} for p, t in enumerate(brick_tags)]
        author = f"https://{host}/actors/m{i % 500}"
        authors.append(
            {
                "brick_id": i,
                "position": 0,
                "actor_uri": author,
                "name": f"m{i % 500}",
                "profile_url": author,
            }
        )
    return bricks, tags, authors


async def fill(url: str, count: int) -> float:
    engine = make_engine(url)
    bricks, tags, authors = fake_rows(count)
    started = time.perf_counter()
    async with engine.begin() as connection:
        for table, rows in ((Brick, bricks), (BrickTag, tags), (BrickAuthor, authors)):
            for offset in range(0, len(rows), 5_000):
                await connection.execute(insert(table), rows[offset : offset + 5_000])
    async with engine.begin() as connection:  # committed: statistics for the planner
        await connection.exec_driver_sql("ANALYZE")
    await engine.dispose()
    return time.perf_counter() - started


async def timed(work: Callable[[], Awaitable[object]], runs: int) -> tuple[float, float]:
    await work()  # warm the caches
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await work()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.95))]


async def measure(url: str, count: int, runs: int) -> dict[str, Any]:
    fill_seconds = await fill(url, count)
    engine = make_engine(url)
    sessionmaker = make_sessionmaker(engine)
    results: dict[str, Any] = {"fill_seconds": round(fill_seconds, 1)}

    async def query(q: CatalogueQuery) -> object:
        async with read_only(sessionmaker) as session:
            page = await search_bricks(session, q)
            return [b.title for b in page.items]

    async def by_key() -> object:
        async with read_only(sessionmaker) as session:
            return (
                await session.execute(select(Brick).where(Brick.key == f"{count // 2:016x}"))
            ).scalar_one()

    cases: dict[str, Callable[[], Awaitable[object]]] = {
        "baseline: one brick by key": by_key,
        "first page, all": lambda: query(CatalogueQuery()),
        "page after 50,000 bricks": lambda: query(CatalogueQuery(cursor=count // 2)),
        "scope=local": lambda: query(CatalogueQuery(scope="local")),
        "scope=federated, category": lambda: query(
            CatalogueQuery(scope="federated", category="analyse")
        ),
        "tag": lambda: query(CatalogueQuery(tag="quartier")),
        "author": lambda: query(CatalogueQuery(author=f"https://{HOSTS[0]}/actors/m7")),
        "search, word in 99% of bricks": lambda: query(CatalogueQuery(q="jardin")),
        "search, word in 25% of bricks": lambda: query(CatalogueQuery(q="marché")),
        "search, two words": lambda: query(CatalogueQuery(q="marché coopérative")),
        "search, rare word": lambda: query(CatalogueQuery(q=RARE)),
        "search, prefix + category": lambda: query(CatalogueQuery(q="gouvern", category="methode")),
    }
    for name, work in cases.items():
        median, p95 = await timed(work, runs)
        results[name] = {"median_ms": round(median, 2), "p95_ms": round(p95, 2)}
    await engine.dispose()
    return results


async def _admin(admin_url: str, statement: str) -> None:
    import asyncpg

    url = make_url(admin_url)
    connection = await asyncpg.connect(
        host=url.host or "127.0.0.1", port=url.port or 5432, user=url.username or "postgres",
        password=url.password, database=url.database or "postgres",
    )  # fmt: skip
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def run_postgres(admin_url: str, count: int, runs: int) -> dict[str, Any]:
    name = f"archipel_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        return asyncio.run(measure(url, count, runs))
    finally:
        asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def run_sqlite(count: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        url = f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}"
        upgrade(url)
        return asyncio.run(measure(url, count, runs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bricks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--postgres", default=os.environ.get("ARCHIPEL_TEST_POSTGRES_URL"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = {"bricks": args.bricks, "sqlite": run_sqlite(args.bricks, args.runs)}
    if args.postgres:
        report["postgresql"] = run_postgres(args.postgres, args.bricks, args.runs)
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return
    databases = [d for d in ("sqlite", "postgresql") if d in report]
    print(f"{args.bricks:,} bricks (half local), {args.runs} runs per line, milliseconds")
    print(f"{'':34}" + "".join(f"{d:>24}" for d in databases))
    print(f"{'fill (seconds)':34}" + "".join(f"{report[d]['fill_seconds']:>24}" for d in databases))
    for name in report["sqlite"]:
        if name == "fill_seconds":
            continue
        cells = "".join(
            f"{report[d][name]['median_ms']:>12} (p95 {report[d][name]['p95_ms']:>6})"
            for d in databases
        )
        print(f"{name:34}{cells}")


if __name__ == "__main__":
    main()
