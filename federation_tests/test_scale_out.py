"""A chamber scaled out: Lille runs as two server processes (``archipel serve --workers 2
--no-worker``) and two ``archipel worker`` processes on one PostgreSQL database; Gand is a
plain one-process chamber on SQLite behind a loopback proxy that records what it receives.

The test pins HTTP connections to each of Lille's server processes (it opens connections until
the kernel hands one to the wanted process, which it finds in ``/proc``), so that it knows
where each request lands, and shows that:

- exchanges declared and accepted on either server process settle with Gand, and the two
  ledgers agree;
- every activity Lille's two workers deliver reaches Gand exactly once;
- wrong passwords spread over both server processes are counted together: the throttle holds;
  the session (and its CSRF token) made by one process is honoured by the other;
- the server processes end when their supervisor is killed.

Skipped, with the reason, when ``ARCHIPEL_TEST_POSTGRES_URL`` is not set.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from demo import launcher
from federation_tests.conftest import NodeFactory
from federation_tests.harness import (
    QUICK_POLL,
    NodeProcess,
    Trader,
    assert_ledgers_agree,
    together,
    wait_for,
    wait_settled,
)
from tests.harness.databases import POSTGRES_SKIP, postgres_admin_url, throwaway_postgres

pytestmark = pytest.mark.federation

PASSWORD = "the right password"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class ScaledNode(NodeProcess):
    """A chamber on PostgreSQL whose ``serve`` runs several processes, with ``archipel worker``
    processes beside it."""

    workers: list[launcher.NodeCommand] = field(default_factory=list)

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Read the node's PostgreSQL database (``$1``-style parameters)."""
        import asyncpg

        async def fetch() -> list[tuple[Any, ...]]:
            assert self.database_url is not None
            connection = await asyncpg.connect(self.database_url)
            try:
                return [tuple(row) for row in await connection.fetch(query, *params)]
            finally:
                await connection.close()

        return asyncio.run(fetch())

    def start_workers(self, count: int) -> None:
        for index in range(count):
            self.workers.append(
                launcher.start_worker(
                    self.data_dir,
                    self.root / f"{self.name}-worker{index}.log",
                    env={**os.environ, **self.env},
                )
            )

    def logs(self) -> str:
        """The end of every log: the servers', then each worker's."""
        texts = [f"--- {self.name} serve\n{self.log_text()[-3000:]}"]
        for path in sorted(self.root.glob(f"{self.name}-worker*.log")):
            texts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(texts)

    def close(self) -> None:
        for worker in self.workers:
            launcher.kill(worker)
        super().close()


# -- which server process holds a connection -------------------------------------------------


def _server_processes(parent: int) -> list[int]:
    """The server processes uvicorn's supervisor ``parent`` spawned (not its resource
    tracker)."""
    found = []
    for task in os.listdir(f"/proc/{parent}/task"):
        with open(f"/proc/{parent}/task/{task}/children") as children:
            for pid in children.read().split():
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    if b"spawn_main" in cmdline.read():
                        found.append(int(pid))
    return sorted(found)


def _connection_owner(server_port: int, client_port: int, pids: list[int]) -> int | None:
    """Which of ``pids`` accepted the connection from ``client_port`` (None: not yet)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, remote = fields[1], fields[2]
                if (
                    int(local.rsplit(":", 1)[1], 16) == server_port
                    and int(remote.rsplit(":", 1)[1], 16) == client_port
                ):
                    inode = fields[9]
    if inode is None or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:  # closed meanwhile
                continue
    return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class ServerProcesses:
    """Requests to one chosen server process of a node run with ``serve --workers N``."""

    def __init__(self, node: NodeProcess, count: int) -> None:
        assert node.process is not None
        self.node = node
        parent = node.process.pid
        self.pids: list[int] = wait_for(
            lambda: (found := _server_processes(parent)) and len(found) == count and found,
            what=f"{count} server processes of {node.name}",
            interval=QUICK_POLL,
        )

    def _connect(self, pid: int) -> http.client.HTTPConnection:
        """A connection that the server process ``pid`` accepted."""
        for _ in range(500):
            connection = http.client.HTTPConnection("127.0.0.1", self.node.inner_port, timeout=30)
            connection.connect()
            client_port = connection.sock.getsockname()[1]
            owner = wait_for(
                lambda p=client_port: _connection_owner(self.node.inner_port, p, self.pids),
                what="a server process to accept the connection",
                interval=QUICK_POLL,
            )
            if owner == pid:
                return connection
            connection.close()
        raise AssertionError(f"no connection of 500 reached server process {pid}")

    def request(
        self,
        pid: int,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        cookie: str | None = None,
    ) -> Answer:
        headers = {"Host": f"127.0.0.1:{self.node.port}", "Accept": "application/json"}
        payload = None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if form is not None:
            payload = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Accept"] = "text/html"
        if cookie:
            headers["Cookie"] = cookie
        connection = self._connect(pid)
        try:
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            return Answer(response.status, dict(response.getheaders()), response.read())
        finally:
            connection.close()


# -- the chambers ----------------------------------------------------------------------------


@dataclass
class Scene:
    lille: ScaledNode
    gand: NodeProcess
    servers: ServerProcesses
    alice: Trader
    bob: Trader


@pytest.fixture
def scene(tmp_path: Path, make_node: NodeFactory) -> Iterator[Scene]:
    if postgres_admin_url() is None:
        print(POSTGRES_SKIP)
        pytest.skip(POSTGRES_SKIP)
    with throwaway_postgres("archipel_scale") as database_url:
        lille = ScaledNode(
            name="lille",
            root=tmp_path,
            database_url=database_url,
            serve_args=("--workers", "2", "--no-worker"),
        )
        # Leases far longer than any job here: a job is then claimed by one worker only.
        lille.env["ARCHIPEL_JOB_LEASE_SECONDS"] = "60"
        try:
            # Each chamber starts, then each adds the other and its members, side by side.
            servers, gand = together(
                lambda: _start_scaled(lille), lambda: make_node("gand", behind_proxy=True)
            )

            def lille_side() -> Trader:
                lille.add_partner(gand, 600)
                lille.cli("member", "add", "carol", "--password", PASSWORD)
                return lille.add_trader("alice")

            def gand_side() -> Trader:
                gand.add_partner(lille, 600)
                return gand.add_trader("bob")

            alice, bob = together(lille_side, gand_side)
            lille.wait_partnered(gand)
            yield Scene(lille, gand, servers, alice, bob)
        finally:
            lille.close()


def _start_scaled(lille: ScaledNode) -> ServerProcesses:
    lille.init()
    lille.start(timeout=60)
    lille.start_workers(2)
    return ServerProcesses(lille, 2)


def _declare(scene: Scene, pid: int, minutes: int) -> str:
    """Alice (Lille) did ``minutes`` of work for Bob (Gand), declared on server ``pid``."""
    answer = scene.servers.request(
        pid,
        "POST",
        "/api/v1/exchanges",
        token=scene.alice.token,
        body={"beneficiary": scene.bob.actor, "minutes": minutes, "description": "aide"},
    )
    assert answer.status == 201, answer.body
    return str(answer.json()["id"])


def _accept(scene: Scene, pid: int, uri: str) -> None:
    """Alice accepts, on server ``pid``, what Bob declared on Gand."""
    key = scene.alice.wait_exchange(uri, ("proposed",))["key"]
    answer = scene.servers.request(
        pid, "POST", f"/api/v1/exchanges/{key}/accept", token=scene.alice.token, body={}
    )
    assert answer.status == 200, answer.body


def test_two_servers_and_two_workers_settle_deliver_once_and_throttle(scene: Scene) -> None:
    lille, gand, first, second = scene.lille, scene.gand, *scene.servers.pids
    # Alice declares on both server processes, Bob accepts on Gand; Bob declares on Gand,
    # Alice accepts on both.
    given = {
        _declare(scene, pid, minutes): minutes
        for pid, minutes in [(first, 30), (second, 45), (first, 20), (second, 15)]
    }
    taken = {}
    for minutes in (25, 10):
        response = scene.bob.provide(scene.alice, minutes)
        assert response.status_code == 201, response.text
        taken[response.json()["id"]] = minutes
    for uri in given:
        key = scene.bob.wait_exchange(uri, ("proposed",))["key"]
        assert scene.bob.act(key, "accept").status_code == 200
    for pid, uri in zip((first, second), taken, strict=True):
        _accept(scene, pid, uri)
    for uri in [*given, *taken]:
        scene.alice.wait_exchange(uri, ("posted",), timeout=60)
        scene.bob.wait_exchange(uri, ("posted",), timeout=60)
    wait_settled(lille, gand, timeout=60, quiet=True)

    # Settlements: the balances moved by what was posted, and the two ledgers agree.
    moved = sum(given.values()) - sum(taken.values())
    assert (scene.alice.balance(), scene.bob.balance()) == (moved, -moved)
    assert_ledgers_agree(lille, gand)

    # Exactly once: each activity reached each of Gand's inboxes in one POST, answered 2xx;
    # as many as Lille's workers finished deliveries to Gand.
    assert gand.proxy is not None
    posts = [r for r in gand.proxy.log if r.method == "POST" and r.path.endswith("/inbox")]
    assert posts, "Gand received nothing"
    assert all(r.statuses and all(200 <= (s or 0) < 300 for s in r.statuses) for r in posts)
    received = Counter((r.json["id"], r.path) for r in posts)
    assert set(received.values()) == {1}, [k for k, n in received.items() if n > 1]
    delivered = lille.sql(
        "SELECT count(*) FROM jobs WHERE kind = 'deliver' AND state = 'done' AND host = $1",
        gand.handle_host,
    )[0][0]
    assert delivered == len(received), lille.logs()

    # Login throttling: five wrong passwords (the free ones for this account and address),
    # alternating processes, then the sixth attempt is refused on either process, even with
    # the right password; the session made by one process carries the CSRF token to the other.
    page = scene.servers.request(first, "GET", "/login")
    cookie = page.headers["set-cookie"].split(";", 1)[0]
    found = _CSRF.search(page.body.decode())
    assert found, "no csrf_token on the sign-in page"
    form = {"username": "carol", "password": "not it", "csrf_token": found.group(1)}
    for attempt in range(5):
        pid = (second, first)[attempt % 2]
        answer = scene.servers.request(pid, "POST", "/login", form=form, cookie=cookie)
        assert answer.status == 401, (attempt, answer.status)
    for pid in (first, second):
        right = {**form, "password": PASSWORD}
        answer = scene.servers.request(pid, "POST", "/login", form=right, cookie=cookie)
        assert answer.status == 429, (pid, answer.status)
        assert int(answer.headers["retry-after"]) > 0

    # The supervisor killed as a crash would: its server processes end too.
    lille.kill()
    wait_for(
        lambda: not any(_alive(pid) for pid in scene.servers.pids),
        what="the server processes to end with their supervisor",
        interval=QUICK_POLL,
    )
