"""What the proposer's and the participants' sides of a clearing round share (private).

`RoundBase` holds the federation and the clock, publishes this chamber's statement and posts a
committed round to the ledger; the functions load and lock rounds and mirror balances. See
`node.clearing.rounds.service` for the protocol.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.federation import Federation
from node.activitypub.inbox import InboxContext, InboxRejected
from node.activitypub.keys import public_keys_of
from node.activitypub.models import LocalActor, StoredActivity
from node.activitypub.outbox import publish
from node.activitypub.urls import InvalidUrlError, same_origin
from node.clearing.ledger import rules as ledger
from node.clearing.ledger import store
from node.clearing.ledger.models import (
    ClearingAccount,
    ClearingTransaction,
    TransactionKind,
    partner_account_key,
)
from node.clearing.partners.models import Partner
from node.clearing.partners.service import urgent_until
from node.clearing.rounds.models import ClearingRound, RoundParticipant
from node.clearing.rounds.protocol import (
    FINAL_ROUND_STATES,
    RoundError,
    RoundEvent,
    RoundState,
    changes_for,
    next_round_state,
    proof_problem,
    statement_activity,
)
from node.clearing.rounds.states import ParticipantStates, RoundStates
from node.config import Settings
from node.jobs import ensure_pending
from node.process_store import move as move_process
from node.process_store import start as start_process

__all__ = [
    "ROUND_DEADLINE_JOB",
    "ROUND_REVIEW_JOB",
    "RoundBase",
    "RoundNotFound",
    "RoundRequestError",
    "inboxes_of",
    "load_round",
    "mirror_balances",
    "origin_matches",
    "participants_of",
    "partner_of",
    "schedule",
    "move_participant",
    "participant_subject",
    "set_state",
    "start_participant",
    "start_round",
]

ROUND_DEADLINE_JOB = "clearing.round.deadline"
"""At the deadline: the proposer aborts an undecided round; a participant drops a round it did
not sign, or asks the proposer for its decision (``Undo``) until it gets one (with backoff)."""
ROUND_REVIEW_JOB = "clearing.round.review"
"""A participant checks a proposal (fetching the participants' public keys) and signs or
refuses it."""


class RoundRequestError(RoundError):
    """A round cannot be proposed as asked; the message says why."""


class RoundNotFound(RoundError):
    pass


class RoundBase:
    """The federation, the clock and what both sides do with the database."""

    def __init__(
        self,
        federation: Federation,
        *,
        timeout: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.federation = federation
        self.sessionmaker: async_sessionmaker[AsyncSession] = federation.sessionmaker
        self.timeout = timeout
        self._clock = clock

    @classmethod
    def from_settings(cls, federation: Federation, settings: Settings) -> Self:
        return cls(federation, timeout=timedelta(seconds=settings.clearing_round_timeout_seconds))

    def clock(self) -> datetime:
        return (self._clock or self.federation.clock)()

    @property
    def chamber_uri(self) -> str:
        return self.federation.urls(self.federation.instance_username).id

    async def _chamber_actor(self, session: AsyncSession) -> LocalActor:
        return (
            await session.execute(
                select(LocalActor).where(LocalActor.username == self.federation.instance_username)
            )
        ).scalar_one()

    async def _own_key_document(self, session: AsyncSession) -> dict[str, Any]:
        actor = await self._chamber_actor(session)
        urls = self.federation.urls(actor.username)
        return {
            "id": urls.id,
            "assertionMethod": [
                {
                    "id": urls.ed25519_key_id,
                    "type": "Multikey",
                    "controller": urls.id,
                    "publicKeyMultibase": actor.ed25519_public_multibase,
                }
            ],
        }

    async def _inbox_of(self, session: AsyncSession, chamber: str) -> str:
        """The partner's inbox, else the one of its (already fetched) actor document."""
        partner = await partner_of(session, chamber)
        if partner is not None:
            return partner.inbox
        actor = await self.federation.cached_actor(session, chamber)
        return actor.shared_inbox or actor.inbox

    async def _require_proof(self, ctx: InboxContext) -> None:
        """The activity must carry its actor's object proof: it is evidence for the others."""
        actor = await self.federation.cached_actor(ctx.session, ctx.actor_uri)
        problem = proof_problem(ctx.activity, public_keys_of(actor.document), ctx.actor_uri)
        if problem:
            raise InboxRejected(401, f"the proof is refused: {problem}", "invalidProof")

    async def _state(
        self,
        session: AsyncSession,
        actor: LocalActor,
        round_row: ClearingRound,
        *,
        inboxes: list[str],
        now: datetime,
    ) -> StoredActivity:
        """Publish this chamber's statement: its mirror balances for the other participants."""
        me = self.chamber_uri
        others = [p for p in round_row.participants if p != me]
        balances = await mirror_balances(session, others)
        statement_id = f"{self.federation.base_url}/round-statements/{secrets.token_hex(8)}"
        stored = await publish(
            self.federation,
            session,
            actor,
            statement_activity(round_row.uri, statement_id, me, round_row.proposer_uri, balances),
            inboxes=inboxes,
            now=now,
            urgent_until=urgent_until(round_row.deadline, now),
        )
        round_row.statement_activity_id = stored.activity_id
        return stored

    async def _post(self, session: AsyncSession, round_row: ClearingRound, now: datetime) -> None:
        """Post this chamber's side of a committed round, once (``reference`` = round URI)."""
        existing = (
            await session.execute(
                select(ClearingTransaction).where(ClearingTransaction.reference == round_row.uri)
            )
        ).scalar_one_or_none()
        if existing is not None:
            round_row.transaction_id = existing.id
            return
        changes = changes_for(self.chamber_uri, round_row.proposal["object"]["netting"])
        if not changes:
            return  # this chamber is on no netted cycle
        by_key = {partner_account_key(other): amount for other, amount in changes.items()}
        transaction = ledger.Transaction(
            ledger.Posting(key, amount) for key, amount in sorted(by_key.items())
        )
        row = ClearingTransaction(
            kind=TransactionKind.ROUND,
            reference=round_row.uri,
            memo=f"clearing round {round_row.uri}"[:200],
            posted_at=now,
        )
        try:
            await store.write(session, transaction, row, decided=True)
        except ledger.UnknownAccount as exc:
            raise RoundError(f"round {round_row.uri}: no mirror account {exc}") from exc
        round_row.transaction_id = row.id
        await session.flush()


def origin_matches(a: str, b: str) -> bool:
    try:
        return same_origin(a, b)
    except InvalidUrlError:
        return False


def set_state(
    session: AsyncSession, row: ClearingRound, event: RoundEvent, now: datetime, *, reason: str = ""
) -> None:
    """Move the round on ``event`` through `RoundStates` (recorded), or raise."""
    after = next_round_state(RoundState(row.state), event)
    move_process(session, RoundStates, row, after, subject=row.uri, now=now, reason=reason)
    row.updated_at = now
    if reason:
        row.reason = reason
    if row.state in FINAL_ROUND_STATES:
        row.decided_at = now


def inboxes_of(rows: dict[str, RoundParticipant], me: str) -> list[str]:
    return [r.inbox for chamber, r in sorted(rows.items()) if chamber != me and r.inbox]


async def load_round(
    session: AsyncSession, uri: str, *, lock: bool = False
) -> ClearingRound | None:
    query = select(ClearingRound).where(ClearingRound.uri == uri)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def participants_of(
    session: AsyncSession, round_row: ClearingRound
) -> dict[str, RoundParticipant]:
    rows = await session.execute(
        select(RoundParticipant)
        .where(RoundParticipant.round_id == round_row.id)
        .order_by(RoundParticipant.chamber_uri)
    )
    return {r.chamber_uri: r for r in rows.scalars()}


async def partner_of(session: AsyncSession, chamber: str) -> Partner | None:
    return (
        await session.execute(select(Partner).where(Partner.chamber_uri == chamber))
    ).scalar_one_or_none()


async def mirror_balances(
    session: AsyncSession, chambers: Sequence[str], *, lock: bool = False
) -> dict[str, int]:
    """The balances of these chambers' mirror accounts (those that exist), by chamber."""
    keys = {partner_account_key(chamber): chamber for chamber in chambers}
    if not keys:
        return {}
    query = (
        select(ClearingAccount.key, ClearingAccount.balance)
        .where(ClearingAccount.key.in_(list(keys)))
        .order_by(ClearingAccount.id)
    )
    if lock:
        query = query.with_for_update()
    return {keys[key]: balance for key, balance in (await session.execute(query)).all()}


async def schedule(
    session: AsyncSession, kind: str, uri: str, run_at: datetime, now: datetime
) -> None:
    """The round's job of ``kind`` at ``run_at``, unless one is pending for it already."""
    await ensure_pending(
        session, kind, run_at, process_key=f"{kind} {uri}", payload={"round": uri}, now=now
    )


def start_round(session: AsyncSession, row: ClearingRound, now: datetime) -> None:
    """A new round row (either side) starts ``collecting``, recorded."""
    start_process(session, RoundStates, row, RoundStates.collecting, subject=row.uri, now=now)


def participant_subject(round_uri: str, chamber: str) -> str:
    return f"{round_uri} {chamber}"


def start_participant(
    session: AsyncSession, row: RoundParticipant, round_uri: str, state: str, now: datetime
) -> None:
    """A chamber of the round, ``invited`` (or ``stated``: its statement is known), recorded."""
    subject = participant_subject(round_uri, row.chamber_uri)
    start_process(session, ParticipantStates, row, state, subject=subject, now=now)


def move_participant(
    session: AsyncSession,
    row: RoundParticipant,
    round_uri: str,
    to: str,
    now: datetime,
    *,
    reason: str = "",
) -> None:
    """Move one chamber of the round through `ParticipantStates` (recorded); a repeat of the
    state it is in (a duplicate message) changes nothing."""
    if row.state != to:
        subject = participant_subject(round_uri, row.chamber_uri)
        move_process(session, ParticipantStates, row, to, subject=subject, now=now, reason=reason)
    row.updated_at = now
