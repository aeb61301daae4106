"""Reconciliation between two real apps (Lille and Gand), each on its own database.

The two apps talk over HTTP through ASGI (the harness's `HostRouter` routes each host to its
app): a statement is published, delivered by Lille's worker to Gand's inbox (HTTP signature,
actor fetched back from Lille), compared there, answered, and the answer delivered back. Ledgers
are written as rows (a mirror entry and its counter-entry per reference) to simulate what
settlements and rounds post.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from node.activitypub.actors import get_local_actor
from node.activitypub.models import StoredActivity
from node.clearing.ledger.models import (
    COMMONS_FUND_KEY,
    ClearingAccount,
    ClearingEntry,
    ClearingTransaction,
    partner_account_key,
)
from node.clearing.ledger.rules import AccountKind
from node.clearing.partners.models import Hold, Partner, Settlement, SettlementState
from node.clearing.reconciliation import service as reconciliation_service
from node.clearing.reconciliation.models import Reconciliation
from node.clearing.reconciliation.service import (
    RECONCILE_JOB,
    UnknownPartner,
)
from node.cli.reconciliation import add_reconciliation_commands
from node.config import Settings
from node.db import read_only, session_scope, utcnow
from node.jobs import Job, JobState
from node.members.models import AuditEntry
from tests.clearing._chambers import ClearingChamber
from tests.harness.chambers import Chamber
from tests.harness.network import HostRouter
from tests.harness.plugin import OpenArchipelago

LILLE = "https://lille.test/actors/lille"
GAND = "https://gand.test/actors/gand"
S1 = "https://gand.test/settlements/s1"
S2 = "https://lille.test/settlements/s2"
S3 = "https://gand.test/settlements/s3"
S4 = "https://lille.test/settlements/s4"
S5 = "https://gand.test/settlements/s5"


# --- two chambers -----------------------------------------------------------------------------


@dataclass
class Pair:
    lille: ClearingChamber
    gand: ClearingChamber
    network: HostRouter

    async def exchange_statements(self) -> None:
        """Lille sends; Gand compares and answers; Lille compares the answer."""
        await self.lille.reconciler.send_statements()
        await self.lille.deliver()
        await self.gand.deliver()


@pytest.fixture
async def pair(settings: Settings, archipelago: OpenArchipelago) -> AsyncIterator[Pair]:
    async with archipelago(settings, "gand", kind=ClearingChamber) as world:
        lille, gand = world["lille"], world["gand"]
        await add_partner(lille, gand, "Gand")
        await add_partner(gand, lille, "Lille")
        yield Pair(lille, gand, world.network)


async def add_partner(chamber: Chamber, other: Chamber, name: str) -> None:
    async with session_scope(chamber.node.sessionmaker) as session:
        account = ClearingAccount(
            key=partner_account_key(other.uri),
            kind=AccountKind.CHAMBER.value,
            partner_actor_uri=other.uri,
            balance=0,
        )
        session.add(account)
        session.add(
            ClearingAccount(key=COMMONS_FUND_KEY, kind=AccountKind.COMMONS_FUND.value, balance=0)
        )
        await session.flush()
        session.add(
            Partner(
                chamber_uri=other.uri,
                inbox=f"{other.settings.url}/inbox",
                name=name,
                credit_line_minutes=600,
                account_id=account.id,
            )
        )


async def post(
    chamber: Chamber, partner: str, reference: str | None, minutes: int, at: datetime
) -> int:
    """One mirror entry for ``reference`` (and its counter-entry in the commons fund)."""
    async with session_scope(chamber.node.sessionmaker) as session:
        mirror = (
            await session.execute(
                select(ClearingAccount).where(ClearingAccount.key == partner_account_key(partner))
            )
        ).scalar_one()
        commons = (
            await session.execute(
                select(ClearingAccount).where(ClearingAccount.key == COMMONS_FUND_KEY)
            )
        ).scalar_one()
        row = ClearingTransaction(kind="exchange", reference=reference, memo="", posted_at=at)
        session.add(row)
        await session.flush()
        for account, amount in ((mirror, minutes), (commons, -minutes)):
            account.balance += amount
            session.add(
                ClearingEntry(
                    transaction_id=row.id,
                    account_id=account.id,
                    amount=amount,
                    balance_after=account.balance,
                    posted_at=at,
                )
            )
        return row.id


async def settlement(
    chamber: Chamber,
    partner: str,
    uri: str,
    state: str,
    *,
    held: int | None = None,
    reason: str = "",
    at: datetime | None = None,
    decided_at: datetime | None = None,
) -> None:
    at = at or utcnow() - timedelta(minutes=30)
    async with session_scope(chamber.node.sessionmaker) as session:
        row = Settlement(
            uri=uri,
            exchange_id=None,
            role="preparer",
            partner_uri=partner,
            state=state,
            minutes=abs(held or 60),
            deadline=at + timedelta(minutes=10),
            reason=reason,
            evidence={},
            created_at=at,
            updated_at=at,
            decided_at=None if state == SettlementState.PREPARED else decided_at or at,
        )
        session.add(row)
        await session.flush()
        if held is not None:
            mirror = (
                await session.execute(
                    select(ClearingAccount.id).where(
                        ClearingAccount.key == partner_account_key(partner)
                    )
                )
            ).scalar_one()
            session.add(Hold(settlement_id=row.id, account_id=mirror, amount=held))


async def status(chamber: Chamber) -> Any:
    async with read_only(chamber.node.sessionmaker) as session:
        (view,) = await chamber.reconciler.status(session)
    return view


async def audit(chamber: Chamber, action: str | None = None) -> list[AuditEntry]:
    async with read_only(chamber.node.sessionmaker) as session:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        return list((await session.execute(query)).scalars())


async def count(chamber: Chamber, model: Any, *where: Any) -> int:
    async with read_only(chamber.node.sessionmaker) as session:
        query = select(func.count()).select_from(model)
        if where:
            query = query.where(*where)
        return int((await session.execute(query)).scalar_one())


def an_hour_ago() -> datetime:
    return utcnow() - timedelta(hours=1)


# --- agreeing ---------------------------------------------------------------------------------


async def test_statements_agree_and_both_chambers_hold_a_report(pair: Pair) -> None:
    at = an_hour_ago()
    await post(pair.lille, GAND, S1, 120, at)
    await post(pair.gand, LILLE, S1, -120, at)
    await post(pair.lille, GAND, S2, -30, at)
    await post(pair.gand, LILLE, S2, 30, at)

    sent = await pair.lille.reconciler.send_statements()
    assert [(s.partner, s.balance, s.entries, s.pending) for s in sent] == [(GAND, 90, 2, 0)]
    await pair.lille.deliver()
    await pair.gand.deliver()

    lille, gand = await status(pair.lille), await status(pair.gand)
    assert (lille.status, gand.status) == ("ok", "ok")
    assert (lille.our_balance, lille.their_balance) == (90, -90)
    assert (gand.our_balance, gand.their_balance) == (-90, 90)
    assert lille.mismatches == gand.mismatches == ()
    assert "balances agree" in lille.summary and "Gand's account here +1 h 30" in lille.summary
    # Each holds the other's signed statement: Gand's answer replies to Lille's statement.
    assert lille.sent_activity_id == gand.received_activity_id
    assert gand.sent_activity_id == lille.received_activity_id
    async with read_only(pair.lille.node.sessionmaker) as session:
        answer = (
            await session.execute(
                select(StoredActivity).where(
                    StoredActivity.activity_id == lille.received_activity_id
                )
            )
        ).scalar_one()
    document = answer.document
    assert document["type"] == "Add" and document["actor"] == GAND
    assert document["proof"]["cryptosuite"] == "eddsa-jcs-2022"
    assert document["object"]["type"] == "AccountStatement"
    assert document["object"]["inReplyTo"] == f"{lille.sent_activity_id}#statement"
    assert document["object"]["endTime"] == lille.sent_as_of.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert [e["reference"] for e in document["object"]["entries"]] == sorted([S1, S2])
    assert await audit(pair.lille) == [] and await audit(pair.gand) == []
    # An answer is not answered again: two statements in all.
    assert len(pair.network.posts) == 2
    assert lille.to_json()["status"] == "ok"


# --- a mismatch -------------------------------------------------------------------------------


async def test_a_mismatch_is_detected_explained_by_reference_and_logged(pair: Pair) -> None:
    at = an_hour_ago()
    await post(pair.lille, GAND, S1, 120, at)  # Gand posted -90: the amounts differ
    await post(pair.gand, LILLE, S1, -90, at)
    await post(pair.lille, GAND, S2, 60, at)  # never posted on Gand
    await post(pair.gand, LILLE, S3, 45, at)  # aborted here, posted on Gand
    await settlement(pair.lille, GAND, S3, SettlementState.ABORTED, reason="the deadline passed")
    await post(pair.lille, GAND, S5, -30, at)  # posted here; still prepared on Gand
    await settlement(pair.gand, LILLE, S5, SettlementState.PREPARED, held=30)

    await pair.exchange_statements()

    view = await status(pair.lille)
    assert view.status == "mismatch"
    explained = {m["reference"]: (m["kind"], m["explanation"]) for m in view.mismatches}
    assert explained == {
        S1: (
            "amounts_differ",
            "amounts differ: +2 h here, -1 h 30 on Gand (they should be opposite)",
        ),
        S2: ("missing_there", "posted here (+1 h) but not on Gand"),
        S3: (
            "missing_here",
            "posted on Gand (+0 h 45) but not here (settlement aborted here: the deadline passed)",
        ),
    }
    assert [(p["reference"], p["kind"]) for p in view.pending] == [(S5, "in_flight")]
    assert view.pending[0]["explanation"] == "posted here (-0 h 30); in flight on Gand"
    assert view.mismatch_since is not None

    (entry,) = await audit(pair.lille)
    assert entry.action == "partner.mismatch" and entry.target == GAND
    assert entry.by == "operator"
    assert entry.reason.startswith("3 differences with Gand as of")
    assert "posted here (+1 h) but not on Gand" in entry.reason
    assert {m["reference"] for m in entry.details["mismatches"]} == {S1, S2, S3}
    assert entry.details["statement"] == view.received_activity_id

    # Gand sees the same differences from its side, and logs them too.
    gand = await status(pair.gand)
    assert gand.status == "mismatch"
    gand_kinds = {m["reference"]: m["kind"] for m in gand.mismatches}
    assert gand_kinds == {S1: "amounts_differ", S2: "missing_here", S3: "missing_there"}
    assert [p["reference"] for p in gand.pending] == [S5]
    assert [e.action for e in await audit(pair.gand)] == ["partner.mismatch"]

    # The same mismatch seen again is not logged again.
    await pair.exchange_statements()
    assert len(await audit(pair.lille, "partner.mismatch")) == 1
    assert len(await audit(pair.gand, "partner.mismatch")) == 1


async def test_a_resolved_mismatch_is_logged_as_resolved(pair: Pair) -> None:
    at = an_hour_ago()
    await post(pair.lille, GAND, S2, 60, at)
    await pair.exchange_statements()
    assert (await status(pair.lille)).status == "mismatch"

    await post(pair.gand, LILLE, S2, -60, at + timedelta(minutes=1))
    await pair.exchange_statements()
    view = await status(pair.lille)
    assert view.status == "ok" and view.mismatches == () and view.mismatch_since is None
    assert [e.action for e in await audit(pair.lille)] == ["partner.mismatch", "partner.reconciled"]
    assert [e.action for e in await audit(pair.gand)] == ["partner.mismatch", "partner.reconciled"]


async def test_in_flight_at_the_cut_off_is_pending_on_both_sides(pair: Pair) -> None:
    # Gand (the preparer) holds S4; Lille (the decider) committed it a moment ago.
    await settlement(pair.gand, LILLE, S4, SettlementState.PREPARED, held=-120)
    await post(pair.lille, GAND, S4, 120, utcnow() - timedelta(seconds=20))
    await pair.exchange_statements()
    for chamber in (pair.lille, pair.gand):
        view = await status(chamber)
        assert view.status == "ok" and [p["reference"] for p in view.pending] == [S4]
    assert await audit(pair.lille) == []


async def test_in_flight_is_judged_at_the_cut_off(pair: Pair) -> None:
    now = utcnow()
    decided = now - timedelta(minutes=10)
    await settlement(
        pair.lille,
        GAND,
        S4,
        SettlementState.COMMITTED,
        held=90,
        at=now - timedelta(minutes=30),
        decided_at=decided,
    )
    await post(pair.lille, GAND, S4, 90, decided)
    async with read_only(pair.lille.node.sessionmaker) as session:
        partner = (
            await session.execute(select(Partner).where(Partner.chamber_uri == GAND))
        ).scalar_one()
        reconciler = pair.lille.reconciler
        before = await reconciler.statement_of(session, partner, now - timedelta(minutes=20))
        after = await reconciler.statement_of(session, partner, now)
        earlier = await reconciler.statement_of(session, partner, now - timedelta(minutes=40))
    assert (before.entries, [(p.reference, p.minutes) for p in before.pending]) == ((), [(S4, 90)])
    assert [(e.reference, e.minutes) for e in after.entries] == [(S4, 90)] and after.pending == ()
    assert earlier.entries == () and earlier.pending == ()


async def test_a_clearing_round_not_yet_decided_is_in_flight(pair: Pair) -> None:
    from node.clearing.rounds.models import ClearingRound

    round_uri = "https://lille.test/rounds/r1"
    now = utcnow()
    async with session_scope(pair.gand.node.sessionmaker) as session:
        session.add(
            ClearingRound(
                uri=round_uri,
                role="participant",
                proposer_uri=LILLE,
                state="signed",
                deadline=now + timedelta(hours=1),
                participants=sorted([GAND, LILLE, "https://roubaix.test/actors/r"]),
                created_at=now - timedelta(minutes=30),
                updated_at=now - timedelta(minutes=30),
            )
        )
    await post(pair.lille, GAND, round_uri, -300, now - timedelta(minutes=20))  # Lille decided
    await pair.exchange_statements()
    for chamber in (pair.lille, pair.gand):
        view = await status(chamber)
        assert view.status == "ok"
        assert [(p["reference"], p["kind"]) for p in view.pending] == [(round_uri, "in_flight")]


async def test_a_long_history_is_cut_and_an_older_difference_shows_in_the_balances(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reconciliation_service, "MAX_ENTRIES", 2)
    now = utcnow()
    await post(pair.lille, GAND, S5, 100, now - timedelta(hours=5))  # the old difference
    await post(pair.gand, LILLE, S5, -40, now - timedelta(hours=5))
    for hours, ref in ((3, S1), (2, S2), (1, S3)):
        await post(pair.lille, GAND, ref, 10 * hours, now - timedelta(hours=hours))
        await post(pair.gand, LILLE, ref, -10 * hours, now - timedelta(hours=hours))
    (sent,) = await pair.lille.reconciler.send_statements()
    assert (sent.entries, sent.balance) == (2, 160)
    async with read_only(pair.lille.node.sessionmaker) as session:
        document = (
            await session.execute(
                select(StoredActivity.document).where(
                    StoredActivity.activity_id == sent.activity_id
                )
            )
        ).scalar_one()["object"]
    assert document["openingMinutes"] == 130  # S5 and S1, before the cut
    assert [e["reference"] for e in document["entries"]] == [S2, S3]
    start = document["startTime"]
    await pair.lille.deliver()
    await pair.gand.deliver()
    for chamber in (pair.lille, pair.gand):  # +1 h 40 and -0 h 40 on either side: 1 h apart
        view = await status(chamber)
        assert view.status == "mismatch"
        (item,) = view.mismatches
        assert item["kind"] == "balance" and item["reference"] is None
        assert item["explanation"].startswith(
            f"the balances differ by +1 h before {start}, beyond the exchanges listed"
        )


async def test_a_posting_without_a_reference_is_named_by_its_transaction(pair: Pair) -> None:
    transaction = await post(pair.lille, GAND, None, 60, an_hour_ago())
    await pair.exchange_statements()
    (item,) = (await status(pair.gand)).mismatches
    assert item["reference"] == f"urn:archipel:lille.test:transaction:{transaction}"
    assert item["explanation"] == "posted on Lille (+1 h) but not here"
    (mine,) = (await status(pair.lille)).mismatches
    assert mine["kind"] == "missing_there"


# --- refusals ---------------------------------------------------------------------------------


async def test_a_statement_from_a_chamber_that_is_not_a_partner_is_refused(pair: Pair) -> None:
    async with session_scope(pair.gand.node.sessionmaker) as session:
        partner = (
            await session.execute(select(Partner).where(Partner.chamber_uri == LILLE))
        ).scalar_one()
        await session.delete(partner)
    await post(pair.lille, GAND, S2, 60, an_hour_ago())
    (sent,) = await pair.lille.reconciler.send_statements()
    await pair.lille.deliver()

    async with read_only(pair.lille.node.sessionmaker) as session:
        job = (await session.execute(select(Job).where(Job.kind == "deliver"))).scalar_one()
    assert job.state == JobState.FAILED
    assert job.last_error.startswith("HTTP 403")
    assert "is not a partner chamber of this chamber" in job.last_error
    assert (
        await count(pair.gand, StoredActivity, StoredActivity.activity_id == sent.activity_id) == 0
    )
    assert await count(pair.gand, Reconciliation) == 0
    assert await audit(pair.gand) == []


async def signed_inbox_post(pair: Pair, document: dict[str, Any]) -> httpx.Response:
    """POST ``document`` to Gand's inbox with a valid HTTP signature of Lille's chamber."""
    federation = pair.lille.node.federation
    async with read_only(pair.lille.node.sessionmaker) as session:
        actor = await get_local_actor(session, "lille")
    assert actor is not None
    async with httpx.AsyncClient(transport=pair.network) as client:
        return await client.post(
            "https://gand.test/inbox",
            content=json.dumps(document).encode(),
            headers={"Content-Type": "application/activity+json"},
            auth=federation.signer(actor),
        )


async def lilles_statement(pair: Pair) -> dict[str, Any]:
    await post(pair.lille, GAND, S2, 60, an_hour_ago())
    (sent,) = await pair.lille.reconciler.send_statements()
    async with read_only(pair.lille.node.sessionmaker) as session:
        stored = (
            await session.execute(
                select(StoredActivity).where(StoredActivity.activity_id == sent.activity_id)
            )
        ).scalar_one()
    document: dict[str, Any] = json.loads(json.dumps(stored.document))
    return document


async def resign(pair: Pair, document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with a fresh, valid proof by Lille's chamber (its fields stay as given)."""
    document = {k: v for k, v in document.items() if k != "proof"}
    document["id"] = f"{LILLE}/activities/{uuid.uuid4()}"
    async with read_only(pair.lille.node.sessionmaker) as session:
        actor = await get_local_actor(session, "lille")
    assert actor is not None
    signed: dict[str, Any] = pair.lille.node.federation.sign_object(actor, document)
    return signed


async def assert_refused(
    pair: Pair, document: dict[str, Any], status_code: int, message: str
) -> None:
    response = await signed_inbox_post(pair, document)
    assert response.status_code == status_code, response.text
    assert message in response.text
    assert await count(pair.gand, StoredActivity, StoredActivity.direction == "in") == 0
    assert await count(pair.gand, Reconciliation) == 0
    assert await audit(pair.gand) == []


async def test_the_genuine_statement_is_accepted_by_the_same_path(pair: Pair) -> None:
    document = await lilles_statement(pair)
    response = await signed_inbox_post(pair, document)
    assert response.status_code == 202, response.text
    assert (await status(pair.gand)).status == "mismatch"


async def test_an_altered_statement_is_refused_for_its_proof(pair: Pair) -> None:
    document = await lilles_statement(pair)
    document["object"]["balanceMinutes"] = 0
    document["object"]["entries"] = []
    await assert_refused(pair, document, 401, "the statement's proof is refused")


async def test_an_unsigned_statement_is_refused(pair: Pair) -> None:
    document = await lilles_statement(pair)
    del document["proof"]
    await assert_refused(pair, document, 401, "the statement is not signed")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"balanceMinutes": 60.0},
            "invalid statement: balanceMinutes: a whole number of minutes",
        ),
        ({"partner": "https://roubaix.test/actors/r"}, "invalid statement: partner: must be this"),
        ({"entries": "all of them"}, "invalid statement: entries: a list"),
        ({"balanceMinutes": 61}, "does not equal openingMinutes plus the entries"),
        ({"endTime": "2099-01-01T00:00:00Z"}, "is in the future"),
    ],
)
async def test_a_signed_statement_with_bad_fields_is_refused(
    pair: Pair, change: dict[str, Any], message: str
) -> None:
    document = await lilles_statement(pair)
    document["object"].update(change)
    await assert_refused(pair, await resign(pair, document), 422, message)


# --- the periodic job, on demand, reading -----------------------------------------------------


async def test_the_periodic_job_sends_statements_and_schedules_the_next(pair: Pair) -> None:
    lille = pair.lille
    assert await lille.node.services.reconciler.schedule() is True
    assert await lille.node.services.reconciler.schedule() is False
    async with session_scope(lille.node.sessionmaker) as session:
        job = (await session.execute(select(Job).where(Job.kind == RECONCILE_JOB))).scalar_one()
        interval = timedelta(minutes=lille.settings.clearing_reconcile_interval_minutes)
        assert abs(job.next_attempt_at - (utcnow() + interval)) < timedelta(minutes=1)
        job.next_attempt_at = utcnow()  # due now
    await lille.deliver()  # runs the cycle, then delivers the statement
    await pair.gand.deliver()
    async with read_only(lille.node.sessionmaker) as session:
        jobs = list(
            (
                await session.execute(select(Job).where(Job.kind == RECONCILE_JOB).order_by(Job.id))
            ).scalars()
        )
    assert [j.state for j in jobs] == [JobState.DONE, JobState.PENDING]
    assert jobs[1].next_attempt_at > utcnow() + interval - timedelta(minutes=1)
    assert (await status(lille)).status == "ok"
    # Gand received a statement and started its own cycle.
    assert await count(pair.gand, Job, Job.kind == RECONCILE_JOB, Job.state == "pending") == 1


async def test_on_demand_for_one_partner_and_unknown_partners(pair: Pair) -> None:
    sent = await pair.lille.reconciler.send_statements(GAND)
    assert [s.partner for s in sent] == [GAND]
    with pytest.raises(UnknownPartner, match="is not a partner chamber"):
        await pair.lille.reconciler.send_statements("https://roubaix.test/actors/r")
    async with read_only(pair.lille.node.sessionmaker) as session:
        with pytest.raises(UnknownPartner):
            await pair.lille.reconciler.status(session, "https://roubaix.test/actors/r")


async def test_status_before_any_statement(pair: Pair) -> None:
    view = await status(pair.lille)
    assert (view.chamber_uri, view.name, view.status, view.balance) == (GAND, "Gand", "never", 0)
    data = view.to_json()
    assert data["last_sent"] == {"at": None, "as_of": None, "activity": None}
    assert data["mismatches"] == [] and data["pending"] == []


async def test_the_command_line_sends_and_shows(
    pair: Pair, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    from node.cli.reconciliation import reconcile_lines, status_lines

    parser = argparse.ArgumentParser(prog="archipel partner")
    add_reconciliation_commands(parser.add_subparsers(dest="partner_command", required=True))
    args = parser.parse_args(["reconcile", "--data-dir", "/srv/lille", GAND])
    assert (args.data_dir, args.uri, args.func.__name__) == (
        "/srv/lille",
        GAND,
        "cmd_partner_reconcile",
    )
    assert parser.parse_args(["status", "--data-dir", "d"]).func.__name__ == "cmd_partner_status"

    await post(pair.lille, GAND, S2, 60, an_hour_ago())
    (line,) = await reconcile_lines(pair.lille.settings)
    assert line.startswith(f"{GAND}: statement as of ")
    assert line.endswith("queued, balance +1 h, 1 reference")
    await pair.lille.deliver()
    await pair.gand.deliver()
    lines = await status_lines(pair.lille.settings)
    assert lines[0] == f"{GAND} (Gand): mismatch, balance +1 h"
    assert any(f"mismatch  {S2}: posted here (+1 h) but not on Gand" in x for x in lines)
