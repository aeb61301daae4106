"""The table of reconciliation with each partner chamber: the last statements and report.

One row per partner (`node.clearing.reconciliation.service`): when this chamber last sent its
statement of the partner's mirror account, when it last received the partner's, and the last
comparison of the two: ``ok`` or ``mismatch``, with the differences reference by reference.
The signed statements themselves are the stored activities (``activities``) named here by id:
they are the evidence.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow

__all__ = ["Reconciliation", "ReconciliationStatus"]


class ReconciliationStatus:
    NEVER = "never"  # no statement compared yet
    OK = "ok"
    MISMATCH = "mismatch"


class Reconciliation(Base):
    __tablename__ = "clearing_reconciliations"

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(
        ForeignKey("clearing_partners.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16), default=ReconciliationStatus.NEVER)
    #: Our last statement: the activity's id, when it was sent, and its cut-off.
    sent_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The partner's last statement, as received.
    received_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    received_as_of: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The last comparison (of the partner's last statement with our ledger at its cut-off).
    compared_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    our_balance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    their_balance: Mapped[int | None] = mapped_column(Integer, nullable=True)
    mismatches: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    pending: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    summary: Mapped[str] = mapped_column(Text, default="")
    #: Identifies the current set of mismatches, so that the same one is logged once.
    fingerprint: Mapped[str] = mapped_column(String(64), default="")
    mismatch_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
