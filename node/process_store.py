"""The store side of `node.process`: every move of a process is kept as a row.

`move` is the one function that changes a process's state in the database: it checks the
move against the graph, assigns it, and records it in ``process_moves`` (what, from, to, by
whom, why, when) in the caller's transaction. The domain's own history (an exchange's
``ClearingEvent``s) is kept beside it by its own recorder.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, Session, mapped_column

from node.db import Base, UTCDateTime
from node.process import Move, StateGraph

__all__ = ["ProcessMove", "move", "moves_of", "record", "start"]


class ProcessMove(Base):
    __tablename__ = "process_moves"
    __table_args__ = (Index("ix_process_moves_subject", "graph", "subject"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    graph: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(600))
    before: Mapped[str | None] = mapped_column(String(32), nullable=True)
    after: Mapped[str] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(2048), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def record(session: AsyncSession | Session, change: Move, now: datetime) -> Move:
    """Keep ``change`` in the caller's transaction."""
    session.add(
        ProcessMove(
            graph=change.graph,
            subject=change.subject[:600],
            before=change.before,
            after=change.after,
            by=change.by[:2048],
            reason=change.reason[:2000],
            details=change.details,
            created_at=change.at or now,
        )
    )
    return change


def move(
    session: AsyncSession | Session,
    graph: type[StateGraph],
    row: Any,
    to: Any,
    *,
    subject: str,
    now: datetime,
    by: str = "",
    reason: str = "",
    correction: bool = False,
    **details: Any,
) -> Move:
    """Move ``row`` to ``to`` through ``graph`` (or `node.process.InvalidMove`) and record it
    (``correction``: one of the graph's declared corrections may be made)."""
    change = graph.move(
        row, to, subject=subject, by=by, reason=reason, at=now, correction=correction, **details
    )
    return record(session, change, now)


def start(
    session: AsyncSession | Session,
    graph: type[StateGraph],
    row: Any,
    state: Any,
    *,
    subject: str,
    now: datetime,
    by: str = "",
) -> Move:
    """Give a new row its initial state and record it."""
    change = graph.start(row, state, subject=subject)
    return record(session, Move(change.graph, subject, None, change.after, by, "", now), now)


async def moves_of(session: AsyncSession, graph: type[StateGraph], subject: str) -> list[Move]:
    rows = await session.execute(
        select(ProcessMove)
        .where(ProcessMove.graph == graph.__name__, ProcessMove.subject == subject)
        .order_by(ProcessMove.id)
    )
    return [
        Move(r.graph, r.subject, r.before, r.after, r.by, r.reason, r.created_at, r.details)
        for r in rows.scalars()
    ]
