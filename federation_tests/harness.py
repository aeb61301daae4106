"""Real chamber nodes as separate processes on 127.0.0.1, each with its own data dir and port,
started by ``demo.launcher`` (the demo's launcher too).

A node may sit behind a `federation_tests.proxy.Proxy` (``behind_proxy=True``): its public URL
is then the proxy's port and ``serve`` listens on ``inner_port``. ``start(env=...)`` adds
environment for one run (a crash point). The second half is the clearing house as tests see
it: members with clearing access (`Trader`), partners, and `assert_ledgers_agree`, which reads
each node's SQLite database (read-only) to check that the ledgers agree.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from demo import launcher
from demo.launcher import free_port, http_get, http_post, http_request, pauses
from federation_tests.proxy import Proxy

__all__ = [
    "API_POLL",
    "QUICK_POLL",
    "NodeProcess",
    "Trader",
    "archipel",
    "assert_ledgers_agree",
    "free_port",
    "http_get",
    "http_post",
    "http_request",
    "in_flight",
    "ledger_of",
    "migrated_sqlite",
    "pauses",
    "pending_deliveries",
    "tls",
    "together",
    "wait_for",
    "wait_settled",
]


def archipel(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the ``archipel`` CLI of this interpreter; its output. Raises with the output if it
    fails."""
    return launcher.archipel(*args, env={**os.environ, **(env or {})})


_MIGRATED_LOCK = threading.Lock()
_migrated: list[Path] = []


def migrated_sqlite() -> Path:
    """A SQLite database as the migrations leave it, made once per process (by ``upgrade``
    itself): each chamber's ``init`` starts from a copy, so that its own migration run has
    nothing left to do (a fresh run costs each init about 0.15 s of CPU)."""
    with _MIGRATED_LOCK:
        if not _migrated:
            from node.migrate import upgrade

            directory = Path(tempfile.mkdtemp(prefix="archipel-migrated-"))
            atexit.register(shutil.rmtree, directory, True)
            upgrade(f"sqlite+aiosqlite:///{directory / 'archipel.db'}")
            _migrated.append(directory / "archipel.db")
        return _migrated[0]


#: How often the clearing helpers look again: at what costs nothing (a read of a node's
#: database, the proxy's log), and at a node's API (each request costs the node some work).
QUICK_POLL = 0.05
API_POLL = 0.1

#: One verifying TLS context for the tests' requests (``launcher.http_request`` uses it too).
tls = launcher.tls_context


def wait_for(
    condition: Callable[[], Any],
    timeout: float = 30.0,
    what: str = "",
    interval: float | None = None,
) -> Any:
    """Poll ``condition`` until it returns something true; that value (AssertionError when
    ``timeout`` seconds pass). It looks again every ``interval`` seconds, or by
    ``launcher.pauses`` (short at first) when none is given."""
    return launcher.wait_for(condition, timeout, what, error=AssertionError, interval=interval)


def together(*jobs: Callable[[], Any]) -> list[Any]:
    """Run ``jobs`` side by side, in threads (each mostly waits for a node or a command);
    their results, in order."""
    with ThreadPoolExecutor(len(jobs)) as pool:
        return [future.result() for future in [pool.submit(job) for job in jobs]]


@dataclass
class NodeProcess:
    """One chamber: ``init`` once, then ``start``/``stop``/``kill`` its ``serve`` process."""

    name: str
    root: Path
    #: The public port (the one in the node's URL): the proxy's when ``behind_proxy``.
    port: int = field(default_factory=free_port)
    database_url: str | None = None
    process: launcher.NodeCommand | None = None
    #: Put a ``federation_tests.proxy.Proxy`` on the public port, the node on ``inner_port``.
    behind_proxy: bool = False
    #: Where ``serve`` listens: the public ``port`` unless something else (a proxy, Caddy)
    #: owns that one.
    inner_port: int = 0
    proxy: Proxy | None = None
    #: The public URL's scheme (``https`` behind a TLS proxy such as Caddy).
    scheme: str = "http"
    #: Added to ``serve``'s arguments at every start (after the harness's own).
    serve_args: tuple[str, ...] = ()
    #: Fast retries and short job leases, so that recovery shows within a test's patience.
    env: dict[str, str] = field(
        default_factory=lambda: {
            "ARCHIPEL_RETRY_BASE_SECONDS": "0.5",
            "ARCHIPEL_JOB_LEASE_SECONDS": "3",
        }
    )

    def __post_init__(self) -> None:
        if self.behind_proxy:
            self.inner_port = self.inner_port or free_port()
            self.proxy = Proxy(upstream_port=self.inner_port).start()
            self.port = self.proxy.port
        else:
            self.inner_port = self.inner_port or self.port

    @property
    def data_dir(self) -> Path:
        return self.root / self.name

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def inner_url(self) -> str:
        """Where the process listens (the public ``url`` unless it is behind a proxy)."""
        return f"http://127.0.0.1:{self.inner_port}"

    @property
    def log_path(self) -> Path:
        return self.root / f"{self.name}.log"

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def init(self, *extra: str) -> None:
        args = [
            "init",
            "--data-dir",
            str(self.data_dir),
            "--url",
            self.url,
            "--name",
            f"Chambre de {self.name.title()}",
            "--chamber-username",
            self.name,
            "--allow-private-addresses",
            *extra,
        ]
        if self.database_url:
            args += ["--database-url", self.database_url]
        else:  # the database init would make: a copy of the migrated one
            self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            shutil.copyfile(migrated_sqlite(), self.data_dir / "archipel.db")
        archipel(*args, env=self.env)

    def cli(self, *args: str) -> str:
        """``archipel COMMAND [SUBCOMMAND] --data-dir DIR ARGS...`` for this node."""
        words = list(args)
        groups = ("member", "token", "block", "admin", "clearing", "partner", "round", "reconcile")
        split = 2 if words[0] in groups and len(words) > 1 else 1
        return archipel(
            *words[:split], "--data-dir", str(self.data_dir), *words[split:], env=self.env
        )

    def token(self, username: str) -> str:
        return self.cli("token", "create", username).strip()

    def start(self, timeout: float = 30.0, env: dict[str, str] | None = None) -> None:
        """Run ``serve`` until it answers ``/healthz``; ``env`` is added for this run only
        (e.g. ``{"ARCHIPEL_CRASH_AT": "settlement.prepared"}``: the next ``start()`` runs
        without it)."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.process = launcher.start_serve(
            self.name,
            self.data_dir,
            self.inner_port,
            self.log_path,
            env={**os.environ, **self.env, **(env or {})},
            serve_args=self.serve_args,
            timeout=timeout,
            note=" ".join(f"{k}={v}" for k, v in (env or {}).items()),
        )

    def stop(self) -> None:
        launcher.stop(self.process)

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, as in a crash."""
        launcher.kill(self.process)

    def restart(self, env: dict[str, str] | None = None) -> None:
        """SIGKILL (if it still runs) and start again, with ``env`` for the new run only."""
        self.kill()
        self.start(env=env)

    def wait_exit(self, timeout: float = 30.0) -> int:
        """Wait for the process to end by itself (a crash point); its return code."""
        assert self.process is not None, "never started"
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} still runs after {timeout}s:\n{self.log_text()[-3000:]}"
            ) from None

    def close(self) -> None:
        """Kill the process and stop the proxy (end of a test)."""
        self.kill()
        if self.proxy is not None:
            self.proxy.stop()

    # -- the clearing house, as tests see it -------------------------------------------------

    def actor(self, username: str) -> str:
        return f"{self.url}/actors/{username}"

    @property
    def handle_host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def api(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A request to the node's public URL (through its proxy, if any)."""
        headers = dict(kwargs.pop("headers", None) or {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return launcher.http_request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Read the node's SQLite database (read-only; the node may be running)."""
        path = self.data_dir / "archipel.db"
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            return list(db.execute(query, params))
        finally:
            db.close()

    def add_trader(self, username: str, *, floor: str | None = None) -> Trader:
        """A member with clearing access (granted by hand) and a bearer token."""
        self.cli("member", "add", username)
        self.cli("clearing", "grant", username, "--reason", "federation test")
        if floor is not None:
            self.cli("clearing", "limits", username, "--floor", floor, "--reason", "test")
        return Trader(self, username, self.token(username))

    def chamber(self) -> str:
        """The chamber actor's URI (its username is the node's name)."""
        return self.actor(self.name)

    def add_partner(self, other: NodeProcess, credit_line_minutes: int) -> None:
        """This chamber trades with ``other`` and lets it owe up to ``credit_line_minutes``."""
        self.cli(
            "partner",
            "add",
            other.chamber(),
            "--credit-line-minutes",
            str(credit_line_minutes),
        )

    def partner_confirmed(self, other: NodeProcess) -> bool:
        """Whether this chamber knows that ``other`` has added it too (both ways)."""
        response = self.api("GET", "/api/v1/partners")
        response.raise_for_status()
        items = {item["chamber"]: item for item in response.json()["items"]}
        return bool(items.get(other.chamber(), {}).get("confirmed"))

    def wait_partnered(self, *others: NodeProcess) -> None:
        """Wait until each of ``others`` and this chamber know they have added each other
        (members trade only then): the partnership's ``Offer`` and ``Accept`` are delivered."""
        for other in others:
            wait_for(
                lambda o=other: self.partner_confirmed(o) and o.partner_confirmed(self),
                what=f"{self.name} and {other.name} to confirm their partnership",
                interval=API_POLL,
            )


@dataclass
class Trader:
    """A member of a chamber, as the clearing API sees them."""

    node: NodeProcess
    username: str
    token: str

    @property
    def actor(self) -> str:
        return self.node.actor(self.username)

    @property
    def handle(self) -> str:
        return f"@{self.username}@{self.node.handle_host}"

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.node.api(method, path, self.token, **kwargs)

    def balance(self) -> int:
        response = self.api("GET", "/api/v1/accounts/me")
        response.raise_for_status()
        return int(response.json()["balance_minutes"])

    def exchanges(self) -> list[dict[str, Any]]:
        response = self.api("GET", "/api/v1/exchanges")
        response.raise_for_status()
        return list(response.json()["items"])

    def exchange(self, uri: str) -> dict[str, Any] | None:
        """This member's view of the exchange ``uri`` on their own node (None: unknown)."""
        for item in self.exchanges():
            if item["id"] == uri:
                return item
        return None

    def provide(self, to: Trader | str, minutes: int, description: str = "") -> httpx.Response:
        """Declare that this member did ``minutes`` of work for ``to``."""
        other = to.actor if isinstance(to, Trader) else to
        return self.api(
            "POST",
            "/api/v1/exchanges",
            json={"beneficiary": other, "minutes": minutes, "description": description or "aide"},
        )

    def receive(self, of: Trader | str, minutes: int, description: str = "") -> httpx.Response:
        """Declare that ``of`` did ``minutes`` of work for this member."""
        other = of.actor if isinstance(of, Trader) else of
        return self.api(
            "POST",
            "/api/v1/exchanges",
            json={"provider": other, "minutes": minutes, "description": description or "aide"},
        )

    def act(self, key: str, action: str, **body: Any) -> httpx.Response:
        return self.api("POST", f"/api/v1/exchanges/{key}/{action}", json=body)

    def wait_exchange(
        self, uri: str, states: tuple[str, ...] | None = None, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Wait until the exchange ``uri`` is on this member's node (in one of ``states``)."""

        def found() -> dict[str, Any] | None:
            item = self.exchange(uri)
            if item is not None and (states is None or item["state"] in states):
                return item
            return None

        seen = wait_for(
            found, timeout, f"{uri} on {self.node.name} in {states or 'any state'}", API_POLL
        )
        return dict(seen)


# -- the two ledgers agree -------------------------------------------------------------------


def ledger_of(node: NodeProcess) -> dict[str, Any]:
    """What the node's database says: balances, and the checks every ledger must pass."""
    accounts = {
        key: (balance, partner)
        for key, balance, partner in node.sql(
            "SELECT key, balance, partner_actor_uri FROM clearing_accounts"
        )
    }
    replayed = dict(
        node.sql(
            "SELECT a.key, COALESCE(SUM(e.amount), 0) FROM clearing_accounts a "
            "LEFT JOIN clearing_entries e ON e.account_id = a.id GROUP BY a.key"
        )
    )
    unbalanced = node.sql(
        "SELECT transaction_id, SUM(amount) FROM clearing_entries "
        "GROUP BY transaction_id HAVING SUM(amount) <> 0"
    )
    references: dict[str, set[str]] = {}
    for partner, reference in node.sql(
        "SELECT DISTINCT a.partner_actor_uri, t.reference FROM clearing_entries e "
        "JOIN clearing_accounts a ON a.id = e.account_id "
        "JOIN clearing_transactions t ON t.id = e.transaction_id "
        "WHERE a.partner_actor_uri IS NOT NULL"
    ):
        references.setdefault(partner, set()).add(reference)
    return {
        "balances": {key: balance for key, (balance, _) in accounts.items()},
        "mirrors": {p: balance for _, (balance, p) in accounts.items() if p is not None},
        "replayed": replayed,
        "unbalanced": unbalanced,
        "references": references,
        "exchanges": dict(node.sql("SELECT uri, state FROM clearing_exchanges")),
        "pending_holds": node.sql("SELECT COUNT(*) FROM clearing_holds WHERE state = 'pending'")[0][
            0
        ],
        "prepared": node.sql("SELECT uri FROM clearing_settlements WHERE state = 'prepared'"),
    }


_IN_FLIGHT = {
    "settling": "{} settling",
    "prepared": "settlement {} prepared",
    "holds": "{} pending holds",
}


def in_flight(*nodes: NodeProcess) -> list[str]:
    """What is not decided yet: exchanges settling, settlements prepared, holds pending (one
    query per node: `wait_settled` asks often)."""
    waiting = []
    for node in nodes:
        found = node.sql(
            "SELECT 'settling', uri FROM clearing_exchanges WHERE state = 'settling' "
            "UNION ALL SELECT 'prepared', uri FROM clearing_settlements WHERE state = 'prepared' "
            "UNION ALL SELECT 'holds', CAST(COUNT(*) AS TEXT) FROM clearing_holds "
            "WHERE state = 'pending' HAVING COUNT(*) > 0"
        )
        waiting += [f"{node.name}: " + _IN_FLIGHT[what].format(value) for what, value in found]
    return waiting


def pending_deliveries(node: NodeProcess) -> int:
    return int(
        node.sql("SELECT COUNT(*) FROM jobs WHERE kind = 'deliver' AND state = 'pending'")[0][0]
    )


def wait_settled(*nodes: NodeProcess, timeout: float = 60.0, quiet: bool = False) -> None:
    """Wait until nothing is in flight between ``nodes``; with ``quiet``, until their delivery
    queues are empty too (late duplicates delivered, hosts paused after failures resumed), so
    that the next test starts from a calm network."""

    def waiting() -> list[str]:
        busy = in_flight(*nodes)
        if quiet:
            busy += [f"{n.name}: deliveries pending" for n in nodes if pending_deliveries(n)]
        return busy

    deadline, pause = time.monotonic() + timeout, launcher.pauses(longest=QUICK_POLL)
    while waiting():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n.name}\n{n.log_text()[-4000:]}" for n in nodes)
            raise AssertionError(f"still in flight after {timeout}s: {waiting()}\n{logs}")
        time.sleep(next(pause))


def assert_ledgers_agree(*nodes: NodeProcess) -> None:
    """Each ledger sums to zero and replays from its entries; for every pair of partners,
    the mirror accounts are opposite and record the same settlements; every exchange both
    nodes know is posted on both or on neither."""
    ledgers = {node.name: ledger_of(node) for node in nodes}
    for node in nodes:
        ledger = ledgers[node.name]
        summary = node.api("GET", "/api/v1/ledger/summary").json()
        assert summary["sum_minutes"] == 0, (node.name, summary)
        assert sum(ledger["balances"].values()) == 0, (node.name, ledger["balances"])
        assert ledger["balances"] == ledger["replayed"], (node.name, "entries do not replay")
        assert ledger["unbalanced"] == [], (node.name, ledger["unbalanced"])
    for a in nodes:
        for b in nodes:
            if a is b or b.chamber() not in ledgers[a.name]["mirrors"]:
                continue
            if a.chamber() not in ledgers[b.name]["mirrors"]:
                continue
            mine, theirs = ledgers[a.name], ledgers[b.name]
            assert mine["mirrors"][b.chamber()] == -theirs["mirrors"][a.chamber()], (
                f"{a.name}'s account of {b.name} is {mine['mirrors'][b.chamber()]}, "
                f"{b.name}'s account of {a.name} is {theirs['mirrors'][a.chamber()]}"
            )
            assert mine["references"].get(b.chamber(), set()) == theirs["references"].get(
                a.chamber(), set()
            ), f"{a.name} and {b.name} do not record the same settlements"
            for uri, state in mine["exchanges"].items():
                other = theirs["exchanges"].get(uri)
                if other is not None:
                    assert (state == "posted") == (other == "posted"), (
                        f"{uri}: {state} on {a.name}, {other} on {b.name}"
                    )
