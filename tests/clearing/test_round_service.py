"""Clearing rounds between three chambers in one process (the harness's ``archipelago``).

Lille's database is the parametrised one (SQLite, then PostgreSQL when configured), Gand's is
on the same engine, Roubaix's is SQLite; the three share one clock the tests move. Positions
are written straight into both ledgers, as settled exchanges leave them; the round's
activities travel through the real inboxes and delivery jobs.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette

from node.activitypub.models import StoredActivity
from node.activitypub.outbox import deliver_again
from node.clearing.ledger.models import partner_account_key
from node.clearing.partners.models import Partner
from node.clearing.rounds.models import ClearingRound, ParticipantState
from node.clearing.rounds.protocol import (
    RoundState,
)
from node.clearing.rounds.review import verify_round
from node.clearing.rounds.service import RoundNotFound, RoundRequestError
from node.cli import main
from node.cli.rounds import add_round_commands
from node.db import read_only, session_scope
from node.web import rounds
from node.web.errors import exception_handlers
from tests.clearing._chambers import ClearingChamber, chamber_uri, open_accounts, owe, post
from tests.harness.chambers import Archipelago
from tests.harness.clock import Clock
from tests.harness.plugin import OpenArchipelago

HOUR = 60
LILLE, GAND, ROUBAIX = (chamber_uri(n) for n in ("lille", "gand", "roubaix"))


NAMES = ("lille", "gand", "roubaix")
CREDIT_LINE = 20 * 60


@pytest.fixture
async def world(archipelago: OpenArchipelago, clock: Clock) -> AsyncIterator[Archipelago]:
    """Lille, Gand and Roubaix, partners of one another with ``CREDIT_LINE`` each way."""
    async with archipelago(*NAMES, clock=clock, kind=ClearingChamber) as chambers:
        for name, chamber in chambers.chambers.items():
            await open_accounts(chamber, [n for n in NAMES if n != name], CREDIT_LINE)
        yield chambers


async def three_cycle(world: Archipelago, minutes: int = 5 * HOUR) -> None:
    await owe(world, "lille", "roubaix", minutes)
    await owe(world, "roubaix", "gand", minutes)
    await owe(world, "gand", "lille", minutes)


async def round_row(chamber: ClearingChamber, uri: str) -> ClearingRound:
    async with read_only(chamber.federation.sessionmaker) as session:
        row = (
            await session.execute(select(ClearingRound).where(ClearingRound.uri == uri))
        ).scalar_one()
        return row


async def states(world: Archipelago, uri: str) -> dict[str, str]:
    return {name: (await round_row(c, uri)).state for name, c in world.chambers.items()}


async def assert_ledgers_sound(world: Archipelago) -> None:
    """Each ledger sums to zero and replays to its balances; every pair of mirrors is opposite."""
    for chamber in world.chambers.values():
        assert sum((await chamber.balances()).values()) == 0
        assert await chamber.entries_replay_to_balances()
    for a in world.chambers.values():
        for b in world.chambers.values():
            if a is not b:
                assert await a.mirror(b) == -(await b.mirror(a))


def activity_type(body: dict[str, Any] | None) -> tuple[str, str]:
    """(type, the round state it carries) of a request's activity."""
    if body is None:
        return ("", "")
    obj = body.get("object")
    return (str(body.get("type")), str(obj.get("state", "")) if isinstance(obj, dict) else "")


# --- the 3-cycle -----------------------------------------------------------------------------


async def test_a_round_on_the_three_cycle_brings_every_position_to_zero(
    world: Archipelago,
) -> None:
    await three_cycle(world)
    before = {name: (await c.balances())["commons"] for name, c in world.chambers.items()}

    summary = await world["lille"].rounds.propose_round()
    assert summary.state == RoundState.COLLECTING
    assert summary.participants == tuple(sorted([LILLE, GAND, ROUBAIX]))
    await world.settle()

    assert await states(world, summary.uri) == dict.fromkeys(world.chambers, "committed")
    for chamber in world.chambers.values():
        balances = await chamber.balances()
        assert {k: v for k, v in balances.items() if k.startswith("chamber:")} == {
            partner_account_key(o.uri): 0 for o in world.chambers.values() if o is not chamber
        }
        assert balances["commons"] == before[chamber.name]  # members' side never moves
        transactions = await chamber.round_transactions()
        assert [t.reference for t in transactions] == [summary.uri]
    await assert_ledgers_sound(world)

    async with read_only(world["gand"].federation.sessionmaker) as session:
        detail = await world["gand"].rounds.get_round(session, summary.uri)
    assert detail.summary.role == "participant"
    assert (detail.summary.total_before, detail.summary.total_after) == (15 * HOUR, 0)
    assert detail.changes == {LILLE: -5 * HOUR, ROUBAIX: 5 * HOUR}
    assert {p.chamber: p.state for p in detail.participants} == {
        LILLE: ParticipantState.STATED,
        GAND: ParticipantState.SIGNED,
        ROUBAIX: ParticipantState.SIGNED,
    }
    assert next(p for p in detail.participants if p.chamber == GAND).positions == {
        LILLE: 5 * HOUR,
        ROUBAIX: -5 * HOUR,
    }
    assert detail.as_json()["netted_minutes"] == 15 * HOUR


async def test_every_chamber_serves_a_round_anyone_can_verify(world: Archipelago) -> None:
    await three_cycle(world)
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    actors = [
        (await world["lille"].federation.get_remote_actor(GAND)).document,
        (await world["lille"].federation.get_remote_actor(ROUBAIX)).document,
        (await world["gand"].federation.get_remote_actor(LILLE)).document,
    ]
    documents = []
    for chamber in world.chambers.values():
        async with read_only(chamber.federation.sessionmaker) as session:
            documents.append((await chamber.rounds.get_round(session, uri)).document)
    assert documents[0] == documents[1] == documents[2]
    verification = verify_round(documents[0], actors)
    assert verification.ok, verification.problems
    assert verification.state == RoundState.COMMITTED
    assert verification.changes(ROUBAIX) == {GAND: -5 * HOUR, LILLE: 5 * HOUR}
    tampered = dict(documents[0], decision=dict(documents[0]["decision"], published="x"))
    assert not verify_round(tampered, actors).ok


async def test_an_uneven_cycle_cancels_its_smallest_debt_around(world: Archipelago) -> None:
    await owe(world, "lille", "roubaix", 5 * HOUR)
    await owe(world, "roubaix", "gand", 3 * HOUR)
    await owe(world, "gand", "lille", 4 * HOUR)
    uri = (await world["roubaix"].rounds.propose_round()).uri
    await world.settle()
    assert set((await states(world, uri)).values()) == {"committed"}
    assert await world["lille"].mirror(world["roubaix"]) == 2 * HOUR  # Lille still owes 2 h
    assert await world["roubaix"].mirror(world["gand"]) == 0
    assert await world["gand"].mirror(world["lille"]) == 1 * HOUR  # Gand still owes 1 h
    await assert_ledgers_sound(world)


async def test_a_chain_without_cycle_is_aborted_and_nothing_is_posted(
    world: Archipelago,
) -> None:
    await owe(world, "lille", "roubaix", HOUR)
    await owe(world, "roubaix", "gand", HOUR)
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    assert await states(world, uri) == dict.fromkeys(world.chambers, "aborted")
    assert (
        await round_row(world["gand"], uri)
    ).reason == "no cycle of debt between the participants"
    for chamber in world.chambers.values():
        assert await chamber.round_transactions() == []


# --- refusals, deadlines, lost messages ------------------------------------------------------


async def test_a_position_paid_back_before_the_review_makes_the_participant_refuse(
    world: Archipelago,
) -> None:
    await three_cycle(world)
    refusal_seen: list[str] = []

    def record_refusals(request: httpx.Request, body: dict[str, Any] | None) -> int | None:
        if activity_type(body) == ("Reject", ""):
            refusal_seen.append(str(body and body.get("content")))
        return None

    world.network.intercept = record_refusals
    uri = (await world["lille"].rounds.propose_round()).uri
    # Deliver the invitations and statements only: stop before Gand reviews the proposal.
    await world["lille"].worker.run_once()
    for name in ("gand", "roubaix"):
        await world[name].worker.run_once()
    await world["lille"].worker.run_once()
    assert (await round_row(world["lille"], uri)).state == "proposed"
    # Meanwhile Roubaix paid back its debt to Gand (a settlement on both sides).
    await owe(world, "gand", "roubaix", 5 * HOUR)
    await world.settle()

    assert await states(world, uri) == dict.fromkeys(world.chambers, "aborted")
    assert refusal_seen and "positions changed since the statement" in refusal_seen[0]
    assert " refused: " in (await round_row(world["lille"], uri)).reason
    for chamber in world.chambers.values():
        assert await chamber.round_transactions() == []
    await assert_ledgers_sound(world)


async def test_a_silent_participant_makes_the_round_abort_at_the_deadline(
    world: Archipelago,
) -> None:
    await three_cycle(world)
    world.network.intercept = lambda request, body: 503 if request.url.host == "gand.test" else None
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    assert (await round_row(world["lille"], uri)).state == "collecting"
    assert (await round_row(world["roubaix"], uri)).state == "collecting"
    world.clock.advance(hours=1, seconds=1)
    await world.settle()
    lille = await round_row(world["lille"], uri)
    assert lille.state == "aborted" and GAND in lille.reason
    assert (await round_row(world["roubaix"], uri)).state == "aborted"
    for chamber in world.chambers.values():
        assert await chamber.round_transactions() == []


async def test_a_lost_commit_is_asked_for_again_after_the_deadline(world: Archipelago) -> None:
    """The Undo pattern: Gand signed, its copy of the commit is lost for good; at the deadline
    Gand asks Lille, which sends its decision again, and Gand posts."""
    await three_cycle(world)
    lost: list[str] = []

    def lose_the_commit_to_gand(request: httpx.Request, body: dict[str, Any] | None) -> int | None:
        if request.url.host == "gand.test" and activity_type(body) == ("Update", "committed"):
            if not lost:
                lost.append(str(body and body["id"]))
                return 400  # refused: the delivery job gives up
        return None

    world.network.intercept = lose_the_commit_to_gand
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    assert lost
    assert await states(world, uri) == {
        "lille": "committed",
        "gand": "signed",
        "roubaix": "committed",
    }
    assert await world["gand"].round_transactions() == []

    world.clock.advance(hours=1, seconds=1)
    await world.settle()
    assert await states(world, uri) == dict.fromkeys(world.chambers, "committed")
    assert len(await world["gand"].round_transactions()) == 1
    assert [b["type"] for b in world.network.sent if b.get("type") == "Undo"] == ["Undo"]
    await assert_ledgers_sound(world)


async def test_an_undo_before_the_decision_aborts_the_round_for_everyone(
    world: Archipelago,
) -> None:
    """Gand's clock runs fast: its deadline passes before Lille has every signature."""
    await three_cycle(world)

    def hold_roubaix_signature(request: httpx.Request, body: dict[str, Any] | None) -> int | None:
        if request.url.host == "lille.test" and body and body.get("actor") == ROUBAIX:
            if body.get("type") == "Accept":
                return 503
        return None

    world.network.intercept = hold_roubaix_signature
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    assert await states(world, uri) == {"lille": "proposed", "gand": "signed", "roubaix": "signed"}
    # Gand's clock is ahead: for Gand the deadline has passed, and its job runs.
    async with session_scope(world["gand"].federation.sessionmaker) as session:
        row = (
            await session.execute(select(ClearingRound).where(ClearingRound.uri == uri))
        ).scalar_one()
        row.deadline = world.clock.now - timedelta(seconds=1)
    await world["gand"].rounds.on_deadline(uri)
    await world.settle()
    assert (await round_row(world["lille"], uri)).state == "aborted"
    assert "withdrew" in (await round_row(world["lille"], uri)).reason
    assert (await round_row(world["gand"], uri)).state == "aborted"
    # Roubaix's signature finally arrives: too late, it learns the abort.
    world.network.intercept = None
    world.clock.advance(minutes=10)
    await world.settle()
    assert await states(world, uri) == dict.fromkeys(world.chambers, "aborted")
    for chamber in world.chambers.values():
        assert await chamber.round_transactions() == []


async def test_a_participant_that_is_not_a_partner_declines(world: Archipelago) -> None:
    async with session_scope(world["roubaix"].federation.sessionmaker) as session:
        partner = (
            await session.execute(select(Partner).where(Partner.chamber_uri == LILLE))
        ).scalar_one()
        await session.delete(partner)
    await three_cycle(world)
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    assert await states(world, uri) == dict.fromkeys(world.chambers, "aborted")
    assert "is not a partner" in (await round_row(world["lille"], uri)).reason


# --- duplicates and concurrency --------------------------------------------------------------


async def test_a_replayed_commit_posts_nothing_more(world: Archipelago) -> None:
    await three_cycle(world)
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    balances = {name: await c.balances() for name, c in world.chambers.items()}
    async with session_scope(world["lille"].federation.sessionmaker) as session:
        row = (
            await session.execute(select(ClearingRound).where(ClearingRound.uri == uri))
        ).scalar_one()
        decision = (
            await session.execute(
                select(StoredActivity).where(StoredActivity.activity_id == row.decision_activity_id)
            )
        ).scalar_one()
        for name in ("gand", "roubaix"):
            await deliver_again(
                world["lille"].federation, session, decision, f"https://{name}.test/inbox"
            )
    await world.settle()
    assert {name: await c.balances() for name, c in world.chambers.items()} == balances
    for chamber in world.chambers.values():
        assert len(await chamber.round_transactions()) == 1


async def test_signatures_arriving_together_commit_once(world: Archipelago) -> None:
    await three_cycle(world)
    uri = (await world["lille"].rounds.propose_round()).uri
    await world["lille"].worker.run_once()  # invitations
    await asyncio.gather(world["gand"].worker.run_once(), world["roubaix"].worker.run_once())
    await world["lille"].worker.run_once()  # the proposal
    await asyncio.gather(world["gand"].worker.run_once(), world["roubaix"].worker.run_once())
    # Both reviews done: two signatures queued; deliver them at the same time.
    await asyncio.gather(world["gand"].worker.run_once(), world["roubaix"].worker.run_once())
    await world.settle()
    assert await states(world, uri) == dict.fromkeys(world.chambers, "committed")
    for chamber in world.chambers.values():
        assert len(await chamber.round_transactions()) == 1
    await assert_ledgers_sound(world)


# --- proposing and reading -------------------------------------------------------------------


async def test_a_round_needs_two_partners_that_exist(world: Archipelago) -> None:
    with pytest.raises(RoundRequestError, match="at least two partner"):
        await world["lille"].rounds.propose_round([GAND])
    with pytest.raises(RoundRequestError, match="not partner chambers: https://x.test/a"):
        await world["lille"].rounds.propose_round([GAND, "https://x.test/a"])


async def test_rounds_are_listed_newest_first(world: Archipelago) -> None:
    await three_cycle(world)
    first = await world["lille"].rounds.propose_round([GAND, ROUBAIX])
    await world.settle()
    await owe(world, "lille", "gand", HOUR)
    second = await world["lille"].rounds.propose_round()
    async with read_only(world["lille"].federation.sessionmaker) as session:
        listed = await world["lille"].rounds.list_rounds(session)
        committed = await world["lille"].rounds.list_rounds(session, state="committed")
        with pytest.raises(RoundNotFound):
            await world["lille"].rounds.get_round(session, "https://lille.test/rounds/nope")
    assert [r.uri for r in listed] == [second.uri, first.uri]
    assert [r.uri for r in committed] == [first.uri]
    assert listed[1].as_json()["state"] == "committed"
    assert listed[0].as_json()["decided_at"] is None


async def test_a_settlement_in_flight_at_the_statements_is_not_netted(
    world: Archipelago,
) -> None:
    """Gand owes Lille 2 h more: Lille (the decider) has posted it, Gand has not yet. The
    statements disagree; only the 5 h both show are netted, and once Gand posts its side the
    mirrors are opposite again."""
    await three_cycle(world)
    await post(world["lille"], {partner_account_key(GAND): -2 * HOUR})
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    assert await states(world, uri) == dict.fromkeys(world.chambers, "committed")
    async with read_only(world["roubaix"].federation.sessionmaker) as session:
        detail = await world["roubaix"].rounds.get_round(session, uri)
    assert detail.mismatches == [{"chambers": [GAND, LILLE], "balances": [5 * HOUR, -7 * HOUR]}]
    assert await world["lille"].mirror(world["gand"]) == -2 * HOUR
    await post(world["gand"], {partner_account_key(LILLE): 2 * HOUR})  # the preparer finishes
    assert await world["gand"].mirror(world["lille"]) == 2 * HOUR
    await assert_ledgers_sound(world)


async def test_a_settlement_during_the_round_stays_on_top_of_it(world: Archipelago) -> None:
    """Gand owes Lille 2 h more, posted on both sides between the statements and the commit:
    the round's deltas leave it in place on both sides."""
    await three_cycle(world)
    uri = (await world["lille"].rounds.propose_round()).uri
    await world["lille"].worker.run_once()  # invitations: every statement is written
    await owe(world, "gand", "lille", 2 * HOUR)
    await world.settle()
    assert await states(world, uri) == dict.fromkeys(world.chambers, "committed")
    assert await world["lille"].mirror(world["gand"]) == -2 * HOUR
    assert await world["gand"].mirror(world["lille"]) == 2 * HOUR
    await assert_ledgers_sound(world)


# --- the web routes and the CLI --------------------------------------------------------------


async def test_the_round_document_and_api_are_served(world: Archipelago) -> None:

    await three_cycle(world)
    uri = (await world["lille"].rounds.propose_round()).uri
    await world.settle()
    web = Starlette(routes=rounds.routes, exception_handlers=exception_handlers)
    web.state.node = world["lille"].app.state.node
    key = uri.rsplit("/", 1)[1]
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=web), base_url="https://lille.test"
    ) as client:
        document = await client.get(
            f"/rounds/{key}", headers={"Accept": "application/activity+json"}
        )
        assert document.status_code == 200
        assert document.headers["content-type"].startswith("application/activity+json")
        assert document.json()["id"] == uri and document.json()["state"] == "committed"
        assert document.json()["decision"]["object"]["state"] == "committed"
        listed = (await client.get("/api/v1/rounds")).json()["items"]
        assert [(r["id"], r["role"], r["netted_minutes"]) for r in listed] == [
            (uri, "proposer", 15 * HOUR)
        ]
        assert (await client.get("/api/v1/rounds", params={"state": "aborted"})).json() == {
            "items": []
        }
        one = (await client.get(f"/api/v1/rounds/{key}")).json()
        assert one["changes"] == {GAND: 5 * HOUR, ROUBAIX: -5 * HOUR}
        assert len(one["chambers"]) == 3
        assert (await client.get("/api/v1/rounds", params={"uri": uri})).json() == one
        assert (await client.get("/rounds/0123abcd")).status_code == 404
        assert (await client.get("/rounds/not-a-key")).status_code == 404


def test_the_round_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = str(tmp_path / "data")
    assert main(["init", "--data-dir", data, "--url", "https://lille.test", "--name", "L"]) == 0
    parser = argparse.ArgumentParser(prog="archipel")
    add_round_commands(parser.add_subparsers(dest="command", required=True))
    capsys.readouterr()

    def run(*argv: str) -> str:
        args = parser.parse_args(list(argv))
        args.func(args)
        return capsys.readouterr().out

    assert run("round", "list", "--data-dir", data) == "no rounds yet\n"
    assert run("round", "list", "--data-dir", data, "--json") == "[]\n"
    with pytest.raises(SystemExit, match="error: a round needs at least two partner chambers"):
        run("round", "propose", "--data-dir", data)
    with pytest.raises(SystemExit, match="error: no partner chamber '@gand@gand.test'"):
        run("round", "propose", "--data-dir", data, "--partner", "@gand@gand.test")
    with pytest.raises(SystemExit, match="error: no round"):
        run("round", "show", "--data-dir", data, "https://lille.test/rounds/x")
