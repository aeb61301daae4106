"""Multilateral clearing rounds, as documents: statements, the proposal, signatures, decision.

A round nets out cycles of debt between chambers (Lille owes Roubaix, Roubaix owes Gand, Gand
owes Lille) without changing any chamber's net position
(`node.clearing.rounds.netting`). This module
builds and checks its activities; `node.clearing.rounds.service` sends, stores and posts them.

* **Statement** (``Add`` of a ``PositionStatement``, signed by the stating chamber): the
  balance of each participant's mirror account in its ledger, with the ledger's sign convention
  (positive: the stating chamber owes that chamber).
* **Obligations** (`obligations_from`): for each pair of chambers, the debt *both* statements
  show: ``min`` of the two amounts when they agree on who owes whom, nothing otherwise. A pair
  whose statements differ (a settlement in flight, or a real mismatch for reconciliation) is
  listed in ``mismatches`` and only its undisputed part is netted.
* **Proposal** (``Update`` of the ``ClearingRound``, signed by the proposer): every signed
  statement, the netting (``(debtor, creditor, minutes, removed)`` lines, canonical order), the
  optimality certificate and a ``digest`` (SHA-256 of the RFC 8785 form of the round, its
  participants, deadline, statements and lines).
* **Signature** (``Accept`` of the proposal, ``result.digest``): by every other participant.
* **Decision** (``Update`` with ``state`` ``committed`` and every signature, or ``aborted``):
  by the proposer, the single decider.

`review_proposal` is what a participant runs before signing; `verify_round` is what anyone can
run on a round's public document with only the chambers' public actor documents.

Pure: no I/O, no clock (times are arguments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import rfc8785

from node.activitypub.proofs import verify_proof
from node.clearing.rounds.netting import NettingResult, Obligation
from node.clearing.rounds.states import RoundStates
from node.clearing.units import ClearingError

__all__ = [
    "FINAL_ROUND_STATES",
    "MAX_BALANCE",
    "MAX_PARTICIPANTS",
    "ROUND_TYPE",
    "STATEMENT_TYPE",
    "InvalidRoundDocument",
    "InvalidRoundTransition",
    "Mismatch",
    "RoundError",
    "RoundEvent",
    "RoundInvitation",
    "RoundState",
    "changes_for",
    "decision_activity",
    "format_time",
    "invite_activity",
    "lines_of",
    "next_round_state",
    "obligations_from",
    "parse_time",
    "proof_problem",
    "proposal_activity",
    "proposal_digest",
    "read_invite",
    "read_statement",
    "refusal_activity",
    "signature_activity",
    "stale_changes",
    "statement_activity",
    "undo_activity",
]

ROUND_TYPE = "ClearingRound"
STATEMENT_TYPE = "PositionStatement"
MAX_PARTICIPANTS = 100
MAX_BALANCE = 10**12
"""Larger balances in a statement are refused as malformed (a ledger never holds them)."""


class RoundError(ClearingError):
    """Base of the clearing rounds' errors."""


class InvalidRoundDocument(RoundError):
    """A round activity is malformed or does not say what the protocol expects."""


class InvalidRoundTransition(RoundError):
    def __init__(self, state: RoundState, event: RoundEvent) -> None:
        self.state, self.event = state, event
        super().__init__(f"a round that is {state.value} cannot {event.value}")


# --- states ----------------------------------------------------------------------------------


class RoundState(StrEnum):
    """One node's view of a round.

    Proposer: ``collecting`` (statements) → ``proposed`` (signatures) → ``committed``, or
    ``aborted`` from either. Participant: ``collecting`` (statement sent) → ``proposed``
    (proposal under review) → ``signed`` → ``committed``/``aborted``; it may also abort
    before signing (refusal, deadline), never after except on the proposer's word.
    """

    COLLECTING = "collecting"
    PROPOSED = "proposed"
    SIGNED = "signed"
    COMMITTED = "committed"
    ABORTED = "aborted"


class RoundEvent(StrEnum):
    PROPOSE = "propose"
    SIGN = "sign"
    COMMIT = "commit"
    ABORT = "abort"


FINAL_ROUND_STATES = frozenset({RoundState.COMMITTED, RoundState.ABORTED})
_TARGETS = {
    RoundEvent.PROPOSE: RoundState.PROPOSED,
    RoundEvent.SIGN: RoundState.SIGNED,
    RoundEvent.COMMIT: RoundState.COMMITTED,
    RoundEvent.ABORT: RoundState.ABORTED,
}


def next_round_state(state: RoundState, event: RoundEvent) -> RoundState:
    """The state after ``event``, or `InvalidRoundTransition`: the moves are `RoundStates`'
    (final states never change)."""
    after = _TARGETS[event]
    if not RoundStates.allows(state, after):
        raise InvalidRoundTransition(state, event)
    return after


# --- times -----------------------------------------------------------------------------------


def format_time(moment: datetime) -> str:
    """``2026-11-23T10:10:00Z`` (UTC, to the second), as activities carry it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: Any) -> datetime:
    """The inverse of `format_time`; `InvalidRoundDocument` if it is not such a time."""
    if not isinstance(text, str):
        raise InvalidRoundDocument(f"a time must be text like 2026-11-23T10:10:00Z, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRoundDocument(f"{text!r} is not a time like 2026-11-23T10:10:00Z") from None
    if moment.tzinfo is None:
        raise InvalidRoundDocument(f"{text!r} has no time zone")
    return moment.astimezone(UTC)


# --- building activities ---------------------------------------------------------------------


def _round_object(
    round_uri: str, proposer: str, participants: Sequence[str], deadline: datetime, state: str
) -> dict[str, Any]:
    return {
        "type": ROUND_TYPE,
        "id": round_uri,
        "attributedTo": proposer,
        "participants": sorted(participants),
        "endTime": format_time(deadline),
        "state": state,
    }


def _others(participants: Iterable[str], me: str) -> list[str]:
    return sorted(set(participants) - {me})


def invite_activity(
    round_uri: str, proposer: str, participants: Sequence[str], deadline: datetime
) -> dict[str, Any]:
    """The proposer asks every participant for a statement before ``deadline``."""
    return {
        "type": "Invite",
        "actor": proposer,
        "to": _others(participants, proposer),
        "context": round_uri,
        "object": _round_object(
            round_uri, proposer, participants, deadline, RoundState.COLLECTING.value
        ),
    }


def statement_activity(
    round_uri: str, statement_id: str, chamber: str, proposer: str, balances: Mapping[str, int]
) -> dict[str, Any]:
    """``chamber`` states its mirror balances (positive: it owes that chamber) to the proposer."""
    return {
        "type": "Add",
        "actor": chamber,
        "to": [proposer],
        "context": round_uri,
        "target": round_uri,
        "object": {
            "type": STATEMENT_TYPE,
            "id": statement_id,
            "attributedTo": chamber,
            "round": round_uri,
            "positions": [
                {"chamber": other, "balance": balances[other]} for other in sorted(balances)
            ],
        },
    }


def lines_of(result: NettingResult) -> list[dict[str, Any]]:
    """The netting as JSON lines, in canonical order."""
    return [
        {"debtor": debtor, "creditor": creditor, "minutes": minutes, "removed": removed}
        for debtor, creditor, minutes, removed in result.canonical()
    ]


def proposal_digest(
    round_uri: str,
    participants: Sequence[str],
    end_time: str,
    statements: Sequence[Mapping[str, Any]],
    lines: Sequence[Mapping[str, Any]],
) -> str:
    """SHA-256 (hex) of the RFC 8785 form of what the participants sign."""
    payload: dict[str, Any] = {
        "round": round_uri,
        "participants": sorted(participants),
        "endTime": end_time,
        "statements": [dict(s) for s in statements],
        "netting": [dict(line) for line in lines],
    }
    return hashlib.sha256(rfc8785.dumps(payload)).hexdigest()


@dataclass(frozen=True)
class Mismatch:
    """Two chambers' statements of their mutual position differ (``a``'s balance for ``b``
    should be minus ``b``'s for ``a``); None: that chamber has no account for the other."""

    a: str
    b: str
    balance_a: int | None
    balance_b: int | None

    def as_json(self) -> dict[str, Any]:
        return {"chambers": [self.a, self.b], "balances": [self.balance_a, self.balance_b]}


def obligations_from(
    positions: Mapping[str, Mapping[str, int]],
) -> tuple[tuple[Obligation, ...], tuple[Mismatch, ...]]:
    """The debts both sides of each pair recognise, and the pairs whose statements differ.

    ``positions[a][b]`` is the balance of ``b``'s mirror account in ``a``'s ledger (positive:
    ``a`` owes ``b``). Only debts among the chambers that stated are considered.
    """
    obligations: list[Obligation] = []
    mismatches: list[Mismatch] = []
    chambers = sorted(positions)
    for i, a in enumerate(chambers):
        for b in chambers[i + 1 :]:
            x = positions[a].get(b)
            y = positions[b].get(a)
            if x is None and y is None:
                continue
            if x is None or y is None or x != -y:
                mismatches.append(Mismatch(a, b, x, y))
            if x is None or y is None:
                continue
            if x > 0 and y < 0:
                obligations.append(Obligation(a, b, min(x, -y)))
            elif x < 0 and y > 0:
                obligations.append(Obligation(b, a, min(-x, y)))
    return tuple(obligations), tuple(mismatches)


def changes_for(chamber: str, lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """What the round posts to each mirror account in ``chamber``'s ledger, by partner.

    A debt of ``chamber`` reduced by ``r`` is ``-r`` on the creditor's account (we owe it less);
    a claim reduced by ``r`` is ``+r`` on the debtor's account. They sum to zero because the
    netting keeps every net position.
    """
    changes: dict[str, int] = {}
    for line in lines:
        removed = int(line["removed"])
        if not removed:
            continue
        if line["debtor"] == chamber:
            other, amount = str(line["creditor"]), -removed
        elif line["creditor"] == chamber:
            other, amount = str(line["debtor"]), removed
        else:
            continue
        changes[other] = changes.get(other, 0) + amount
    return {other: amount for other, amount in sorted(changes.items()) if amount}


def stale_changes(balances: Mapping[str, int], changes: Mapping[str, int]) -> list[str]:
    """The changes that would not bring a current balance towards zero (positions moved since
    the statement, e.g. a settlement paid the debt back): a participant refuses to sign them."""
    problems = []
    for other, amount in sorted(changes.items()):
        balance = balances.get(other)
        if balance is None:
            problems.append(f"no mirror account for {other}")
            continue
        after = balance + amount
        if abs(after) > abs(balance) or (after != 0 and (after > 0) != (balance > 0)):
            problems.append(
                f"{other}: the round would take the balance from {balance} to {after}; "
                "positions changed since the statement"
            )
    return problems


def proposal_activity(
    round_uri: str,
    proposer: str,
    participants: Sequence[str],
    deadline: datetime,
    statements: Sequence[Mapping[str, Any]],
    result: NettingResult,
    mismatches: Sequence[Mismatch] = (),
) -> dict[str, Any]:
    """The proposer's netting of the statements (each a signed ``Add``), for every signature."""
    ordered = sorted((dict(s) for s in statements), key=lambda s: str(s.get("actor")))
    lines = lines_of(result)
    obj = _round_object(round_uri, proposer, participants, deadline, RoundState.PROPOSED.value)
    obj |= {
        "statements": ordered,
        "netting": lines,
        "certificate": dict(sorted(result.certificate.items())),
        "mismatches": [m.as_json() for m in mismatches],
        "totalBefore": result.total_before,
        "totalAfter": result.total_after,
        "digest": proposal_digest(round_uri, participants, obj["endTime"], ordered, lines),
    }
    return {
        "type": "Update",
        "actor": proposer,
        "to": _others(participants, proposer),
        "context": round_uri,
        "object": obj,
    }


def signature_activity(
    chamber: str, proposer: str, round_uri: str, proposal_id: str, digest: str
) -> dict[str, Any]:
    """``chamber`` signs the proposal: it will post the netting if the proposer commits."""
    return {
        "type": "Accept",
        "actor": chamber,
        "to": [proposer],
        "context": round_uri,
        "object": proposal_id,
        "result": {"type": ROUND_TYPE, "id": round_uri, "digest": digest},
    }


def refusal_activity(
    chamber: str, proposer: str, round_uri: str, object_id: str, reason: str
) -> dict[str, Any]:
    """``chamber`` declines the invitation or refuses the proposal (``object_id``)."""
    return {
        "type": "Reject",
        "actor": chamber,
        "to": [proposer],
        "context": round_uri,
        "object": object_id,
        "content": reason,
    }


def decision_activity(
    round_uri: str,
    proposer: str,
    participants: Sequence[str],
    deadline: datetime,
    state: RoundState,
    *,
    proposal_id: str = "",
    digest: str = "",
    signatures: Sequence[Mapping[str, Any]] = (),
    reason: str = "",
) -> dict[str, Any]:
    """The proposer's final word: ``committed`` (with every signature) or ``aborted``."""
    if state not in FINAL_ROUND_STATES:
        raise RoundError(f"a decision is committed or aborted, not {state.value}")
    obj = _round_object(round_uri, proposer, participants, deadline, state.value)
    if proposal_id:
        obj["proposal"] = proposal_id
    if state == RoundState.COMMITTED:
        obj["digest"] = digest
        obj["signatures"] = sorted((dict(s) for s in signatures), key=lambda s: str(s["actor"]))
    activity: dict[str, Any] = {
        "type": "Update",
        "actor": proposer,
        "to": _others(participants, proposer),
        "context": round_uri,
        "object": obj,
    }
    if reason:
        activity["content"] = reason
    return activity


def undo_activity(chamber: str, proposer: str, round_uri: str, signature_id: str) -> dict[str, Any]:
    """A signed participant heard nothing by the deadline: "abort unless you committed"."""
    return {
        "type": "Undo",
        "actor": chamber,
        "to": [proposer],
        "context": round_uri,
        "object": {"type": "Accept", "id": signature_id, "actor": chamber},
    }


# --- reading ---------------------------------------------------------------------------------


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 2048:
        raise InvalidRoundDocument(f"{what} must be a URL")
    return value


@dataclass(frozen=True)
class RoundInvitation:
    uri: str
    proposer: str
    participants: tuple[str, ...]
    deadline: datetime


def read_invite(activity: Mapping[str, Any]) -> RoundInvitation:
    """The round an ``Invite`` (or any round activity's object) describes."""
    obj = activity.get("object")
    if not isinstance(obj, Mapping) or obj.get("type") != ROUND_TYPE:
        raise InvalidRoundDocument(f"the object is not a {ROUND_TYPE}")
    uri = _text(obj.get("id"), "the round's id")
    proposer = _text(obj.get("attributedTo"), "the round's attributedTo")
    if activity.get("actor") != proposer:
        raise InvalidRoundDocument("only the proposer speaks for a round")
    participants = obj.get("participants")
    if (
        not isinstance(participants, list)
        or not 3 <= len(participants) <= MAX_PARTICIPANTS
        or len(set(map(str, participants))) != len(participants)
        or proposer not in participants
    ):
        raise InvalidRoundDocument(
            f"participants: 3 to {MAX_PARTICIPANTS} distinct chambers, the proposer included"
        )
    for participant in participants:
        _text(participant, "a participant")
    return RoundInvitation(
        uri, proposer, tuple(sorted(participants)), parse_time(obj.get("endTime"))
    )


def read_statement(
    activity: Mapping[str, Any], *, round_uri: str, participants: Iterable[str]
) -> tuple[str, dict[str, int]]:
    """``(chamber, {other: balance})`` from a statement ``Add``; `InvalidRoundDocument` if it is
    not a well-formed statement of a participant of this round."""
    members = set(participants)
    chamber = activity.get("actor")
    obj = activity.get("object")
    if activity.get("type") != "Add" or not isinstance(obj, Mapping):
        raise InvalidRoundDocument("a statement is an Add of a PositionStatement")
    if obj.get("type") != STATEMENT_TYPE:
        raise InvalidRoundDocument(f"a statement's object is a {STATEMENT_TYPE}")
    if chamber not in members or obj.get("attributedTo") != chamber:
        raise InvalidRoundDocument(f"{chamber} is not a participant stating its own positions")
    if obj.get("round") != round_uri or activity.get("target") != round_uri:
        raise InvalidRoundDocument("the statement is for another round")
    _text(obj.get("id"), "the statement's id")
    positions = obj.get("positions")
    if not isinstance(positions, list) or len(positions) >= len(members):
        raise InvalidRoundDocument("positions: a list, at most one per other participant")
    balances: dict[str, int] = {}
    for position in positions:
        if not isinstance(position, Mapping):
            raise InvalidRoundDocument("a position is {chamber, balance}")
        other, balance = position.get("chamber"), position.get("balance")
        if other not in members or other == chamber or other in balances:
            raise InvalidRoundDocument(f"a position names {other!r}: not another participant")
        if isinstance(balance, bool) or not isinstance(balance, int) or abs(balance) > MAX_BALANCE:
            raise InvalidRoundDocument(f"the balance for {other} is not a number of minutes")
        balances[str(other)] = balance
    return str(chamber), balances


def proof_problem(activity: Mapping[str, Any], keys: Mapping[str, Any], actor: str | None) -> str:
    """What is wrong with ``activity``'s proof, or "" if it is valid and made by its actor's
    key (the actor must be ``actor`` when given)."""
    where = f"{activity.get('type')} {activity.get('id')}"
    if actor is not None and activity.get("actor") != actor:
        return f"{where}: from {activity.get('actor')}, expected {actor}"
    result = verify_proof(activity, keys.get)
    if not result.ok:
        return f"{where}: {result.message}"
    owners = {method.split("#")[0] for method in result.verification_methods}
    if owners != {activity.get("actor")}:
        return f"{where}: signed by {sorted(owners)}, not by its actor {activity.get('actor')}"
    return ""
