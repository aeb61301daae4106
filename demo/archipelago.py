"""A local archipelago of three chambers (Lille, Gand, Roubaix) on 127.0.0.1: ``make demo``.

Each chamber is a real ``archipel serve`` process with its own data directory, set up the way
administrators and members would: ``archipel init`` (the first sample member is the
administrator), ``member add``, ``clearing grant``, ``token create``, ``follow`` and
``partner add`` for the administrators' part; the JSON API for the members' part (bricks,
exchanges inside a chamber and between chambers, each accepted on the counterparty's own node
and settled by the two chambers). Then it prints what to open and runs until Ctrl-C.

The data is rebuilt at every start (``./demo-data`` by default, removed first; ``--keep``
starts the chambers already there instead). ``--check`` builds the archipelago on free ports
in a temporary directory, checks it (pages answer, bricks federated, cross-chamber exchanges
posted in both ledgers, mirror accounts opposite, every ledger sums to zero), stops it and
exits 0 — the test suite runs it.

    python -m demo.archipelago [--base-port 8101] [--data demo-data] [--keep]
    python -m demo.archipelago --check [--base-port N]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from demo.chambers import (
    STOPPING,
    Chamber,
    DemoError,
    free_port,
    port_is_free,
    stop_all,
    wait_for,
)
from demo.launcher import http_get

T = TypeVar("T")

DEFAULT_BASE_PORT = 8101
PASSWORD = "archipel-demo"
#: How far each chamber lets each of the two others owe it (10 h), set on both sides.
CREDIT_LINE_MINUTES = 600
#: Written in the data directory: marks it as the demo's (safe to remove) and records ports.
MARKER = "archipelago.json"
SETTLE_TIMEOUT = 90.0

CHAMBERS: list[dict[str, Any]] = [
    {
        "name": "lille",
        "title": "Chambre des communs de Lille",
        "description": "La chambre des communs de la métropole lilloise (démo).",
        "language": "fr",
        "members": [("marie", "Marie Dubois"), ("jean", "Jean Lefebvre")],
    },
    {
        "name": "gand",
        "title": "Kamer van de commons Gent",
        "description": "De commonskamer van Gent — la chambre de Gand (demo).",
        "language": "nl",
        "members": [("piet", "Piet Claes"), ("lotte", "Lotte Peeters")],
    },
    {
        "name": "roubaix",
        "title": "Chambre des communs de Roubaix",
        "description": "La chambre des communs de Roubaix (démo).",
        "language": "fr",
        "members": [("amina", "Amina Benali"), ("paul", "Paul Lemaire")],
    },
]

BRICKS: dict[str, dict[str, Any]] = {
    "marie": {
        "title": "Le jardin partagé en trois saisons",
        "category": "methode",
        "summary": "Comment ouvrir un jardin partagé dans un quartier,"
        " de la recherche du terrain à la première récolte.",
        "body": "## Étapes\n\n1. Trouver un terrain\n2. Réunir les voisins\n"
        "3. Écrire une charte\n\n**La charte** d'abord : qui arrose, qui récolte, qui décide.",
        "tags": ["jardin", "quartier"],
    },
    "jean": {
        "title": "Tenir un repair café",
        "category": "methode",
        "summary": "Un samedi par mois, des bénévoles réparent avec les habitants"
        " ce qui serait jeté : l'organisation qui marche à Fives.",
        "body": "Une salle, des tables, un registre des réparations et une caisse à outils"
        " commune. Chaque objet réparé est noté : c'est le savoir du quartier.",
        "tags": ["réparation", "quartier"],
    },
    "piet": {
        "title": "Gedeelde werkplaats — un atelier partagé",
        "category": "analyse",
        "summary": "Ce que trois ans d'atelier partagé à Gand nous ont appris"
        " sur l'entretien des outils communs.",
        "body": "Les outils communs durent plus longtemps quand chacun sait qui les répare.",
        "tags": ["atelier", "outils"],
    },
    "amina": {
        "title": "Les communs, une définition de travail",
        "category": "concept",
        "summary": "Une ressource, une communauté, des règles :"
        " la définition que la chambre de Roubaix utilise.",
        "body": "Un commun associe une **ressource**, une **communauté** et des **règles**.",
        "tags": ["communs"],
    },
}


#: An actor's address (or a mirror account's key) as a link's or a cell's text.
RAW_ACTOR_NAME = re.compile(r">\s*(https?://[^<\s]*/actors/[^<\s]*|chamber:[^<\s]*)\s*<")


@dataclass(frozen=True)
class Trade:
    """``provider`` did ``minutes`` of work for ``beneficiary`` (``chamber/username`` each);
    ``declared_by`` says who declares it, the other accepts it on their own node (unless
    ``accept`` is false: the proposal is left for whoever opens the demo)."""

    provider: str
    beneficiary: str
    minutes: int
    description: str
    declared_by: str = "provider"
    accept: bool = True

    @property
    def cross_chamber(self) -> bool:
        return self.provider.split("/")[0] != self.beneficiary.split("/")[0]


TRADES = [
    # inside a chamber
    Trade("lille/marie", "lille/jean", 90, "Aide au jardin partagé"),
    Trade("gand/lotte", "gand/piet", 120, "Réparation d'un vélo"),
    Trade("roubaix/paul", "roubaix/amina", 60, "Cours de couture", declared_by="beneficiary"),
    # between chambers, in both directions
    Trade("lille/marie", "gand/piet", 120, "Atelier compost à Gand"),
    Trade("gand/lotte", "lille/jean", 90, "Traduction néerlandais-français", "beneficiary"),
    Trade("roubaix/amina", "gand/lotte", 60, "Animation d'une assemblée"),
    Trade("gand/piet", "roubaix/paul", 45, "Affûtage des outils de l'atelier"),
    Trade("lille/jean", "roubaix/amina", 30, "Conseils pour un repair café"),
    # waiting for a visitor: Marie accepts it (or not) on Lille's pages
    Trade("roubaix/paul", "lille/marie", 45, "Relecture d'une brique", accept=False),
]


# -- building ---------------------------------------------------------------------------------


def _in_parallel(function: Callable[[T], Any], items: Iterable[T]) -> list[Any]:
    items = list(items)
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        return list(pool.map(function, items))


class Archipelago:
    """The three chambers and the sample life built on them."""

    def __init__(self, root: Path, ports: list[int], say: Callable[[str], None]) -> None:
        self.root = root
        self.say = say
        self.started = time.monotonic()
        self.chambers = [
            Chamber(
                name=spec["name"],
                title=spec["title"],
                description=spec["description"],
                language=spec["language"],
                port=port,
                root=root,
                members=list(spec["members"]),
            )
            for spec, port in zip(CHAMBERS, ports, strict=True)
        ]
        self.by_name = {c.name: c for c in self.chambers}
        self.bricks: dict[str, str] = {}  # brick id -> home chamber's name
        self.exchanges: dict[Trade, str] = {}  # trade -> exchange id (its URI)

    def step(self, text: str) -> None:
        self.say(f"  [{time.monotonic() - self.started:5.1f} s] {text}")

    def member(self, ref: str) -> tuple[Chamber, str]:
        chamber, username = ref.split("/")
        return self.by_name[chamber], username

    # -- the administrators ----------------------------------------------------------------

    def build(self) -> None:
        def set_up(chamber: Chamber) -> None:
            chamber.init(PASSWORD)
            chamber.start()

        _in_parallel(set_up, self.chambers)
        self.step("three chambers initialised (members, clearing access, tokens) and serving")

        def federate(chamber: Chamber) -> None:
            for other in self.chambers:
                if other is not chamber:
                    chamber.archipel("follow", other.handle)
                    chamber.archipel(
                        "partner add",
                        other.handle,
                        "--credit-line-minutes",
                        str(CREDIT_LINE_MINUTES),
                        "--reason",
                        "chambres sœurs de la démo",
                    )

        _in_parallel(federate, self.chambers)
        for chamber in self.chambers:
            for other in self.chambers:
                if other is not chamber:
                    wait_for(
                        partial(self.follows, other, chamber),
                        30,
                        f"{chamber.name} to accept {other.name}'s follow",
                    )
                    wait_for(
                        partial(self.partnered, chamber, other),
                        30,
                        f"{other.name} to confirm that it has added {chamber.name} too",
                    )
        self.step(
            "each chamber follows the two others and has opened them a credit line of"
            f" {CREDIT_LINE_MINUTES // 60} h (partnerships confirmed both ways)"
        )
        self.publish_bricks()
        self.trade()

    def follows(self, follower: Chamber, chamber: Chamber) -> bool:
        """Whether ``chamber`` has accepted ``follower``'s chamber actor as a follower."""
        page = chamber.api(
            "GET",
            f"/actors/{chamber.name}/followers?page=true",
            headers={"Accept": "application/activity+json"},
        )
        return follower.actor() in page.get("orderedItems", [])

    def partnered(self, chamber: Chamber, other: Chamber) -> bool:
        """Whether ``chamber`` knows that ``other`` has added it as a partner too."""
        listing = chamber.api("GET", "/api/v1/partners")["items"]
        return any(p["chamber"] == other.actor() and p.get("confirmed") for p in listing)

    # -- the members -------------------------------------------------------------------------

    def publish_bricks(self) -> None:
        for author, brick in BRICKS.items():
            home = next(c for c in self.chambers if author in dict(c.members))
            created = home.api("POST", "/api/v1/bricks", as_user=author, json=brick)
            self.bricks[created["id"]] = home.name
        for chamber in self.chambers:
            elsewhere = {b for b, home in self.bricks.items() if home != chamber.name}
            wait_for(
                partial(self.shows_bricks, chamber, elsewhere),
                60,
                f"the other chambers' bricks to reach {chamber.name}",
            )
        self.step(f"{len(BRICKS)} bricks published; each catalogue shows the others' bricks")

    def federated_bricks(self, chamber: Chamber) -> set[str]:
        listing = chamber.api("GET", "/api/v1/bricks?scope=federated")
        return {item["id"] for item in listing["items"]}

    def shows_bricks(self, chamber: Chamber, brick_ids: set[str]) -> bool:
        return brick_ids <= self.federated_bricks(chamber)

    def seen_by(self, ref: str, exchange_id: str) -> dict[str, Any] | None:
        """The exchange ``exchange_id`` as the member ``ref`` sees it on their own node."""
        chamber, username = self.member(ref)
        for item in chamber.api("GET", "/api/v1/exchanges", as_user=username)["items"]:
            if item["id"] == exchange_id:
                return dict(item)
        return None

    def in_state(self, ref: str, exchange_id: str, state: str) -> bool:
        return (self.seen_by(ref, exchange_id) or {}).get("state") == state

    def trade(self) -> None:
        for trade in TRADES:
            declarer = trade.provider if trade.declared_by == "provider" else trade.beneficiary
            other = trade.beneficiary if declarer == trade.provider else trade.provider
            chamber, username = self.member(declarer)
            other_chamber, other_username = self.member(other)
            # a member of the same chamber by username, of another by handle
            counterparty = (
                other_username
                if other_chamber is chamber
                else other_chamber.member_handle(other_username)
            )
            field = "beneficiary" if declarer == trade.provider else "provider"
            declared = chamber.api(
                "POST",
                "/api/v1/exchanges",
                as_user=username,
                json={
                    field: counterparty,
                    "minutes": trade.minutes,
                    "description": trade.description,
                },
            )
            self.exchanges[trade] = declared["id"]
        for trade, exchange_id in self.exchanges.items():
            acceptor = trade.beneficiary if trade.declared_by == "provider" else trade.provider
            proposal = wait_for(
                partial(self.seen_by, acceptor, exchange_id),
                30,
                f"the proposal {exchange_id} to reach {acceptor}",
            )
            if trade.accept:
                chamber, username = self.member(acceptor)
                chamber.api("POST", f"/api/v1/exchanges/{proposal['key']}/accept", as_user=username)
        for trade, exchange_id in self.exchanges.items():
            if trade.accept:
                for ref in (trade.provider, trade.beneficiary):
                    wait_for(
                        partial(self.in_state, ref, exchange_id, "posted"),
                        SETTLE_TIMEOUT,
                        f"{exchange_id} to be posted for {ref}",
                    )
        local = sum(1 for t in TRADES if t.accept and not t.cross_chamber)
        cross = sum(1 for t in TRADES if t.accept and t.cross_chamber)
        self.step(
            f"{local} exchanges inside the chambers and {cross} between them, accepted and"
            " posted in both ledgers; one proposal left waiting"
        )

    # -- checking ------------------------------------------------------------------------------

    def expected_balances(self) -> tuple[dict[str, int], dict[tuple[str, str], int]]:
        """What the trades should have left: each member's balance, and for each pair of
        chambers (a, b) b's account in a's ledger (positive: a owes b)."""
        members: dict[str, int] = {f"{c.name}/{u}": 0 for c in self.chambers for u, _ in c.members}
        mirrors: dict[tuple[str, str], int] = {
            (a.name, b.name): 0 for a in self.chambers for b in self.chambers if a is not b
        }
        for trade in TRADES:
            if not trade.accept:
                continue
            members[trade.provider] += trade.minutes
            members[trade.beneficiary] -= trade.minutes
            if trade.cross_chamber:
                a, b = trade.provider.split("/")[0], trade.beneficiary.split("/")[0]
                mirrors[(a, b)] -= trade.minutes  # b owes a
                mirrors[(b, a)] += trade.minutes
        return members, mirrors

    def check(self) -> None:
        """Raise ``DemoError`` unless everything a visitor is told about holds."""
        for chamber in self.chambers:
            for path in ("/healthz", "/", "/bricks", "/ledger", "/login"):
                response = http_get(chamber.url + path, timeout=10, follow_redirects=True)
                if response.status_code != 200:
                    raise DemoError(f"{chamber.url}{path} answered {response.status_code}")
                raw = RAW_ACTOR_NAME.search(response.text)
                if raw is not None:  # people and chambers are shown by name (issue 15)
                    raise DemoError(f"{chamber.url}{path} names someone {raw.group(1)}")
            elsewhere = {b for b, home in self.bricks.items() if home != chamber.name}
            missing = elsewhere - self.federated_bricks(chamber)
            if missing:
                raise DemoError(f"{chamber.name} does not show the bricks {sorted(missing)}")
        for trade, exchange_id in self.exchanges.items():
            states = {
                ref: (self.seen_by(ref, exchange_id) or {}).get("state")
                for ref in (trade.provider, trade.beneficiary)
            }
            wanted = "posted" if trade.accept else "proposed"
            if set(states.values()) != {wanted}:
                raise DemoError(f"{exchange_id}: {states}, expected {wanted} on both nodes")
        members, mirrors = self.expected_balances()
        for ref, expected in members.items():
            chamber, username = self.member(ref)
            balance = chamber.api("GET", "/api/v1/accounts/me", as_user=username)
            if balance["balance_minutes"] != expected:
                raise DemoError(f"{ref}: balance {balance['balance_minutes']}, expected {expected}")
        for chamber in self.chambers:
            summary = chamber.api("GET", "/api/v1/ledger/summary")
            if summary["sum_minutes"] != 0:
                raise DemoError(f"{chamber.name}'s ledger sums to {summary['sum_minutes']}")
            partners = {p["chamber"]: p for p in chamber.api("GET", "/api/v1/partners")["items"]}
            for other in self.chambers:
                if other is chamber:
                    continue
                mine = partners[other.actor()]["balance_minutes"]
                if mine != mirrors[(chamber.name, other.name)]:
                    raise DemoError(
                        f"{other.name}'s account in {chamber.name}'s ledger is {mine},"
                        f" expected {mirrors[(chamber.name, other.name)]}"
                    )
                theirs = next(
                    p
                    for p in other.api("GET", "/api/v1/partners")["items"]
                    if p["chamber"] == chamber.actor()
                )["balance_minutes"]
                if mine != -theirs:
                    raise DemoError(
                        f"mirror accounts not opposite: {other.name} in {chamber.name}'s ledger"
                        f" {mine}, {chamber.name} in {other.name}'s {theirs}"
                    )
        self.step(
            "checked: pages answer, bricks federated, exchanges posted on both sides,"
            " balances as expected, mirror accounts opposite, every ledger sums to zero"
        )

    # -- telling the visitor -----------------------------------------------------------------

    def guide(self, fresh: bool = True) -> str:
        """What to open; ``fresh``: the sample life was just built (a proposal waits)."""
        width = max(len(c.title) for c in self.chambers)
        lines = ["", "The archipelago is up. Open:"]
        for c in self.chambers:
            lines.append(f"  {c.title:{width}}  {c.url}/")
        lines += ["", "Pages of each chamber (add them to its address):"]
        lines += [
            "  /bricks            the catalogue: its bricks and those of the chambers it follows",
            "  /ledger            the public ledger of the clearing house (sums to zero)",
            "  /clearing          your account, your exchanges, declare one (signed in)",
            "  /admin             the administrators' pages (members, charter, blocks, audit log)",
        ]
        if self.has_partner_pages():
            lines.append("  /admin/partners    partner chambers and the credit lines")
        lines += [
            "  /api/v1/partners   partner chambers, credit lines and mirror balances (JSON)",
            "",
            f"Sign in at /login, every member's password is {PASSWORD!r}:",
        ]
        for c in self.chambers:
            names = ", ".join(u for u, _ in c.members[1:])
            lines.append(f"  {c.name:8} {c.url}/login   {c.admin} (administrator), {names}")
        waiting = [t for t in TRADES if fresh and not t.accept]
        for trade in waiting:
            chamber, username = self.member(trade.beneficiary)
            provider_chamber, provider = self.member(trade.provider)
            lines.append(
                f"\n{username} ({chamber.name}) has a proposal waiting from {provider}"
                f" ({provider_chamber.name}): {trade.description!r}; accept it at"
                f" {chamber.url}/clearing"
            )
        lines += [
            "",
            f"Data and logs: {self.root}/ (rebuilt at every start;"
            " `make demo DEMO_ARGS=--keep` restarts the chambers as they are).",
            "Ctrl-C stops the three chambers.",
        ]
        return "\n".join(lines)

    def has_partner_pages(self) -> bool:
        response = http_get(self.chambers[0].url + "/admin/partners", timeout=10)
        return response.status_code != 404


# -- running --------------------------------------------------------------------------------


def _stop_on_signal(signum: int, frame: FrameType | None) -> None:
    STOPPING.set()
    raise KeyboardInterrupt


def _ports(base: int | None) -> list[int]:
    if base is not None:
        return [base, base + 1, base + 2]
    ports: list[int] = []
    while len(ports) < 3:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


def _prepare(root: Path, ports: list[int], keep: bool) -> bool:
    """Make ``root`` ready; True when the chambers already there are to be reused."""
    marker = root / MARKER
    recorded = json.loads(marker.read_text()) if marker.exists() else {}
    if keep and recorded.get("complete"):
        if recorded.get("ports") != ports:
            raise DemoError(
                f"{root} was built for the ports {recorded.get('ports')}: run with"
                f" --base-port {recorded['ports'][0]} or without --keep"
            )
        return True
    if root.exists():
        if not marker.exists() and any(root.iterdir()):
            raise DemoError(f"{root} exists and was not made by the demo: choose another --data")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    marker.write_text(json.dumps({"ports": ports, "complete": False}) + "\n")
    return False


def _mark_complete(root: Path) -> None:
    """The sample life is all there: ``--keep`` may reuse this directory."""
    marker = root / MARKER
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "complete": True}) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m demo.archipelago",
        description="Three chambers (Lille, Gand, Roubaix) on 127.0.0.1, until Ctrl-C.",
    )
    parser.add_argument(
        "--base-port",
        type=int,
        help=f"Lille's port, Gand and Roubaix on the next two (default {DEFAULT_BASE_PORT};"
        " with --check: three free ports)",
    )
    parser.add_argument("--data", help="the data directory (default ./demo-data)")
    parser.add_argument(
        "--keep", action="store_true", help="start the chambers already in --data, as they are"
    )
    parser.add_argument("--check", action="store_true", help="build, check, stop (for tests)")
    args = parser.parse_args(argv)

    if args.check:
        ports = _ports(args.base_port)
        root = Path(args.data or tempfile.mkdtemp(prefix="archipel-demo-")).resolve()
    else:
        ports = _ports(args.base_port or DEFAULT_BASE_PORT)
        root = Path(args.data or "demo-data").resolve()
    taken = [p for p in ports if not port_is_free(p)]
    if taken:
        print(
            f"port {', '.join(map(str, taken))} is in use (another demo?); choose others with"
            " --base-port N (make demo DEMO_PORT=N)",
            file=sys.stderr,
        )
        return 1
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)

    archipelago = Archipelago(root, ports, say=lambda text: print(text, flush=True))
    failed, up = True, False
    try:
        reuse = _prepare(root, ports, keep=args.keep and not args.check)
        if reuse:
            print(f"Starting the three chambers already in {root}", flush=True)
            _in_parallel(lambda c: c.start(), archipelago.chambers)
            archipelago.step("the chambers already there are serving again")
        else:
            print(f"Building an archipelago of three chambers in {root}", flush=True)
            archipelago.build()
            archipelago.check()
            _mark_complete(root)
        if args.check:
            failed = False
            return 0
        print(archipelago.guide(fresh=not reuse), flush=True)
        up = True
        while True:
            time.sleep(1)
            for chamber in archipelago.chambers:
                if not chamber.running:
                    raise DemoError(f"{chamber.name} stopped; its log:\n{chamber.log_tail()}")
    except KeyboardInterrupt:
        failed = not up
        return 0 if up else 130
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        if args.check:
            for chamber in archipelago.chambers:
                print(f"--- {chamber.log_path}\n{chamber.log_tail()}", file=sys.stderr)
            print(f"demo: data and logs kept in {root}", file=sys.stderr)
        return 1
    finally:
        # Ctrl-C while stopping should not leave processes behind: ignore it from now on.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        print("Stopping the three chambers...", flush=True)
        stop_all(archipelago.chambers)
        print("Stopped.", flush=True)
        if args.check and not args.data and not failed:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
