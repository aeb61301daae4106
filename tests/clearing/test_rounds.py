"""Clearing round documents (pure): statements, obligations, proposal review, verification.

Three chambers with fixed Ed25519 keys sign their activities the way `publish` does (an
``eddsa-jcs-2022`` proof by the actor's ``#ed25519-key``); a fixed clock.
"""

from __future__ import annotations

import ast
import copy
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import node
from node.activitypub.keys import public_keys_of
from node.activitypub.multikey import public_key_to_multibase
from node.activitypub.proofs import sign_eddsa_jcs_2022
from node.clearing.rounds.netting import Obligation, net
from node.clearing.rounds.protocol import (
    FINAL_ROUND_STATES,
    InvalidRoundDocument,
    InvalidRoundTransition,
    Mismatch,
    RoundEvent,
    RoundState,
    changes_for,
    decision_activity,
    format_time,
    invite_activity,
    lines_of,
    next_round_state,
    obligations_from,
    parse_time,
    proof_problem,
    proposal_activity,
    read_invite,
    read_statement,
    signature_activity,
    stale_changes,
    statement_activity,
)
from node.clearing.rounds.review import review_proposal, verify_round
from tests.clearing.test_netting import brute_force_optimum

LILLE = "https://lille.test/actors/lille"
GAND = "https://gand.test/actors/gand"
ROUBAIX = "https://roubaix.test/actors/roubaix"
CHAMBERS = sorted([LILLE, GAND, ROUBAIX])
ROUND = "https://lille.test/rounds/r1"
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
DEADLINE = NOW + timedelta(hours=1)
KEYS = {
    uri: Ed25519PrivateKey.from_private_bytes(bytes([i + 1]) * 32) for i, uri in enumerate(CHAMBERS)
}
HOUR = 60


def actor_document(uri: str, key: Ed25519PrivateKey | None = None) -> dict[str, Any]:
    key = key or KEYS[uri]
    return {
        "id": uri,
        "type": "Group",
        "assertionMethod": [
            {
                "id": f"{uri}#ed25519-key",
                "type": "Multikey",
                "controller": uri,
                "publicKeyMultibase": public_key_to_multibase(key.public_key()),
            }
        ],
    }


ACTORS = [actor_document(uri) for uri in CHAMBERS]
PUBLIC_KEYS: dict[str, Any] = {}
for _doc in ACTORS:
    PUBLIC_KEYS.update(public_keys_of(_doc))

_counter = iter(range(10**6))


def sign(activity: dict[str, Any], *, at: datetime = NOW, key: Any = None) -> dict[str, Any]:
    """As `publish` does: context, id on the actor's host, published, proof."""
    actor = activity["actor"]
    document = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{actor}/activities/{next(_counter)}",
        "published": format_time(at),
        **activity,
    }
    return sign_eddsa_jcs_2022(document, key or KEYS[actor], f"{actor}#ed25519-key", created=at)


def statement(chamber: str, balances: dict[str, int]) -> dict[str, Any]:
    return sign(
        statement_activity(
            ROUND, f"{chamber}/statements/{next(_counter)}", chamber, LILLE, balances
        )
    )


def cycle_statements(minutes: int = 5 * HOUR) -> dict[str, dict[str, Any]]:
    """Lille owes Roubaix, Roubaix owes Gand, Gand owes Lille (mirror balances: positive = we
    owe them)."""
    return {
        LILLE: statement(LILLE, {ROUBAIX: minutes, GAND: -minutes}),
        ROUBAIX: statement(ROUBAIX, {LILLE: -minutes, GAND: minutes}),
        GAND: statement(GAND, {ROUBAIX: -minutes, LILLE: minutes}),
    }


def positions_of(statements: dict[str, dict[str, Any]]) -> dict[str, dict[str, int]]:
    return {
        chamber: read_statement(s, round_uri=ROUND, participants=CHAMBERS)[1]
        for chamber, s in statements.items()
    }


def make_proposal(statements: dict[str, dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    obligations, mismatches = obligations_from(positions_of(statements))
    activity = proposal_activity(
        ROUND, LILLE, CHAMBERS, DEADLINE, list(statements.values()), net(obligations), mismatches
    )
    activity["object"].update(overrides)
    return sign(activity)


def review_as(chamber: str, proposal: dict[str, Any], mine: dict[str, Any]) -> Any:
    return review_proposal(
        proposal,
        PUBLIC_KEYS,
        me=chamber,
        my_statement=mine,
        round_uri=ROUND,
        proposer=LILLE,
        participants=CHAMBERS,
        end_time=format_time(DEADLINE),
    )


def committed_document(
    statements: dict[str, dict[str, Any]], *, signers: list[str] | None = None, at: datetime = NOW
) -> dict[str, Any]:
    proposal = make_proposal(statements)
    digest = proposal["object"]["digest"]
    signatures = [
        sign(signature_activity(c, LILLE, ROUND, proposal["id"], digest))
        for c in (signers if signers is not None else [GAND, ROUBAIX])
    ]
    decision = sign(
        decision_activity(
            ROUND,
            LILLE,
            CHAMBERS,
            DEADLINE,
            RoundState.COMMITTED,
            proposal_id=proposal["id"],
            digest=digest,
            signatures=signatures,
        ),
        at=at,
    )
    return {
        "type": "ClearingRound",
        "id": ROUND,
        "attributedTo": LILLE,
        "participants": CHAMBERS,
        "endTime": format_time(DEADLINE),
        "state": "committed",
        "proposal": proposal,
        "decision": decision,
    }


# --- states ----------------------------------------------------------------------------------


def test_a_round_moves_through_its_states() -> None:
    state = RoundState.COLLECTING
    for event, expected in (
        (RoundEvent.PROPOSE, RoundState.PROPOSED),
        (RoundEvent.SIGN, RoundState.SIGNED),
        (RoundEvent.COMMIT, RoundState.COMMITTED),
    ):
        state = next_round_state(state, event)
        assert state == expected
    assert next_round_state(RoundState.PROPOSED, RoundEvent.COMMIT) == RoundState.COMMITTED
    for state in (RoundState.COLLECTING, RoundState.PROPOSED, RoundState.SIGNED):
        assert next_round_state(state, RoundEvent.ABORT) == RoundState.ABORTED


@pytest.mark.parametrize("final", sorted(FINAL_ROUND_STATES))
@pytest.mark.parametrize("event", list(RoundEvent))
def test_a_decided_round_never_changes(final: RoundState, event: RoundEvent) -> None:
    with pytest.raises(InvalidRoundTransition, match=f"is {final.value}"):
        next_round_state(final, event)


def test_cannot_commit_before_the_proposal() -> None:
    with pytest.raises(InvalidRoundTransition):
        next_round_state(RoundState.COLLECTING, RoundEvent.COMMIT)
    with pytest.raises(InvalidRoundTransition):
        next_round_state(RoundState.COLLECTING, RoundEvent.SIGN)


def test_times_round_trip_and_bad_ones_are_refused() -> None:
    assert parse_time(format_time(DEADLINE)) == DEADLINE
    for bad in ("tomorrow", "2026-11-23T10:00:00", 12):
        with pytest.raises(InvalidRoundDocument):
            parse_time(bad)


# --- statements and obligations --------------------------------------------------------------


def test_the_three_cycle_becomes_three_obligations_without_mismatch() -> None:
    obligations, mismatches = obligations_from(positions_of(cycle_statements()))
    assert sorted(obligations, key=lambda o: o.debtor) == sorted(
        [
            Obligation(LILLE, ROUBAIX, 300),
            Obligation(ROUBAIX, GAND, 300),
            Obligation(GAND, LILLE, 300),
        ],
        key=lambda o: o.debtor,
    )
    assert mismatches == ()


def test_only_the_debt_both_sides_show_is_netted() -> None:
    # Lille says Roubaix is owed 5 h; Roubaix (a settlement still pending there) says 3 h.
    positions = {LILLE: {ROUBAIX: 300}, ROUBAIX: {LILLE: -180}}
    obligations, mismatches = obligations_from(positions)
    assert obligations == (Obligation(LILLE, ROUBAIX, 180),)
    assert mismatches == (Mismatch(LILLE, ROUBAIX, 300, -180),)


def test_statements_that_disagree_on_who_owes_net_nothing() -> None:
    obligations, mismatches = obligations_from({LILLE: {GAND: 60}, GAND: {LILLE: 60}})
    assert obligations == ()
    assert len(mismatches) == 1
    obligations, mismatches = obligations_from({LILLE: {GAND: 60}, GAND: {}})
    assert obligations == ()
    assert mismatches == (Mismatch(GAND, LILLE, None, 60),)


def test_changes_bring_every_position_of_the_cycle_to_zero_and_sum_to_zero() -> None:
    lines = lines_of(net(obligations_from(positions_of(cycle_statements()))[0]))
    for chamber, positions in positions_of(cycle_statements()).items():
        changes = changes_for(chamber, lines)
        assert sum(changes.values()) == 0
        assert {other: positions[other] + changes[other] for other in changes} == {
            other: 0 for other in positions
        }
        assert stale_changes(positions, changes) == []


def test_a_chamber_off_every_cycle_posts_nothing() -> None:
    lines = [{"debtor": LILLE, "creditor": GAND, "minutes": 60, "removed": 0}]
    assert changes_for(ROUBAIX, lines) == {}
    assert changes_for(LILLE, lines) == {}


def test_a_position_paid_back_since_the_statement_makes_the_round_stale() -> None:
    changes = {ROUBAIX: -300, GAND: 300}
    assert stale_changes({ROUBAIX: 300, GAND: -300}, changes) == []
    assert stale_changes({ROUBAIX: 400, GAND: -300}, changes) == []
    problems = stale_changes({ROUBAIX: 120, GAND: -300}, changes)
    assert len(problems) == 1 and ROUBAIX in problems[0] and "from 120 to -180" in problems[0]
    assert stale_changes({GAND: -300}, changes) == [f"no mirror account for {ROUBAIX}"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"actor": GAND}, "not a participant stating its own"),
        ({"target": "https://lille.test/rounds/other"}, "another round"),
        ({"object.positions": [{"chamber": "https://x.test/a", "balance": 1}]}, "not another"),
        ({"object.positions": [{"chamber": ROUBAIX, "balance": 1}]}, "not another"),
        ({"object.positions": [{"chamber": GAND, "balance": True}]}, "not a number"),
        ({"object.positions": [{"chamber": GAND, "balance": 1.5}]}, "not a number"),
        ({"object.positions": [{"chamber": GAND, "balance": 10**13}]}, "not a number"),
        (
            {
                "object.positions": [
                    {"chamber": GAND, "balance": 1},
                    {"chamber": GAND, "balance": 2},
                ]
            },
            "not another",
        ),
        ({"object.type": "Note"}, "PositionStatement"),
        ({"type": "Create"}, "an Add"),
    ],
)
def test_malformed_statements_are_refused(change: dict[str, Any], message: str) -> None:
    activity = statement_activity(ROUND, f"{ROUBAIX}/s/1", ROUBAIX, LILLE, {GAND: 60})
    for path, value in change.items():
        target = activity
        *parents, last = path.split(".")
        for parent in parents:
            target = target[parent]
        target[last] = value
    with pytest.raises(InvalidRoundDocument, match=message):
        read_statement(activity, round_uri=ROUND, participants=CHAMBERS)


def test_an_invitation_is_read_and_checked() -> None:
    invitation = read_invite(sign(invite_activity(ROUND, LILLE, CHAMBERS, DEADLINE)))
    assert (invitation.uri, invitation.proposer) == (ROUND, LILLE)
    assert invitation.participants == tuple(CHAMBERS)
    assert invitation.deadline == DEADLINE
    two = invite_activity(ROUND, LILLE, [LILLE, GAND], DEADLINE)
    with pytest.raises(InvalidRoundDocument, match="3 to"):
        read_invite(two)
    someone_else = invite_activity(ROUND, LILLE, CHAMBERS, DEADLINE) | {"actor": GAND}
    with pytest.raises(InvalidRoundDocument, match="only the proposer"):
        read_invite(someone_else)


# --- proofs ----------------------------------------------------------------------------------


def test_proofs_are_checked_against_the_actor() -> None:
    signed = statement(ROUBAIX, {GAND: 60})
    assert proof_problem(signed, PUBLIC_KEYS, ROUBAIX) == ""
    assert "expected" in proof_problem(signed, PUBLIC_KEYS, GAND)
    forged = sign(statement_activity(ROUND, "x", ROUBAIX, LILLE, {GAND: 60}), key=KEYS[GAND])
    assert proof_problem(forged, PUBLIC_KEYS, ROUBAIX) != ""
    altered = copy.deepcopy(signed)
    altered["object"]["positions"][0]["balance"] = 59
    assert "does not match" in proof_problem(altered, PUBLIC_KEYS, ROUBAIX)


# --- reviewing a proposal --------------------------------------------------------------------


def test_a_sound_proposal_passes_every_participants_review() -> None:
    statements = cycle_statements()
    proposal = make_proposal(statements)
    assert proposal["object"]["totalBefore"] == 900
    assert proposal["object"]["totalAfter"] == 0
    for chamber in (GAND, ROUBAIX):
        review = review_as(chamber, proposal, statements[chamber])
        assert review.ok, review.problems
        assert review.digest == proposal["object"]["digest"]
        assert (review.total_before, review.total_after) == (900, 0)


def test_a_proposal_that_is_not_the_optimum_is_refused_even_if_signed() -> None:
    statements = cycle_statements()
    lazy = [dict(line, removed=0) for line in make_proposal(statements)["object"]["netting"]]
    proposal = make_proposal(statements, netting=lazy)
    review = review_as(GAND, proposal, statements[GAND])
    assert any("not the optimum" in p for p in review.problems)


def test_a_proposal_with_our_statement_changed_is_refused() -> None:
    statements = cycle_statements()
    mine = statements[GAND]
    statements[GAND] = statement(GAND, {ROUBAIX: -300, LILLE: 200})  # signed by Gand, older
    proposal = make_proposal(statements)
    review = review_as(GAND, proposal, mine)
    assert review.problems == ["our statement in the proposal is not the one we sent"]


def test_a_proposal_with_a_forged_statement_is_refused() -> None:
    statements = cycle_statements()
    statements[ROUBAIX] = sign(
        statement_activity(ROUND, "forged", ROUBAIX, LILLE, {LILLE: -300, GAND: 300}),
        key=KEYS[LILLE],
    )
    review = review_as(GAND, make_proposal(statements), statements[GAND])
    assert any(p.startswith("statement:") for p in review.problems)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("participants", sorted([LILLE, GAND]), "participants"),
        ("endTime", format_time(DEADLINE + timedelta(days=1)), "endTime"),
        ("totalAfter", 300, "totals"),
        ("digest", "0" * 64, "digest"),
        ("certificate", {}, "certificate"),
    ],
)
def test_a_proposal_altered_by_its_proposer_is_refused(
    field: str, value: Any, message: str
) -> None:
    statements = cycle_statements()
    review = review_as(ROUBAIX, make_proposal(statements, **{field: value}), statements[ROUBAIX])
    assert not review.ok
    assert any(message in p for p in review.problems), review.problems


def test_a_proposal_altered_in_transit_is_refused() -> None:
    statements = cycle_statements()
    proposal = make_proposal(statements)
    proposal["object"]["totalAfter"] = 1
    review = review_as(ROUBAIX, proposal, statements[ROUBAIX])
    assert review.problems and review.problems[0].startswith("proposal:")


def test_a_proposal_from_someone_else_is_refused() -> None:
    statements = cycle_statements()
    activity = make_proposal(statements)
    del activity["proof"]
    activity["actor"] = GAND
    review = review_as(ROUBAIX, sign(activity), statements[ROUBAIX])
    assert review.problems and "expected " + LILLE in review.problems[0]


@pytest.mark.parametrize("seed", range(25))
def test_rounds_on_random_networks_reach_the_brute_force_optimum(seed: int) -> None:
    rng = random.Random(seed)
    chambers = sorted(f"https://c{i}.test/actors/c{i}" for i in range(rng.randint(3, 4)))
    debts: dict[tuple[str, str], int] = {}
    for _ in range(rng.randint(2, 6)):
        a, b = rng.sample(chambers, 2)
        debts[(a, b)] = debts.get((a, b), 0) + rng.randint(1, 3)
    # Each pair's two mirror accounts hold the net of its debts, opposite on both sides.
    positions: dict[str, dict[str, int]] = {c: {} for c in chambers}
    for (a, b), minutes in debts.items():
        positions[a][b] = positions[a].get(b, 0) + minutes
        positions[b][a] = positions[b].get(a, 0) - minutes
    obligations, mismatches = obligations_from(positions)
    assert mismatches == ()
    result = net(obligations)
    assert result.total_removed == brute_force_optimum(list(obligations))
    lines = lines_of(result)
    for chamber in chambers:
        changes = changes_for(chamber, lines)
        assert sum(changes.values()) == 0
        assert stale_changes(positions[chamber], changes) == []


# --- third-party verification ----------------------------------------------------------------


def test_a_committed_round_verifies_with_public_documents_only() -> None:
    verification = verify_round(committed_document(cycle_statements()), ACTORS)
    assert verification.ok, verification.problems
    assert verification.state == RoundState.COMMITTED
    assert (verification.total_before, verification.total_after) == (900, 0)
    assert verification.changes(GAND) == {LILLE: -300, ROUBAIX: 300}


def test_a_round_missing_a_signature_does_not_verify() -> None:
    verification = verify_round(committed_document(cycle_statements(), signers=[GAND]), ACTORS)
    assert not verification.ok
    assert verification.problems == [f"not signed by {ROUBAIX}"]


def test_a_signature_of_another_proposal_does_not_count() -> None:
    document = committed_document(cycle_statements())
    other = make_proposal(cycle_statements())
    signatures = document["decision"]["object"]["signatures"]
    signatures[0] = sign(
        signature_activity(GAND, LILLE, ROUND, other["id"], other["object"]["digest"])
    )
    decision = {k: v for k, v in document["decision"].items() if k != "proof"}
    document["decision"] = sign(decision)
    verification = verify_round(document, ACTORS)
    assert not verification.ok
    assert any("not for this proposal" in p for p in verification.problems)


def test_a_commit_after_the_deadline_does_not_verify() -> None:
    late = committed_document(cycle_statements(), at=DEADLINE + timedelta(seconds=1))
    verification = verify_round(late, ACTORS)
    assert verification.problems == ["the proposer committed after the deadline"]


def test_a_round_does_not_verify_without_the_right_keys() -> None:
    strangers = [actor_document(uri, Ed25519PrivateKey.generate()) for uri in CHAMBERS]
    verification = verify_round(committed_document(cycle_statements()), strangers)
    assert not verification.ok and verification.state is None


def test_an_aborted_round_verifies_as_aborted_and_changes_nothing() -> None:
    document = committed_document(cycle_statements())
    document["decision"] = sign(
        decision_activity(ROUND, LILLE, CHAMBERS, DEADLINE, RoundState.ABORTED, reason="no")
    )
    verification = verify_round(document, ACTORS)
    assert verification.ok and verification.state == RoundState.ABORTED
    assert verification.changes(GAND) == {}


def test_the_rounds_module_is_pure() -> None:
    path = Path(node.__file__).parent / "clearing" / "rounds" / "protocol.py"
    roots = set()
    for item in ast.walk(ast.parse(path.read_text())):
        if isinstance(item, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module:
            roots.add(item.module.split(".")[0])
    assert roots & {"sqlalchemy", "httpx", "starlette", "asyncpg", "aiosqlite"} == set()
