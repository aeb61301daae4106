"""Multilateral clearing rounds between chambers: propose, state, net, sign, decide, post.

The protocol (documents in `node.clearing.rounds.protocol`, prose in ``docs/between-chambers.md``)::

    proposer                                  each participant
    ────────                                  ────────────────
    propose_round: own statement,
    Invite ─────────────────────────────────▶ (a partner?) statement of its mirror balances
           ◀───────────────────────────────── Add{PositionStatement}   (or Reject: declines)
    all stated: netting (min-cost flow),
    Update{proposed} ───────────────────────▶ review job: proofs, recomputed optimum, our
                                               statement unchanged, positions still there
           ◀───────────────────────────────── Accept{digest}           (or Reject: refuses)
    all signed before the deadline:
    ONE transaction: post + decide
    Update{committed, signatures} ──────────▶ ONE transaction: post (reference = round URI)
    (or Update{aborted}: refusal, deadline, withdrawn signature)

**The proposer is the single decider**, and decides in one local transaction: it commits only
when every other participant's signature has arrived before the deadline (by its clock), and
posts its own side in that same transaction; it aborts on any refusal, on its deadline job, or
when a participant withdraws. A participant never decides after signing: it refuses to sign
after the deadline (by its clock), so a round it did not sign cannot commit and it may drop it
at the deadline; once signed it waits for the proposer's word. If none has come at the
deadline, a durable job sends an ``Undo`` of its signature ("abort unless you committed") and
repeats it with backoff until a decision arrives: the proposer answers with the decision it
took (delivering it again) or, undecided, aborts. This is the ``Undo`` pattern of bilateral
settlement; every message is also a durable delivery retried until the peer answers.

**Posting.** Each participant posts one `ClearingTransaction` of kind ``round`` whose
``reference`` is the round URI (unique: a second decision changes nothing), with postings on the
partner mirror accounts only (`rounds.changes_for`): members' balances never change, and since
the netting keeps every chamber's net position the postings sum to zero in every ledger. The
mirror accounts stay opposite: both sides of a pair post the same amount with opposite signs.
They are posted **without limit checks** (`ledger.apply_decided`): every chamber signed the
netting, the proposer's decision is final, and a participant that refused to post now would
leave the ledgers disagreeing forever. Besides, a round only *reduces* debts: at signing, each
participant checks that every change brings a current balance towards zero
(`rounds.stale_changes`), and the proposer checks its own under the account locks when it
commits.

**Bilateral settlements during a round** keep flowing; the round needs no lock on them:

* A statement is the *posted* balances; a pair's debt enters the netting only as far as both
  statements show it (``min``; `rounds.obligations_from`), so a settlement in flight (committed
  at the decider, still pending at the preparer) is never netted: a pair disagrees only by
  such settlements or by a real mismatch (reconciliation's business), and the undisputed part is
  what both ledgers hold.
* Round postings are deltas, never absolute balances: whatever settlements commit before,
  during or after the round, each side of a pair ends up with ``statement - removed + the
  settlements``, the same on both sides, so the mirrors stay opposite once every settlement in
  flight is decided (the same invariant as for settlements alone).
* A settlement that moved a position back since the statement makes the round stale for that
  pair: the participant refuses to sign, or the proposer aborts when it sees it on its own side.
  A settlement between a participant's signature and the decision can still leave a mirror
  account past its partner's credit line after the round posts (the round moved debt around a
  cycle that all the chambers signed). The ledger then accepts only postings that bring it back,
  exactly as after an administrator lowers a credit line; no minute is created or lost.

Code: the documents and their checks are pure
(`node.clearing.rounds.protocol`); the proposer's side is
in ``_round_proposer``, a participant's in ``_round_participant``, what they share (posting,
loading, locking) in ``_round_base``; what pages show in `node.clearing.rounds.views`. Wiring:
`register_round_handlers` (inbox) and `round_job_handlers` (worker).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.inbox import Handler as InboxHandler
from node.activitypub.inbox import InboxContext, InboxDispatcher
from node.clearing.rounds.base import (
    ROUND_DEADLINE_JOB,
    ROUND_REVIEW_JOB,
    RoundNotFound,
    RoundRequestError,
    load_round,
    participants_of,
)
from node.clearing.rounds.models import ClearingRound, ParticipantState, RoundRole
from node.clearing.rounds.participant import ParticipantSide
from node.clearing.rounds.proposer import ProposerSide
from node.clearing.rounds.protocol import (
    FINAL_ROUND_STATES,
    ROUND_TYPE,
    STATEMENT_TYPE,
    InvalidRoundDocument,
    changes_for,
    read_statement,
)
from node.clearing.rounds.views import ParticipantView, RoundDetail, RoundSummary, public_document
from node.db import session_scope
from node.jobs import Done, Fail, Handler, Job, Outcome, Retry

__all__ = [
    "ROUND_DEADLINE_JOB",
    "ROUND_REVIEW_JOB",
    "ParticipantView",
    "RoundDetail",
    "RoundNotFound",
    "RoundRequestError",
    "RoundService",
    "RoundSummary",
    "public_document",
    "register_round_handlers",
    "round_job_handlers",
]


class RoundService(ProposerSide, ParticipantSide):
    """Everything about clearing rounds: propose (`propose_round`), read (`list_rounds`,
    `get_round`), the inbox handlers (``on_*``) and the jobs (`review`, `on_deadline`).
    Built from the federation; `from_settings` adds the round timeout for proposing."""

    async def list_rounds(
        self, session: AsyncSession, *, limit: int = 50, state: str | None = None
    ) -> list[RoundSummary]:
        """The latest rounds this chamber proposed or took part in, newest first."""
        query = select(ClearingRound).order_by(ClearingRound.id.desc()).limit(limit)
        if state:
            query = query.where(ClearingRound.state == state)
        return [RoundSummary.of(row) for row in (await session.execute(query)).scalars()]

    async def get_round(self, session: AsyncSession, uri: str) -> RoundDetail:
        """One round (by URI) with its statements, signatures, netting and public document."""
        row = (
            await session.execute(select(ClearingRound).where(ClearingRound.uri == uri))
        ).scalar_one_or_none()
        if row is None:
            raise RoundNotFound(f"no round {uri!r} on this chamber")
        participants = await participants_of(session, row)
        views = []
        for chamber in row.participants:
            p = participants.get(chamber)
            positions: dict[str, int] = {}
            if p is not None and p.statement:
                try:
                    positions = read_statement(
                        p.statement, round_uri=row.uri, participants=row.participants
                    )[1]
                except InvalidRoundDocument:
                    positions = {}
            views.append(
                ParticipantView(
                    chamber=chamber,
                    state=p.state if p else ParticipantState.INVITED,
                    positions=positions,
                    statement=p.statement if p else None,
                    signature=p.signature if p else None,
                    reason=p.reason if p else "",
                )
            )
        obj = row.proposal.get("object", {}) if row.proposal else {}
        netting = list(obj.get("netting", []))
        return RoundDetail(
            summary=RoundSummary.of(row),
            participants=views,
            netting=netting,
            mismatches=list(obj.get("mismatches", [])),
            changes=changes_for(self.chamber_uri, netting),
            document=public_document(row),
        )

    async def on_deadline(self, uri: str) -> Outcome:
        """The deadline job: see `ROUND_DEADLINE_JOB`."""
        async with session_scope(self.sessionmaker) as session:
            round_row = await load_round(session, uri, lock=True)
            if round_row is None:
                return Fail(f"no round {uri}")
            if round_row.state in FINAL_ROUND_STATES:
                return Done()
            now = self.clock()
            if now < round_row.deadline:
                return Retry("not yet", delay=round_row.deadline - now)
            if round_row.role == RoundRole.PROPOSER:
                await self._proposer_deadline(session, round_row)
                return Done()
            return await self._participant_deadline(session, round_row)


def register_round_handlers(dispatcher: InboxDispatcher, service: RoundService) -> None:
    """Listen to the round activities, with the node's one ``RoundService``."""

    def handler(name: str) -> InboxHandler:
        async def handle(ctx: InboxContext) -> None:
            await getattr(service, name)(ctx)

        handle.__name__ = f"round_{name}"
        return handle

    for activity_type, object_type, name in (
        ("Invite", ROUND_TYPE, "on_invite"),
        ("Add", STATEMENT_TYPE, "on_statement"),
        ("Update", ROUND_TYPE, "on_update"),
        ("Accept", ("Update", ROUND_TYPE), "on_signature"),
        ("Reject", ("Invite", ROUND_TYPE), "on_reject"),
        ("Reject", ("Update", ROUND_TYPE), "on_reject"),
        ("Undo", "Accept", "on_undo"),  # a participant withdraws its signature
    ):
        dispatcher.register(activity_type, object_type, handler(name))


def round_job_handlers(service: RoundService) -> dict[str, Handler]:
    """The durable jobs of clearing rounds, for the worker, run by the node's one service."""

    async def review(job: Job) -> Outcome:
        return await service.review(str(job.payload["round"]))

    async def deadline(job: Job) -> Outcome:
        return await service.on_deadline(str(job.payload["round"]))

    return {ROUND_REVIEW_JOB: review, ROUND_DEADLINE_JOB: deadline}
