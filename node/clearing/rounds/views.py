"""What the pages, the API and the CLI show of clearing rounds: summaries, details, and the
public document anyone can verify (`node.clearing.rounds.review.verify_round`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from node.clearing.rounds.models import ClearingRound
from node.clearing.rounds.protocol import ROUND_TYPE, format_time

__all__ = ["ParticipantView", "RoundDetail", "RoundSummary", "public_document"]


@dataclass(frozen=True)
class RoundSummary:
    """One round as the lists show it."""

    uri: str
    role: str
    state: str
    proposer: str
    participants: tuple[str, ...]
    deadline: datetime
    total_before: int
    total_after: int
    reason: str
    created_at: datetime
    decided_at: datetime | None

    @classmethod
    def of(cls, row: ClearingRound) -> RoundSummary:
        return cls(
            uri=row.uri,
            role=row.role,
            state=row.state,
            proposer=row.proposer_uri,
            participants=tuple(row.participants or ()),
            deadline=row.deadline,
            total_before=row.total_before,
            total_after=row.total_after,
            reason=row.reason,
            created_at=row.created_at,
            decided_at=row.decided_at,
        )

    @property
    def netted(self) -> int:
        """Minutes of debt the round cancels (or would cancel)."""
        return self.total_before - self.total_after

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.uri,
            "role": self.role,
            "state": self.state,
            "proposer": self.proposer,
            "participants": list(self.participants),
            "deadline": format_time(self.deadline),
            "total_before_minutes": self.total_before,
            "total_after_minutes": self.total_after,
            "netted_minutes": self.netted,
            "reason": self.reason,
            "created_at": format_time(self.created_at),
            "decided_at": format_time(self.decided_at) if self.decided_at else None,
        }


@dataclass(frozen=True)
class ParticipantView:
    """One chamber of a round: its state, its signed statement and signature (if known)."""

    chamber: str
    state: str
    positions: dict[str, int]
    statement: dict[str, Any] | None
    signature: dict[str, Any] | None
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "chamber": self.chamber,
            "state": self.state,
            "positions": self.positions,
            "statement": self.statement,
            "signature": self.signature,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RoundDetail:
    """One round with its participants, netting lines and public (verifiable) document."""

    summary: RoundSummary
    participants: list[ParticipantView]
    netting: list[dict[str, Any]]
    mismatches: list[dict[str, Any]]
    changes: dict[str, int]
    """What the round posts (or posted) to this chamber's mirror accounts, by partner."""
    document: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.summary.as_json(),
            "chambers": [p.as_json() for p in self.participants],
            "netting": self.netting,
            "mismatches": self.mismatches,
            "changes": self.changes,
            "document": self.document,
        }


def public_document(row: ClearingRound) -> dict[str, Any]:
    """The round as anyone may check it (`rounds.verify_round`): the signed proposal (with the
    signed statements) and the signed decision (with the signatures)."""
    document: dict[str, Any] = {
        "@context": "https://www.w3.org/ns/activitystreams",
        "type": ROUND_TYPE,
        "id": row.uri,
        "attributedTo": row.proposer_uri,
        "participants": list(row.participants or ()),
        "endTime": format_time(row.deadline),
        "state": row.state,
    }
    if row.proposal:
        document["proposal"] = row.proposal
    if row.decision:
        document["decision"] = row.decision
    return document
