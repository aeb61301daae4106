"""Reviewing a round's proposal and verifying a round's public document (pure).

`review_proposal` is what a participant checks before it signs the proposer's netting;
`verify_round` is what anyone (``archipel verify``) checks of a round's public document: the
statements' and signatures' proofs, the netting recomputed, the stated state proved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from node.activitypub.keys import public_keys_of
from node.clearing.rounds.netting import NettingResult, net, verify_netting
from node.clearing.rounds.protocol import (
    ROUND_TYPE,
    InvalidRoundDocument,
    RoundState,
    changes_for,
    lines_of,
    obligations_from,
    parse_time,
    proof_problem,
    proposal_digest,
    read_statement,
)
from node.clearing.units import NettingError

__all__ = ["ProposalReview", "RoundVerification", "review_proposal", "verify_round"]


@dataclass
class ProposalReview:
    """What a check of a proposal found (``problems`` empty: it may be signed)."""

    problems: list[str] = field(default_factory=list)
    digest: str = ""
    lines: list[dict[str, Any]] = field(default_factory=list)
    statements: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    total_before: int = 0
    total_after: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_statements(
    review: ProposalReview,
    statements: list[Any],
    keys: Mapping[str, Any],
    round_uri: str,
    members: list[str],
) -> dict[str, dict[str, int]]:
    """Each chamber's signed positions (kept in ``review.statements``); problems noted."""
    positions: dict[str, dict[str, int]] = {}
    for statement in statements:
        if not isinstance(statement, Mapping):
            review.problems.append("a statement is a signed Add")
            continue
        if problem := proof_problem(statement, keys, None):
            review.problems.append(f"statement: {problem}")
            continue
        try:
            chamber, balances = read_statement(statement, round_uri=round_uri, participants=members)
        except InvalidRoundDocument as exc:
            review.problems.append(f"statement of {statement.get('actor')}: {exc}")
            continue
        if chamber in positions:
            review.problems.append(f"two statements of {chamber}")
            continue
        positions[chamber] = balances
        review.statements[chamber] = statement
    return positions


def _review(
    proposal: Mapping[str, Any],
    keys: Mapping[str, Any],
    *,
    round_uri: str | None,
    proposer: str | None,
    participants: Sequence[str] | None,
    end_time: str | None,
) -> ProposalReview:
    review = ProposalReview()
    problems = review.problems
    obj = proposal.get("object")
    if proposal.get("type") != "Update" or not isinstance(obj, Mapping):
        problems.append("a proposal is an Update of the round")
        return review
    if obj.get("type") != ROUND_TYPE or obj.get("state") != RoundState.PROPOSED.value:
        problems.append(f"the proposal's object is a {ROUND_TYPE} in state proposed")
        return review
    proposer = proposer or str(obj.get("attributedTo"))
    round_uri = round_uri or str(obj.get("id"))
    if problem := proof_problem(proposal, keys, proposer):
        problems.append(f"proposal: {problem}")
        return review
    expected: dict[str, Any] = {"id": round_uri, "attributedTo": proposer}
    if participants is not None:
        expected["participants"] = sorted(participants)
    if end_time is not None:
        expected["endTime"] = end_time
    for name, value in expected.items():
        if obj.get(name) != value:
            problems.append(f"the proposal's {name} is {obj.get(name)!r}, expected {value!r}")
    if problems:
        return review
    members = [str(p) for p in obj.get("participants") or []]
    statements = obj.get("statements")
    if not isinstance(statements, list) or len(statements) != len(members):
        problems.append("the proposal must carry one statement per participant")
        return review
    positions = _read_statements(review, statements, keys, round_uri, members)
    if problems:
        return review
    try:
        obligations, _ = obligations_from(positions)
        result = net(obligations)
    except NettingError as exc:
        problems.append(f"the statements cannot be netted: {exc}")
        return review
    lines = lines_of(result)
    if obj.get("netting") != lines:
        problems.append("the netting is not the optimum of the statements (recomputed)")
    certificate = obj.get("certificate")
    try:
        if not isinstance(certificate, Mapping):
            raise NettingError("the proposal has no certificate")
        verify_netting(NettingResult(result.obligations, result.removed, dict(certificate)))
    except (NettingError, TypeError) as exc:
        problems.append(f"the certificate does not prove the netting optimal: {exc}")
    totals = (obj.get("totalBefore"), obj.get("totalAfter"))
    if totals != (result.total_before, result.total_after):
        problems.append(
            f"totals {totals} differ from {(result.total_before, result.total_after)} (recomputed)"
        )
    digest = proposal_digest(round_uri, members, str(obj.get("endTime")), statements, lines)
    if obj.get("digest") != digest:
        problems.append("the digest does not match the proposal")
    review.digest, review.lines = digest, lines
    review.total_before, review.total_after = result.total_before, result.total_after
    return review


def review_proposal(
    proposal: Mapping[str, Any],
    keys: Mapping[str, Any],
    *,
    me: str,
    my_statement: Mapping[str, Any],
    round_uri: str,
    proposer: str,
    participants: Sequence[str],
    end_time: str,
) -> ProposalReview:
    """A participant's check before signing: the proposal is the proposer's, for the round it
    was invited to, carries every participant's signed statement (ours exactly as sent), and
    its netting is the optimum of those statements. ``keys``: every participant's public keys
    by key id (`public_keys_of` of their actor documents)."""
    review = _review(
        proposal,
        keys,
        round_uri=round_uri,
        proposer=proposer,
        participants=participants,
        end_time=end_time,
    )
    if review.ok and review.statements.get(me) != my_statement:
        review.problems.append("our statement in the proposal is not the one we sent")
    return review


# --- third-party verification ----------------------------------------------------------------


@dataclass
class RoundVerification:
    """The outcome of `verify_round`: ``ok``, the state it proves, and what failed."""

    ok: bool
    state: RoundState | None
    problems: list[str] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)
    total_before: int = 0
    total_after: int = 0

    def changes(self, chamber: str) -> dict[str, int]:
        """What the round posts to ``chamber``'s mirror accounts (if committed)."""
        return changes_for(chamber, self.lines) if self.state == RoundState.COMMITTED else {}


def _signers(
    signatures: Any,
    keys: Mapping[str, Any],
    proposal: Mapping[str, Any],
    digest: str,
    problems: list[str],
) -> set[str]:
    """The chambers whose signed ``Accept`` is of this very proposal; problems noted."""
    signed: set[str] = set()
    for signature in signatures if isinstance(signatures, list) else []:
        if not isinstance(signature, Mapping):
            problems.append("a signature is a signed Accept")
            continue
        if problem := proof_problem(signature, keys, None):
            problems.append(f"signature: {problem}")
            continue
        result = signature.get("result")
        if (
            signature.get("type") != "Accept"
            or signature.get("object") != proposal.get("id")
            or not isinstance(result, Mapping)
            or result.get("digest") != digest
        ):
            problems.append(f"the signature of {signature.get('actor')} is not for this proposal")
            continue
        signed.add(str(signature.get("actor")))
    return signed


def verify_round(
    document: Mapping[str, Any], actors: Iterable[Mapping[str, Any]]
) -> RoundVerification:
    """Check a round's public document with only the chambers' public actor documents.

    ``document`` is a ``ClearingRound`` with the signed ``proposal`` and, once decided, the
    signed ``decision``. Checks every proof, that the netting is the optimum of the signed
    statements, and for a committed round that every participant signed this very proposal
    (its digest) and that the proposer decided before the deadline.
    """
    keys: dict[str, Any] = {}
    for actor in actors:
        keys.update(public_keys_of(dict(actor)))
    fail = RoundVerification(False, None)
    if document.get("type") != ROUND_TYPE or not isinstance(document.get("proposal"), Mapping):
        fail.problems.append(f"not a {ROUND_TYPE} with its proposal")
        return fail
    round_uri = str(document.get("id"))
    proposer = str(document.get("attributedTo"))
    proposal = document["proposal"]
    review = _review(
        proposal,
        keys,
        round_uri=round_uri,
        proposer=proposer,
        participants=None,
        end_time=None,
    )
    verification = RoundVerification(
        False, None, review.problems, review.lines, review.total_before, review.total_after
    )
    if not review.ok:
        return verification
    members = sorted(review.statements)
    end_time = str(proposal["object"]["endTime"])
    decision = document.get("decision")
    if not decision:
        verification.state = RoundState.PROPOSED
        verification.ok = True
        return verification
    problems = verification.problems
    if not isinstance(decision, Mapping) or not isinstance(decision.get("object"), Mapping):
        problems.append("the decision is an Update of the round")
        return verification
    if problem := proof_problem(decision, keys, proposer):
        problems.append(f"decision: {problem}")
        return verification
    decided = decision["object"]
    if decided.get("id") != round_uri or decided.get("type") != ROUND_TYPE:
        problems.append("the decision is about another round")
        return verification
    state = decided.get("state")
    if state == RoundState.ABORTED.value:
        verification.state, verification.ok = RoundState.ABORTED, True
        return verification
    if state != RoundState.COMMITTED.value:
        problems.append(f"the decision's state is {state!r}")
        return verification
    if decided.get("digest") != review.digest:
        problems.append("the decision commits another proposal (digest)")
    try:
        if parse_time(decision.get("published")) > parse_time(end_time):
            problems.append("the proposer committed after the deadline")
    except InvalidRoundDocument as exc:
        problems.append(f"the decision's published time: {exc}")
    signed = _signers(decided.get("signatures"), keys, proposal, review.digest, problems)
    missing = set(members) - {proposer} - signed
    if missing:
        problems.append(f"not signed by {', '.join(sorted(missing))}")
    if not problems:
        verification.state, verification.ok = RoundState.COMMITTED, True
    return verification
