"""The other chamber's copy of an exchange, kept in step with the declaring chamber.

The declaring chamber decides (``docs/between-chambers.md``). Our copy takes each signed step
of the declaring side (the initiator's amendment or withdrawal, its chamber's expiry) and of
the counterparty; when two steps crossed, it converges to the declaring chamber's state:

- a step the copy can take now is applied (`amend`, `answer`);
- our member's refusal crossed the declaring side's step (which the declaring chamber took
  first, so it ignored the refusal): the copy follows it through the declared correction
  (`states.crossing_correction`, the rule ``archipel verify`` replays too);
- the copy is ``settling``: the declaring side's step is kept (`DeferredStep`) until the
  settlement's decision; `after_decision` then applies what is still a step (an abort brought
  the copy back to an open state) and drops the rest (the decision already says it).

The caller checks who sent the step and its proof; this module applies it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.inbox import InboxIgnored, InboxRejected
from node.activitypub.models import StoredActivity
from node.clearing.exchanges import history
from node.clearing.exchanges.notices import notify_exchange
from node.clearing.exchanges.states import (
    OPEN_STATES,
    ExchangeEvent,
    ExchangeState,
    InvalidTransition,
    Party,
    crossing_correction,
    next_state,
)
from node.clearing.ledger.models import DeferredStep, Exchange
from node.clearing.units import MAX_BRICKS, MAX_DESCRIPTION, MAX_MINUTES

__all__ = [
    "DEFERRED",
    "after_decision",
    "amend",
    "answer",
    "apply_amendment",
    "terms_of",
]

log = logging.getLogger(__name__)

DEFERRED = "deferred"
"""What `amend` and `answer` return for a step kept until the settlement is decided."""


def _bad(message: str) -> InboxRejected:
    return InboxRejected(422, message, "invalidExchange")


def terms_of(obj: dict[str, Any]) -> dict[str, Any]:
    """The terms of an exchange document, validated as strictly as a local declaration."""
    minutes = obj.get("minutes")
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 0 < minutes <= MAX_MINUTES:
        raise _bad(f"minutes: a whole number between 1 and {MAX_MINUTES}")
    summary = obj.get("summary")
    if not isinstance(summary, str) or not summary.strip() or len(summary) > MAX_DESCRIPTION:
        raise _bad(f"summary: the description, 1 to {MAX_DESCRIPTION} characters")
    when = obj.get("hasPointInTime")
    try:
        performed_on = date.fromisoformat(str(when)[:10])
    except ValueError:
        raise _bad("hasPointInTime: the date of the exchange") from None
    tags = obj.get("tag") or []
    if not isinstance(tags, list) or len(tags) > MAX_BRICKS:
        raise _bad(f"tag: at most {MAX_BRICKS} bricks")
    bricks = [
        t["href"]
        for t in tags
        if isinstance(t, dict) and isinstance(t.get("href"), str) and len(t["href"]) <= 2048
    ]
    version = obj.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 10_000:
        raise _bad("version: a positive whole number")
    return {
        "minutes": minutes,
        "description": summary.strip(),
        "performed_on": performed_on,
        "bricks": bricks,
        "version": version,
    }


def apply_amendment(
    session: AsyncSession,
    exchange: Exchange,
    obj: dict[str, Any],
    update_id: str,
    now: datetime,
    expiry: timedelta,
    *,
    correction: bool = False,
) -> None:
    """Take the terms of a (checked) ``Update`` into our copy of the exchange."""
    terms = terms_of(obj)
    if (obj.get("provider"), obj.get("receiver")) != (
        exchange.provider_uri,
        exchange.beneficiary_uri,
    ):
        raise _bad("an amendment cannot change the parties")
    for name, value in terms.items():
        setattr(exchange, name, value)
    history.move(
        session,
        exchange,
        ExchangeState.PROPOSED,
        now=now,
        by=exchange.initiator_uri,
        reason="a newer amendment crossed our refusal" if correction else "",
        correction=correction,
    )
    exchange.comment = ""
    exchange.proposal_activity_id = update_id
    exchange.expires_at = now + expiry


async def _defer(session: AsyncSession, exchange: Exchange, stored: StoredActivity) -> str:
    session.add(DeferredStep(exchange_id=exchange.id, activity_pk=stored.id))
    log.info("%s of %s kept until its settlement is decided", stored.activity_type, exchange.uri)
    return DEFERRED


async def amend(
    session: AsyncSession,
    exchange: Exchange,
    update: dict[str, Any],
    stored: StoredActivity,
    *,
    now: datetime,
    expiry: timedelta,
) -> str:
    """The initiator's signed ``Update`` (``stored``) of our copy: applied, corrected after
    a crossing, or kept while settling; else `InboxIgnored`."""
    obj = update.get("object")
    if not isinstance(obj, dict):
        raise _bad("an Update carries the exchange itself")
    amended = terms_of(obj)["version"]
    if update.get("id") == exchange.proposal_activity_id or amended <= exchange.version:
        raise InboxIgnored(f"version {amended} is not newer than the current proposal's")
    state = ExchangeState(exchange.state)
    correction = False
    try:
        next_state(state, ExchangeEvent.AMEND, Party.INITIATOR)
    except InvalidTransition as exc:
        if state == ExchangeState.SETTLING:
            return await _defer(session, exchange, stored)
        crossed = crossing_correction(
            state,
            ExchangeEvent.AMEND,
            Party.INITIATOR,
            version=exchange.version,
            amended_version=amended,
        )
        if crossed is None:
            raise InboxIgnored(str(exc)) from None
        correction = True
    apply_amendment(session, exchange, obj, str(update["id"]), now, expiry, correction=correction)
    initiator = exchange.initiator_uri
    session.add(history.event(exchange, ExchangeEvent.AMEND.value, initiator, stored, now))
    await notify_exchange(session, exchange, ExchangeEvent.AMEND.value, initiator)
    return ExchangeEvent.AMEND.value


async def answer(
    session: AsyncSession,
    exchange: Exchange,
    activity: dict[str, Any],
    stored: StoredActivity,
    event: ExchangeEvent,
    party: Party,
    actor_uri: str,
    *,
    now: datetime,
) -> str:
    """An answer to the current proposal (contest, refuse, withdraw, expire) by ``party``:
    applied, corrected after a crossing, or (the declaring side's) kept while settling."""
    state = ExchangeState(exchange.state)
    correction = False
    try:
        after = next_state(state, event, party)
    except InvalidTransition as exc:
        if state == ExchangeState.SETTLING and party != Party.COUNTERPARTY:
            return await _defer(session, exchange, stored)
        crossed = crossing_correction(state, event, party, version=exchange.version)
        if crossed is None:
            log.info("%s of %s ignored: %s", event.value, exchange.uri, exc)
            raise InboxIgnored(str(exc)) from None
        after, correction = crossed, True
    content = activity.get("content")
    comment = content.strip()[:MAX_DESCRIPTION] if isinstance(content, str) else ""
    history.move(
        session,
        exchange,
        after,
        now=now,
        by=actor_uri,
        reason=f"{event.value} crossed our refusal" if correction else "",
        correction=correction,
    )
    exchange.comment = comment if event == ExchangeEvent.CONTEST else exchange.comment
    session.add(history.event(exchange, event.value, actor_uri, stored, now, comment=comment))
    await notify_exchange(session, exchange, event.value, actor_uri)
    return event.value


async def after_decision(
    session: AsyncSession, exchange: Exchange, *, now: datetime, expiry: timedelta
) -> list[str]:
    """Once the settlement of our (locked) copy is decided: each step kept meanwhile, oldest
    first, is applied if it still is one (after an abort), else dropped; if the abort left
    the exchange open, its members are told (``reopened``). Returns what was applied."""
    rows = (
        await session.execute(
            select(DeferredStep, StoredActivity)
            .join(StoredActivity, StoredActivity.id == DeferredStep.activity_pk)
            .where(DeferredStep.exchange_id == exchange.id)
            .order_by(DeferredStep.id)
        )
    ).all()
    for step, _ in rows:
        await session.delete(step)
    applied: list[str] = []
    pending = [stored for _, stored in rows]
    while pending:  # a withdrawal of an amendment that arrived before it applies after it
        left = []
        for stored in pending:
            try:
                applied.append(await _apply_kept(session, exchange, stored, now, expiry))
            except (InboxIgnored, InboxRejected):
                left.append(stored)
        if len(left) == len(pending):
            break
        pending = left
    for stored in pending:
        log.info("kept %s of %s dropped", stored.activity_type, exchange.uri)
    if exchange.state in OPEN_STATES:
        await notify_exchange(session, exchange, "reopened", exchange.initiator_uri)
    await session.flush()
    return applied


async def _apply_kept(
    session: AsyncSession,
    exchange: Exchange,
    stored: StoredActivity,
    now: datetime,
    expiry: timedelta,
) -> str:
    activity = stored.document
    if activity.get("type") == "Update":
        return await amend(session, exchange, activity, stored, now=now, expiry=expiry)
    return await _deferred_answer(session, exchange, activity, stored, now=now)


async def _deferred_answer(
    session: AsyncSession,
    exchange: Exchange,
    activity: dict[str, Any],
    stored: StoredActivity,
    *,
    now: datetime,
) -> str:
    if activity.get("object") != exchange.proposal_activity_id:
        raise InboxIgnored("it answers a proposal that is no longer the current one")
    actor = stored.actor_uri
    if activity.get("type") == "Undo" and actor == exchange.initiator_uri:
        event, party = ExchangeEvent.WITHDRAW, Party.INITIATOR
    elif activity.get("type") == "Reject" and actor not in (
        exchange.provider_uri,
        exchange.beneficiary_uri,
    ):
        event, party = ExchangeEvent.EXPIRE, Party.CHAMBER
    else:
        raise InboxIgnored(f"{activity.get('type')} by {actor} is not a step kept here")
    return await answer(session, exchange, activity, stored, event, party, actor, now=now)
