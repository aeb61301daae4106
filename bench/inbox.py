"""Verified inbox POSTs per second, end to end, against the raw RSA floor of the same run.

    .venv/bin/python -m bench.inbox [--count 2000] [--clients 8] [--scheme cavage]
        [--database-url postgresql://postgres@127.0.0.1:5432/archipel_bench]

Starts a real node (``archipel init`` + ``archipel serve`` on 127.0.0.1, data in a temp dir)
and a fake remote actor on 127.0.0.1 whose Person document carries an RSA ``publicKey``.
One warm-up POST makes the node fetch and cache the key; then ``--count`` signed
``Create(Note)`` activities (distinct ids, addressed to the chamber so that they are stored)
are POSTed by ``--clients`` concurrent httpx clients. Every answer must be 202 "accepted",
and the node's database must hold every activity afterwards.

Requests are signed before the clock starts: the bench's own signing must not compete with
the node for the machine's cores. Runs on SQLite, and also on PostgreSQL when
``--database-url`` names a database on 127.0.0.1 (a throwaway one is created and dropped).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from bench._support import FakeHost, add_database_argument, backends, rsa_floor
from federation_tests.harness import NodeProcess
from node.activitypub.keys import rsa_public_pem
from node.activitypub.models import StoredActivity
from node.activitypub.signatures import sign_cavage, sign_rfc9421
from node.config import load_settings
from node.db import make_engine, make_sessionmaker, read_only

CHAMBER = "bench"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"


def actor_document(origin: str, key: rsa.RSAPrivateKey) -> dict[str, object]:
    uri = f"{origin}/users/alice"
    return {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Person",
        "preferredUsername": "alice",
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "endpoints": {"sharedInbox": f"{origin}/inbox"},
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": rsa_public_pem(key)},
    }


def signed_requests(
    count: int, node: NodeProcess, actor: str, key: rsa.RSAPrivateKey, scheme: str
) -> list[tuple[str, dict[str, str], bytes]]:
    chamber = f"{node.url}/actors/{CHAMBER}"
    inbox = f"{chamber}/inbox"
    signer = sign_cavage if scheme == "cavage" else sign_rfc9421
    now = datetime.now(UTC)
    requests = []
    for i in range(count):
        note = {
            "id": f"{actor}/statuses/{i}",
            "type": "Note",
            "attributedTo": actor,
            "to": [chamber],
            "cc": [PUBLIC],
            "content": f"<p>Message {i} : " + "lorem ipsum dolor sit amet " * 30 + "</p>",
            "published": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        activity = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{actor}/statuses/{i}/activity",
            "type": "Create",
            "actor": actor,
            "to": [chamber],
            "cc": [PUBLIC],
            "object": note,
        }
        body = json.dumps(activity).encode()
        headers = {"Content-Type": "application/activity+json"}
        headers |= signer("POST", inbox, headers, body, key, f"{actor}#main-key", now)
        requests.append((inbox, headers, body))
    return requests


async def post_all(
    requests: list[tuple[str, dict[str, str], bytes]], clients: int, max_seconds: float
) -> tuple[float, list[tuple[int, str]]]:
    results: list[tuple[int, str]] = []
    pending = iter(requests)
    deadline = time.monotonic() + max_seconds

    async def client() -> None:
        async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:
            for url, headers, body in pending:
                if time.monotonic() > deadline:
                    return
                response = await http.post(url, headers=headers, content=body)
                results.append((response.status_code, response.json().get("reason", "")))

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - start, results


def process_cpu_seconds(node: NodeProcess) -> float:
    """User + system CPU time of the node's process so far (Linux ``/proc``; 0 elsewhere)."""
    assert node.process is not None
    try:
        fields = Path(f"/proc/{node.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def stored_count(node: NodeProcess) -> int:
    engine = make_engine(load_settings(node.data_dir).database_url)
    try:
        async with read_only(make_sessionmaker(engine)) as session:
            query = select(func.count()).where(StoredActivity.direction == "in")
            return int((await session.execute(query)).scalar_one())
    finally:
        await engine.dispose()


async def run_backend(
    label: str, database_url: str | None, args: argparse.Namespace, key: rsa.RSAPrivateKey
) -> float:
    fake = FakeHost()
    await fake.start()
    actor = f"{fake.origin}/users/alice"
    fake.serve_document("/users/alice", actor_document(fake.origin, key))
    with tempfile.TemporaryDirectory(prefix="archipel-bench-") as tmp:
        node = NodeProcess(CHAMBER, Path(tmp), database_url=database_url)
        node.init()
        node.start()  # blocks this loop a moment; nothing talks to the fake actor meanwhile
        try:
            requests = signed_requests(args.count + 1, node, actor, key, args.scheme)
            cold, warm_up = await post_all(requests[:1], 1, args.max_seconds)
            assert warm_up == [(202, "accepted")], f"warm-up POST answered {warm_up}"
            assert fake.documents and sum(fake.posts.values()) == 0
            cpu_before = process_cpu_seconds(node)
            elapsed, results = await post_all(requests[1:], args.clients, args.max_seconds)
            node_cpu = process_cpu_seconds(node) - cpu_before
        finally:
            node.stop()
        refused = [r for r in results if r != (202, "accepted")]
        stored = await stored_count(node)
    await fake.stop()
    per_second = len(results) / elapsed
    print(
        f"[{label}] first POST (fetches the key) {cold * 1000:7.1f} ms; "
        f"{len(results)} POSTs in {elapsed:.2f} s by {args.clients} clients; "
        f"node CPU {node_cpu / max(len(results), 1) * 1000:.2f} ms per POST "
        f"({node_cpu / elapsed:.0%} of a core)"
    )
    if refused or len(results) != args.count or stored != args.count + 1:
        raise SystemExit(
            f"[{label}] FAILED: {len(results)} answered of {args.count}, "
            f"{len(refused)} not 202 accepted (e.g. {refused[:3]}), {stored} stored"
        )
    print(f"[{label}] all 202 accepted, {stored} activities stored")
    return per_second


async def amain(args: argparse.Namespace) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rates = []
    for label, database in backends(args.database_url):
        async with database() as database_url:
            rates.append((label, await run_backend(label, database_url, args, key)))
    sign_rate, verify_rate = rsa_floor(key, args.seconds)
    print(f"raw RSA-2048 sign            {sign_rate:10.0f} /s")
    print(f"raw RSA-2048 verify          {verify_rate:10.0f} /s   (the floor)")
    for label, per_second in rates:
        print(
            f"inbox POST {args.scheme:7s} {label:10s} {per_second:8.0f} /s   "
            f"ratio to raw verify: {per_second / verify_rate:.4f} "
            f"(1 in {verify_rate / per_second:.0f})"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000, help="timed POSTs (default 2000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--scheme", choices=("cavage", "rfc9421"), default="cavage")
    parser.add_argument("--seconds", type=float, default=1.0, help="per floor measurement")
    parser.add_argument(
        "--max-seconds", type=float, default=120.0, help="stop POSTing after this long"
    )
    add_database_argument(parser)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
