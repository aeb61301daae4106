"""Delivery fan-out of one activity to 2,000 followers on 200 hosts, against the RSA floor.

    .venv/bin/python -m bench.fanout [--hosts 200] [--per-host 10] [--no-personal]
        [--concurrency 32] [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Starts ``--hosts`` fake remote servers (asyncio, in a child process — they stand for other
machines — each on its own 127.0.0.1 port) that serve the actor documents of ``--per-host``
followers each and answer 202 to every POST, counting them. A node is initialised in a temp
dir (``archipel init``); its runtime (``open_runtime``, in this process) fetches the first
follower of every host through the real path (``Federation.get_remote_actor``: a signed GET,
the document checked and stored); the other followers' documents are stored directly (the
same documents, only the set-up is faster), the accepted ``Follow`` rows are inserted, then
one note is published (``publish_note``) and the delivery worker runs
(``Worker.run_until_idle``: ``--concurrency`` deliveries in flight, a new one claimed as
others finish) until no job is left.

Variant "shared": every host advertises ``endpoints.sharedInbox``, so the node must send one
POST per host (200), not one per follower (2,000). Variant "personal" (skip with
``--no-personal``): no shared inbox, one POST per follower. Either way the bench fails loudly
unless every job is done and the hosts received exactly one signed POST per job.

Every delivery signs once (RSA-2048: the signature covers the inbox and the date), so raw
RSA signs per second, measured in the same run just before and just after each delivery
phase, is the floor. On a machine shared with other work a rate measured a second apart
varies a lot: the CPU time per delivery in the node's process, against the CPU time per raw
signature, is printed beside it (the ratio an idle machine would show). The last lines, one
per database (the shared variant, the issue's target), are machine-readable::

    RESULT fanout db=sqlite per_s=… sign_per_s=… posts=… jobs=…
    RESULT fanout db=postgresql per_s=… sign_per_s=… posts=… jobs=…
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, cast

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bench._support import FakeHost, add_database_argument, backends, rsa_floor
from federation_tests.harness import NodeProcess
from node.activitypub.actors import get_local_actor
from node.activitypub.federation import Federation, authority_of
from node.activitypub.keys import rsa_public_pem
from node.activitypub.models import Follow, FollowState, RemoteActor
from node.activitypub.notes import publish_note
from node.config import load_settings
from node.db import read_only, session_scope
from node.jobs import Job
from node.runtime import open_runtime

CHAMBER = "bench"


def follower_document(origin: str, user: str, pem: str, shared: bool) -> dict[str, object]:
    uri = f"{origin}/users/{user}"
    document: dict[str, object] = {
        "@context": ["https://www.w3.org/ns/activitystreams", "https://w3id.org/security/v1"],
        "id": uri,
        "type": "Person",
        "preferredUsername": user,
        "inbox": f"{uri}/inbox",
        "outbox": f"{uri}/outbox",
        "publicKey": {"id": f"{uri}#main-key", "owner": uri, "publicKeyPem": pem},
    }
    if shared:
        document["endpoints"] = {"sharedInbox": f"{origin}/inbox"}
    return document


def _serve_hosts(conn: Connection, count: int) -> None:
    """The child process: ``count`` fake hosts. Sends their ports, takes the documents to
    serve, says "ready", then waits for "count" and sends (POSTs, signed POSTs) per host."""

    async def serve() -> None:
        hosts = [FakeHost() for _ in range(count)]
        await asyncio.gather(*(host.start() for host in hosts))
        conn.send([host.port for host in hosts])
        for index, path, document in conn.recv():
            hosts[index].serve_document(path, document)
        conn.send("ready")
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        conn.send([(sum(host.posts.values()), host.signed_posts) for host in hosts])
        await asyncio.gather(*(host.stop() for host in hosts))

    asyncio.run(serve())


class HostFarm:
    """``count`` fake hosts (`FakeHost`) in a child process: they stand for other machines,
    so the node's process does the delivering alone (the other core serves them)."""

    def __init__(self, count: int) -> None:
        self._conn, child = multiprocessing.get_context("spawn").Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve_hosts, args=(child, count), daemon=True
        )
        self._process.start()
        self.origins = [f"http://127.0.0.1:{port}" for port in self._conn.recv()]

    def serve(self, documents: list[tuple[int, str, dict[str, object]]]) -> None:
        self._conn.send(documents)
        assert self._conn.recv() == "ready"

    def counts(self) -> list[tuple[int, int]]:
        """(POSTs, signed POSTs) received by each host; the farm stops."""
        self._conn.send("count")
        counts: list[tuple[int, int]] = self._conn.recv()
        self._process.join(10)
        return counts

    def stop(self) -> None:
        if self._process.is_alive():
            self._process.kill()
        self._process.join()


def sign_cpu_ms(key: rsa.RSAPrivateKey, count: int = 200) -> float:
    """CPU milliseconds per raw RSA-2048 signature (steadier than a rate on a busy machine)."""
    start = time.process_time()
    for _ in range(count):
        key.sign(b"x" * 200, padding.PKCS1v15(), hashes.SHA256())
    return (time.process_time() - start) * 1000 / count


async def _add_followers(
    federation: Federation,
    sessionmaker: async_sessionmaker[AsyncSession],
    hosts: int,
    documents: list[dict[str, Any]],
    per_host: int,
) -> None:
    slots = asyncio.Semaphore(16)

    async def fetch(uri: str) -> None:
        async with slots:
            await federation.get_remote_actor(uri)

    await asyncio.gather(*(fetch(str(documents[i * per_host]["id"])) for i in range(hosts)))
    now = federation.clock()
    chamber = federation.urls(CHAMBER).id
    async with session_scope(sessionmaker) as session:
        for i, document in enumerate(documents):
            uri = str(document["id"])
            if i % per_host:
                endpoints = document.get("endpoints")
                shared = endpoints["sharedInbox"] if isinstance(endpoints, dict) else None
                public_key = cast(dict[str, str], document["publicKey"])
                session.add(
                    RemoteActor(
                        uri=uri,
                        host=authority_of(uri),
                        inbox=str(document["inbox"]),
                        shared_inbox=shared,
                        rsa_key_id=public_key["id"],
                        rsa_public_pem=public_key["publicKeyPem"],
                        document=document,
                        fetched_at=now,
                    )
                )
            session.add(
                Follow(
                    follower_uri=uri,
                    followee_uri=chamber,
                    follow_activity_id=f"{uri}/follows/1",
                    state=FollowState.ACCEPTED,
                    created_at=now,
                    updated_at=now,
                )
            )


async def run_variant(
    label: str,
    database_url: str | None,
    shared: bool,
    args: argparse.Namespace,
    key: rsa.RSAPrivateKey,
) -> dict[str, float]:
    pem = rsa_public_pem(key)
    farm = HostFarm(args.hosts)
    documents: list[dict[str, Any]] = []
    served: list[tuple[int, str, dict[str, object]]] = []
    for index, origin in enumerate(farm.origins):
        for j in range(args.per_host):
            document = follower_document(origin, f"u{j}", pem, shared)
            served.append((index, f"/users/u{j}", document))
            documents.append(document)
    farm.serve(served)
    expected = args.hosts if shared else args.hosts * args.per_host
    variant = "shared inboxes" if shared else "personal inboxes"
    try:
        with tempfile.TemporaryDirectory(prefix="archipel-bench-") as tmp:
            node = NodeProcess(CHAMBER, Path(tmp), database_url=database_url)
            node.init()
            settings = load_settings(node.data_dir)
            async with open_runtime(settings) as runtime:
                runtime.worker.concurrency = args.concurrency
                start = time.perf_counter()
                await _add_followers(
                    runtime.federation, runtime.sessionmaker, args.hosts, documents, args.per_host
                )
                fetched = time.perf_counter() - start

                start = time.perf_counter()
                async with session_scope(runtime.sessionmaker) as session:
                    actor = await get_local_actor(session, CHAMBER)
                    assert actor is not None
                    await publish_note(runtime.federation, session, actor, "Bench: une nouvelle.")
                published = time.perf_counter() - start
                async with read_only(runtime.sessionmaker) as session:
                    enqueued = (await session.execute(select(func.count(Job.id)))).scalar_one()

                sign_before, _ = rsa_floor(key, args.seconds)
                sign_cpu = sign_cpu_ms(key)
                cpu, start = time.process_time(), time.perf_counter()
                ran = await asyncio.wait_for(
                    runtime.worker.run_until_idle(max_batches=10 * expected),
                    timeout=args.max_seconds,
                )
                delivered = time.perf_counter() - start
                cpu = time.process_time() - cpu
                sign_after, _ = rsa_floor(key, args.seconds)
                sign_cpu = (sign_cpu + sign_cpu_ms(key)) / 2
                async with read_only(runtime.sessionmaker) as session:
                    rows = await session.execute(
                        select(Job.state, func.count()).group_by(Job.state)
                    )
                    states = {state: count for state, count in rows}
                    errors = (
                        await session.execute(
                            select(Job.last_error).where(Job.state != "done").limit(5)
                        )
                    ).scalars()
                    errors_seen = sorted(set(errors))
        counts = farm.counts()
    finally:
        farm.stop()

    posts = sum(count for count, _ in counts)
    signed = sum(signed for _, signed in counts)
    per_host = {count for count, _ in counts}
    print(
        f"[{label}, {variant}] {len(documents)} followers on {args.hosts} hosts set up in "
        f"{fetched:.1f} s; publish enqueued {enqueued} jobs in {published * 1000:.0f} ms; "
        f"worker ran {ran} jobs in {delivered:.2f} s ({cpu * 1000 / max(ran, 1):.2f} ms CPU "
        f"each in the node's process); hosts received {posts} POSTs "
        f"({signed} signed, {sorted(per_host)} per host); jobs {states}"
        + (f"; errors: {errors_seen}" if errors_seen else ""),
        flush=True,
    )
    if posts != enqueued:
        raise SystemExit(f"[{label}, {variant}] FAILED: {posts} POSTs for {enqueued} jobs")
    if enqueued != expected or signed != posts or states != {"done": posts}:
        raise SystemExit(f"[{label}, {variant}] FAILED: expected {expected} deliveries, done")
    return {
        "deliveries": posts,
        "jobs": enqueued,
        "publish": published,
        "deliver": delivered,
        "sign": (sign_before + sign_after) / 2,
        "cpu_ms": cpu * 1000 / max(ran, 1),
        "sign_cpu_ms": sign_cpu,
    }


async def amain(args: argparse.Namespace) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sign_rate, verify_rate = rsa_floor(key, args.seconds)
    print(f"raw RSA-2048 sign            {sign_rate:10.0f} /s   (the floor: one per delivery)")
    print(f"raw RSA-2048 verify          {verify_rate:10.0f} /s", flush=True)
    results = []
    for label, database in backends(args.database_url):
        for shared in (True, False) if args.personal else (True,):
            async with database() as database_url:
                result = await run_variant(label, database_url, shared, args, key)
                results.append((label, shared, result))
    for label, shared, result in results:
        count, seconds = result["deliveries"], result["publish"] + result["deliver"]
        per_second = count / result["deliver"]
        print(
            f"fan-out {label:10s} {'shared' if shared else 'personal':8s} "
            f"{count:5.0f} POSTs: publish {result['publish'] * 1000:6.0f} ms + deliver "
            f"{result['deliver']:6.2f} s = {seconds:6.2f} s; {per_second:6.0f} deliveries/s; "
            f"raw sign {result['sign']:5.0f}/s; ratio {per_second / result['sign']:.3f} "
            f"(1 in {result['sign'] / per_second:.0f}); CPU per delivery "
            f"{result['cpu_ms']:.2f} ms against {result['sign_cpu_ms']:.2f} ms per raw sign: "
            f"ratio {result['sign_cpu_ms'] / result['cpu_ms']:.3f}"
        )
    for label, shared, result in results:
        if shared:
            print(
                f"RESULT fanout db={label.lower()} "
                f"per_s={result['deliveries'] / result['deliver']:.0f} "
                f"sign_per_s={result['sign']:.0f} posts={result['deliveries']:.0f} "
                f"jobs={result['jobs']:.0f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--per-host", type=int, default=10, help="followers on each host")
    parser.add_argument(
        "--no-personal",
        dest="personal",
        action="store_false",
        help="skip the variant without shared inboxes (one POST per follower)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=32, help="deliveries the worker keeps in flight"
    )
    parser.add_argument("--seconds", type=float, default=1.0, help="per floor measurement")
    parser.add_argument(
        "--max-seconds", type=float, default=300.0, help="give up delivering after this long"
    )
    add_database_argument(parser)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
