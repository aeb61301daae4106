"""Verified inbox POSTs: our node against three references, interleaved in one run.

    .venv/bin/python -m bench.inbox [--count 400] [--rounds 3] [--clients 8]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Four servers receive the same signed ``Create(Note)`` activities (the same bodies, signed
by the same RSA-2048 key for each server's own inbox URL, all before the clock starts), at
the same concurrency, round after round in a rotating order so that the load of a shared
machine falls on all of them alike:

- ``floor``: a bare Starlette app that verifies the signature (``bench.inbox_floor verify``);
- ``one-tx``: the same plus one transaction inserting the activity and its job
  (``bench.inbox_floor one-tx``, on the same database as the node);
- ``node``: ``archipel serve`` (``archipel init`` in a temp dir), the chamber's inbox;
- ``fedify``: the Fedify peer of ``federation_tests/fedify_peer`` (Node 22; run its
  ``install.sh`` first), an actor's inbox.

The sender is a fake remote actor on 127.0.0.1 (its Person document carries the key);
warm-up POSTs let every server fetch and cache it. The load comes from a minimal HTTP/1.1
client (keep-alive connections, pre-encoded requests) so that the bench's own CPU stays
small. For each server it prints requests per second and the server process's CPU per
request (user + system, from ``/proc/PID/stat``), then the ratios; every answer must be
202 and the node must hold every activity. SQLite always; PostgreSQL too with
``--database-url`` (a throwaway database is created and dropped). The last lines are
``RESULT inbox db=… rps=… cpu_ms=… one_tx_cpu_ms=… floor_cpu_ms=… fedify_rps=…
fedify_cpu_ms=…``, one per database.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import func, select

from bench._support import FakeHost, add_database_argument, backends
from demo.launcher import free_port
from federation_tests.harness import NodeProcess
from node.activitypub.keys import rsa_public_pem
from node.activitypub.models import StoredActivity
from node.activitypub.signatures import sign_cavage
from node.config import load_settings
from node.db import make_engine, make_sessionmaker, read_only

CHAMBER = "bench"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ROOT = Path(__file__).resolve().parent.parent
FEDIFY_DIR = ROOT / "federation_tests" / "fedify_peer"
WARM_UP = 300  # Fedify (V8) needs a few hundred requests before its JIT settles


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


# --- servers -----------------------------------------------------------------------------


@dataclass
class Target:
    """One server under load: its inbox, the actor the activities are addressed to, its pid."""

    label: str
    port: int
    path: str
    recipient: str
    pid: int
    requests: int = 0
    seconds: float = 0.0
    cpu: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.requests * 1000 if self.requests else 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_listening(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{what} did not listen on port {port}")


def start_floor(mode: str, key_file: Path, database_url: str | None) -> subprocess.Popen[bytes]:
    port = free_port()
    argv = [sys.executable, "-m", "bench.inbox_floor", mode, "--port", str(port)]
    argv += ["--key-file", str(key_file)]
    if database_url:
        argv += ["--database-url", database_url]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(argv, env=env, cwd=ROOT)
    wait_listening(port, process, f"bench.inbox_floor {mode}")
    process.port = port  # type: ignore[attr-defined]
    return process


def start_fedify() -> subprocess.Popen[bytes] | None:
    node_binary = FEDIFY_DIR / ".runtime" / "node"
    if not node_binary.exists():
        print("fedify: not installed (bash federation_tests/fedify_peer/install.sh): skipped")
        return None
    port = free_port()
    argv = [str(node_binary), "peer.mjs", "--port", str(port), "--actors", CHAMBER]
    argv += ["--log-level", "error"]
    process = subprocess.Popen(argv, cwd=FEDIFY_DIR, stdout=subprocess.DEVNULL)
    wait_listening(port, process, "the Fedify peer")
    process.port = port  # type: ignore[attr-defined]
    return process


def profile_node(directory: Path | None, label: str, pid: int) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the node during the rounds (its own CPU shows in the node's figures:
    profile and measure in separate runs)."""
    if directory is None:
        return None
    directory.mkdir(parents=True, exist_ok=True)
    output = directory / f"node-{label.lower()}.txt"
    beside = Path(sys.executable).parent / "py-spy"
    argv = [
        str(beside) if beside.exists() else "py-spy",
        "record",
        "--pid",
        str(pid),
        "--rate",
        "200",
        "--format",
        "raw",
    ]
    argv += ["--gil", "--nonblocking", "--output", str(output)]  # Python CPU only
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    return process


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


# --- requests ----------------------------------------------------------------------------


def signed_requests(
    target: Target, actor: str, key: rsa.RSAPrivateKey, first: int, count: int, run: str
) -> list[bytes]:
    """``count`` signed POSTs of ``Create(Note)`` to ``target``, as raw HTTP/1.1 bytes."""
    url = f"http://127.0.0.1:{target.port}{target.path}"
    now = datetime.now(UTC)
    encoded = []
    for i in range(first, first + count):
        note = {
            "id": f"{actor}/statuses/{run}-{target.label}-{i}",
            "type": "Note",
            "attributedTo": actor,
            "to": [target.recipient],
            "cc": [PUBLIC],
            "content": f"<p>Message {i} : " + "lorem ipsum dolor sit amet " * 30 + "</p>",
            "published": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        activity = {
            "@context": "https://www.w3.org/ns/activitystreams",
            "id": f"{note['id']}/activity",
            "type": "Create",
            "actor": actor,
            "to": [target.recipient],
            "cc": [PUBLIC],
            "object": note,
        }
        body = json.dumps(activity).encode()
        headers = {"Content-Type": "application/activity+json"}
        headers |= sign_cavage("POST", url, headers, body, key, f"{actor}#main-key", now)
        head = f"POST {target.path} HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head += f"Content-Length: {len(body)}\r\n\r\n"
        encoded.append(head.encode("latin-1") + body)
    return encoded


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length") or 0))
    return status


async def post_all(port: int, requests: list[bytes], clients: int) -> tuple[float, Counter[int]]:
    """POST every request over ``clients`` keep-alive connections; elapsed time, statuses."""
    statuses: Counter[int] = Counter()
    pending = iter(requests)

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for request in pending:
                writer.write(request)
                statuses[await _read_response(reader)] += 1
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - start, statuses


async def measure(target: Target, requests: list[bytes], clients: int) -> None:
    before = cpu_seconds(target.pid)
    elapsed, statuses = await post_all(target.port, requests, clients)
    target.cpu += cpu_seconds(target.pid) - before
    target.seconds += elapsed
    target.requests += len(requests)
    target.statuses.update(statuses)


async def stored_count(node: NodeProcess) -> int:
    engine = make_engine(load_settings(node.data_dir).database_url)
    try:
        async with read_only(make_sessionmaker(engine)) as session:
            query = select(func.count()).where(StoredActivity.direction == "in")
            return int((await session.execute(query)).scalar_one())
    finally:
        await engine.dispose()


# --- the run -----------------------------------------------------------------------------


@dataclass
class Shared:
    """What every database's run uses: the sender, its key, the floor and Fedify servers."""

    key: rsa.RSAPrivateKey
    actor: str
    key_file: Path
    floor: subprocess.Popen[bytes]
    fedify: subprocess.Popen[bytes] | None


async def run_database(
    label: str, database_url: str | None, shared: Shared, args: argparse.Namespace, tmp: Path
) -> dict[str, Target]:
    node = NodeProcess(CHAMBER, tmp / f"node-{label}", database_url=database_url)
    node.init()
    one_tx_url = database_url or f"sqlite:///{tmp}/one-tx-{label}.db"
    one_tx = start_floor("one-tx", shared.key_file, one_tx_url)
    node.start(timeout=180)  # a loaded machine can take a while to import and migrate
    try:
        assert node.process is not None
        chamber = f"{node.url}/actors/{CHAMBER}"
        node_port = int(node.url.rsplit(":", 1)[1])
        targets = [
            Target("floor", shared.floor.port, "/inbox", chamber, shared.floor.pid),  # type: ignore[attr-defined]
            Target("one-tx", one_tx.port, "/inbox", chamber, one_tx.pid),  # type: ignore[attr-defined]
            Target("node", node_port, f"/actors/{CHAMBER}/inbox", chamber, node.process.pid),
        ]
        if shared.fedify is not None:
            port = shared.fedify.port  # type: ignore[attr-defined]
            fedify_actor = f"http://127.0.0.1:{port}/users/{CHAMBER}"
            targets.append(
                Target("fedify", port, f"/users/{CHAMBER}/inbox", fedify_actor, shared.fedify.pid)
            )
        total = WARM_UP + args.rounds * args.count
        batches = {
            t.label: signed_requests(t, shared.actor, shared.key, 0, total, label) for t in targets
        }
        for target in targets:  # every server fetches the key and warms up
            requests = batches[target.label]
            _, statuses = await post_all(target.port, requests[:1], 1)
            _, more = await post_all(target.port, requests[1:WARM_UP], args.clients)
            statuses.update(more)
            if set(statuses) != {202}:
                raise SystemExit(f"[{label}] {target.label} warm-up answered {dict(statuses)}")
        profiler = profile_node(args.profile, label, node.process.pid)
        for round_number in range(args.rounds):
            start = WARM_UP + round_number * args.count
            shift = round_number % len(targets)
            for target in targets[shift:] + targets[:shift]:
                cpu, seconds = target.cpu, target.seconds
                batch = batches[target.label][start : start + args.count]
                await measure(target, batch, args.clients)
                print(
                    f"[{label}] round {round_number + 1} {target.label:7s} "
                    f"{args.count / (target.seconds - seconds):8.0f} req/s "
                    f"{(target.cpu - cpu) / args.count * 1000:6.2f} ms CPU/req",
                    flush=True,
                )
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
    finally:
        node.stop()
        stop(one_tx)
    for target in targets:
        if set(target.statuses) != {202}:
            raise SystemExit(f"[{label}] {target.label} answered {dict(target.statuses)}")
    stored = await stored_count(node)
    if stored != total:
        raise SystemExit(f"[{label}] the node stored {stored} activities of {total}")
    return {t.label: t for t in targets}


def report(label: str, targets: dict[str, Target]) -> str:
    print(f"\n[{label}] {'server':8s} {'req/s':>8s} {'CPU ms/req':>11s}")
    for target in targets.values():
        print(f"[{label}] {target.label:8s} {target.rps:8.0f} {target.cpu_ms:11.3f}")
    node, one_tx, floor = targets["node"], targets["one-tx"], targets["floor"]
    fedify = targets.get("fedify")
    print(
        f"[{label}] node CPU per POST: {node.cpu_ms / one_tx.cpu_ms:.2f} x the one-transaction "
        f"server's, {node.cpu_ms / floor.cpu_ms:.1f} x the bare verify server's"
    )
    if fedify is not None:
        print(
            f"[{label}] node req/s: {node.rps / fedify.rps:.2f} x Fedify's; "
            f"node CPU per POST: {node.cpu_ms / fedify.cpu_ms:.2f} x Fedify's"
        )
    db = "postgresql" if label == "PostgreSQL" else "sqlite"
    return (
        f"RESULT inbox db={db} rps={node.rps:.0f} cpu_ms={node.cpu_ms:.3f} "
        f"one_tx_cpu_ms={one_tx.cpu_ms:.3f} floor_cpu_ms={floor.cpu_ms:.3f} "
        f"fedify_rps={fedify.rps if fedify else 0:.0f} "
        f"fedify_cpu_ms={fedify.cpu_ms if fedify else 0:.3f}"
    )


async def amain(args: argparse.Namespace) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    fake = FakeHost()
    await fake.start()
    actor = f"{fake.origin}/users/alice"
    fake.serve_document("/users/alice", actor_document(fake.origin, key))
    results = []
    with tempfile.TemporaryDirectory(prefix="archipel-bench-") as tmp_name:
        tmp = Path(tmp_name)
        key_file = tmp / "actor-key.json"
        key_file.write_text(json.dumps({"id": f"{actor}#main-key", "pem": rsa_public_pem(key)}))
        floor = start_floor("verify", key_file, None)
        fedify = None if args.no_fedify else start_fedify()
        shared = Shared(key, actor, key_file, floor, fedify)
        try:
            for label, database in backends(args.database_url):
                async with database() as database_url:
                    targets = await run_database(label, database_url, shared, args, tmp)
                results.append(report(label, targets))
        finally:
            stop(floor)
            stop(fedify)
            await fake.stop()
    load = os.getloadavg()
    print(f"\nmachine: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f}")
    for line in results:
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=400, help="POSTs per server and round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--no-fedify", action="store_true", help="leave the Fedify peer out")
    parser.add_argument(
        "--profile", type=Path, help="write py-spy samples of the node here (skews its CPU)"
    )
    add_database_argument(parser)
    args = parser.parse_args()
    try:
        import uvloop

        runner: Callable[..., object] = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency
        runner = asyncio.run
    runner(amain(args))


if __name__ == "__main__":
    main()
