"""Tables of multilateral clearing rounds (`node.clearing.rounds.service`).

* `ClearingRound`: this node's side of one round, keyed by its ``uri`` (minted by the proposer).
  The proposer (``role`` ``proposer``) collects the statements, computes the netting and is the
  single decider; a participant (``role`` ``participant``) states its positions, reviews and
  signs the proposal, then posts what the proposer decided. ``state`` is a
  `node.clearing.rounds.protocol.RoundState`.
* `RoundParticipant`: one chamber of a round, with its signed statement (an ``Add``) and, once
  it signed the proposal, its signature (an ``Accept``). The proposer keeps one row per chamber
  as the round goes; a participant fills them from the proposal and the decision.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow

__all__ = ["ClearingRound", "ParticipantState", "RoundParticipant", "RoundRole"]


class RoundRole:
    PROPOSER = "proposer"
    PARTICIPANT = "participant"


class ParticipantState:
    """Where one chamber of a round stands, as this node knows it."""

    INVITED = "invited"
    STATED = "stated"
    SIGNED = "signed"
    DECLINED = "declined"
    """It refused the invitation or the proposal (``reason`` says why)."""
    WITHDRAWN = "withdrawn"
    """It asked for an abort (``Undo`` of its signature) before the proposer decided."""


class ClearingRound(Base):
    __tablename__ = "clearing_rounds"
    __table_args__ = (Index("ix_clearing_rounds_state_deadline", "state", "deadline"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    proposer_uri: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(16))
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The chambers' actor URIs, sorted (the proposer included).
    participants: Mapped[list[str]] = mapped_column(JSON, default=list)
    invite_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    #: This chamber's own statement (``Add``) and, for a participant, its signature (``Accept``).
    statement_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    signature_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    #: The proposer's ``Update`` that carries the statements and the netting, as signed.
    proposal_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    proposal: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    digest: Mapped[str] = mapped_column(String(64), default="")
    #: The proposer's decision (``Update`` with ``state`` committed or aborted), as signed.
    decision_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    decision: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total_before: Mapped[int] = mapped_column(Integer, default=0)
    total_after: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(Text, default="")
    transaction_id: Mapped[int | None] = mapped_column(
        ForeignKey("clearing_transactions.id", ondelete="RESTRICT"), nullable=True, unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RoundParticipant(Base):
    __tablename__ = "clearing_round_participants"
    __table_args__ = (UniqueConstraint("round_id", "chamber_uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(
        ForeignKey("clearing_rounds.id", ondelete="CASCADE"), index=True
    )
    chamber_uri: Mapped[str] = mapped_column(String(2048))
    #: Where the proposer sends this chamber the round's activities ("" for itself).
    inbox: Mapped[str] = mapped_column(String(2048), default="")
    state: Mapped[str] = mapped_column(String(16), default=ParticipantState.INVITED)
    statement_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    statement: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    signature_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
