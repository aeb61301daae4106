"""An exchange's history, written in one place: its moves and the events that prove them.

`move` is the only way an exchange's state changes (checked by `ExchangeStates`, recorded
in ``process_moves``); `event` builds the `ClearingEvent` that points to the signed activity
saying it (the exchange page and ``archipel verify`` read them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.models import StoredActivity
from node.clearing.exchanges.states import ExchangeStates
from node.clearing.ledger.models import ClearingEvent, Exchange
from node.process import Move
from node.process_store import move as move_process
from node.process_store import start as start_process

__all__ = ["event", "move", "start"]


def start(session: AsyncSession, exchange: Exchange, *, now: datetime, by: str = "") -> Move:
    """A new exchange (or a copy of another chamber's) is ``proposed``."""
    return start_process(
        session, ExchangeStates, exchange, ExchangeStates.proposed, subject=exchange.uri, now=now
    )


def move(
    session: AsyncSession,
    exchange: Exchange,
    to: Any,
    *,
    now: datetime,
    by: str = "",
    reason: str = "",
    correction: bool = False,
) -> Move:
    """Move ``exchange`` to ``to`` (or `node.process.InvalidMove`), recorded; ``correction``:
    our copy follows the declaring chamber after a crossing (`states.crossing_correction`)."""
    change = move_process(
        session,
        ExchangeStates,
        exchange,
        to,
        subject=exchange.uri,
        now=now,
        by=by,
        reason=reason,
        correction=correction,
    )
    exchange.updated_at = now
    return change


def event(
    exchange: Exchange,
    name: str,
    actor_uri: str,
    stored: StoredActivity,
    now: datetime,
    *,
    comment: str = "",
    state_after: str | None = None,
    details: dict[str, Any] | None = None,
) -> ClearingEvent:
    """The `ClearingEvent` of ``name`` (``declare``, an `ExchangeEvent`, ``prepare``,
    ``commit``, ``abort``) said by ``stored``."""
    return ClearingEvent(
        exchange_id=exchange.id,
        event=name,
        state_after=state_after or exchange.state,
        actor_uri=actor_uri,
        activity_id=stored.activity_id,
        activity_pk=stored.id,
        comment=comment,
        details=details or {"version": exchange.version, "minutes": exchange.minutes},
        created_at=now,
    )
