"""Tables for trade between chambers: partners (credit lines), settlements and pending holds.

* `Partner`: a chamber this node trades with, its inbox, and the credit line this chamber extends
  to it: how far the partner's mirror account may go below zero in *our* ledger (the mirror
  account's floor is ``-credit_line_minutes``). ``confirmed_at``: when we learnt that the partner
  has added us too (`node.clearing.partners.partnership`); members trade only once it is set.
* `Settlement`: this node's side of one attempt to settle a cross-chamber exchange, keyed by its
  ``uri``, minted by the preparing node and shared by both. The *preparer* (the chamber of the
  member who accepts) reserves holds and asks; the *decider* (the other chamber) commits or
  aborts in one local transaction, and its decision is final (`node.clearing.settlement`).
* `Hold`: a posting reserved by a prepared settlement. An account's headroom counts its pending
  holds; a hold is ``pending`` until its settlement commits (``posted``) or aborts (``voided``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow

__all__ = ["Hold", "HoldState", "Partner", "Settlement", "SettlementRole", "SettlementState"]


class Partner(Base):
    __tablename__ = "clearing_partners"
    __table_args__ = (CheckConstraint("credit_line_minutes >= 0", name="credit_line"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    chamber_uri: Mapped[str] = mapped_column(String(2048), unique=True)
    inbox: Mapped[str] = mapped_column(String(2048))
    name: Mapped[str] = mapped_column(String(255), default="")
    handle: Mapped[str] = mapped_column(String(255), default="")
    credit_line_minutes: Mapped[int] = mapped_column(Integer, default=0)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("clearing_accounts.id", ondelete="RESTRICT"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: When the partner told us it has added this chamber too (None: not yet).
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SettlementRole:
    PREPARER = "preparer"
    DECIDER = "decider"


class SettlementState:
    """The values of `node.clearing.exchanges.states.SettlementStates` (its graph says
    the moves)."""

    PREPARED = "prepared"
    RECEIVED = "received"
    COMMITTED = "committed"
    ABORTED = "aborted"


class Settlement(Base):
    __tablename__ = "clearing_settlements"
    __table_args__ = (
        CheckConstraint("minutes >= 0", name="not_negative"),
        Index("ix_clearing_settlements_state_deadline", "state", "deadline"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    #: NULL (and ``minutes`` 0) only for a decider's tombstone: an abort asked for a
    #: settlement it never saw.
    exchange_id: Mapped[int | None] = mapped_column(
        ForeignKey("clearing_exchanges.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    partner_uri: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(16))
    minutes: Mapped[int] = mapped_column(Integer)
    deadline: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: The chamber activities: the preparer's ``Offer`` and the decider's ``Accept``/``Reject``.
    prepare_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    decision_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    #: The signed activities that prove the exchange: both members' and both chambers'.
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class HoldState:
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"


class Hold(Base):
    __tablename__ = "clearing_holds"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        Index("ix_clearing_holds_account_state", "account_id", "state"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    settlement_id: Mapped[int] = mapped_column(
        ForeignKey("clearing_settlements.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("clearing_accounts.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default=HoldState.PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
