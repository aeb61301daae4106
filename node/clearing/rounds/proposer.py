"""The proposer's side of a clearing round (private; see `node.clearing.rounds.service`).

It invites, collects the statements, nets them and sends the proposal, collects the
signatures, and decides: commit (posting its own side in the same transaction) or abort.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import id_of
from node.activitypub.inbox import InboxContext, InboxRejected
from node.activitypub.models import StoredActivity
from node.activitypub.outbox import deliver_again, publish
from node.clearing.partners.models import Partner
from node.clearing.partners.service import urgent_until
from node.clearing.rounds.base import (
    ROUND_DEADLINE_JOB,
    RoundBase,
    RoundRequestError,
    inboxes_of,
    load_round,
    mirror_balances,
    move_participant,
    participants_of,
    schedule,
    set_state,
    start_participant,
    start_round,
)
from node.clearing.rounds.models import ClearingRound, ParticipantState, RoundParticipant, RoundRole
from node.clearing.rounds.netting import net
from node.clearing.rounds.protocol import (
    FINAL_ROUND_STATES,
    MAX_PARTICIPANTS,
    ROUND_TYPE,
    STATEMENT_TYPE,
    InvalidRoundDocument,
    RoundEvent,
    RoundState,
    changes_for,
    decision_activity,
    invite_activity,
    obligations_from,
    proposal_activity,
    read_statement,
    stale_changes,
)
from node.clearing.rounds.views import RoundSummary
from node.db import session_scope

__all__ = ["ProposerSide"]


class ProposerSide(RoundBase):
    """Propose, collect, net, decide."""

    async def propose_round(self, partners: Sequence[str] | None = None) -> RoundSummary:
        """Start a round among this chamber and ``partners`` (actor URIs; None: every partner).

        Records the round and this chamber's statement and sends the invitations, in one
        transaction; the rest happens as the answers arrive. Raises `RoundRequestError`.
        """
        me = self.chamber_uri
        async with session_scope(self.sessionmaker) as session:
            query = select(Partner).order_by(Partner.chamber_uri)
            if partners is not None:
                wanted = set(partners)
                query = query.where(Partner.chamber_uri.in_(wanted))
            rows = list((await session.execute(query)).scalars())
            if partners is not None:
                unknown = sorted(wanted - {p.chamber_uri for p in rows})
                if unknown:
                    raise RoundRequestError(f"not partner chambers: {', '.join(unknown)}")
            if len(rows) < 2:
                raise RoundRequestError(
                    "a round needs at least two partner chambers: a cycle of debt has three"
                )
            if len(rows) + 1 > MAX_PARTICIPANTS:
                raise RoundRequestError(f"a round has at most {MAX_PARTICIPANTS} chambers")
            now = self.clock()
            deadline = (now + self.timeout).replace(microsecond=0)
            uri = f"{self.federation.base_url}/rounds/{secrets.token_hex(8)}"
            participants = sorted([me, *(p.chamber_uri for p in rows)])
            actor = await self._chamber_actor(session)
            round_row = ClearingRound(
                uri=uri,
                role=RoundRole.PROPOSER,
                proposer_uri=me,
                deadline=deadline,
                participants=participants,
                created_at=now,
                updated_at=now,
            )
            start_round(session, round_row, now)
            session.add(round_row)
            await session.flush()
            statement = await self._state(session, actor, round_row, inboxes=[], now=now)
            own = RoundParticipant(
                round_id=round_row.id,
                chamber_uri=me,
                statement=statement.document,
                statement_activity_id=statement.activity_id,
                updated_at=now,
            )
            start_participant(session, own, uri, ParticipantState.STATED, now)
            session.add(own)
            for partner in rows:
                row = RoundParticipant(
                    round_id=round_row.id,
                    chamber_uri=partner.chamber_uri,
                    inbox=partner.inbox,
                    updated_at=now,
                )
                start_participant(session, row, uri, ParticipantState.INVITED, now)
                session.add(row)
            invite = await publish(
                self.federation,
                session,
                actor,
                invite_activity(uri, me, participants, deadline),
                inboxes=[p.inbox for p in rows],
                now=now,
                urgent_until=urgent_until(round_row.deadline, now),
            )
            round_row.invite_activity_id = invite.activity_id
            await schedule(session, ROUND_DEADLINE_JOB, uri, deadline, now)
            return RoundSummary.of(round_row)

    async def on_statement(self, ctx: InboxContext) -> None:
        """Proposer: a participant's statement; with the last one, compute and send the
        proposal."""
        obj = ctx.object
        if not isinstance(obj, dict) or obj.get("type") != STATEMENT_TYPE:
            return
        session = ctx.session
        round_row = await load_round(session, str(ctx.activity.get("target")), lock=True)
        if round_row is None or round_row.role != RoundRole.PROPOSER:
            return
        rows = await participants_of(session, round_row)
        row = rows.get(ctx.actor_uri)
        if row is None or ctx.actor_uri == self.chamber_uri:
            raise InboxRejected(403, f"{ctx.actor_uri} is not invited to this round", "notInvited")
        now = self.clock()
        if (
            round_row.state != RoundState.COLLECTING.value
            or row.state != ParticipantState.INVITED
            or now >= round_row.deadline
        ):
            return  # a duplicate, or too late: the deadline job aborts the round
        try:
            read_statement(ctx.activity, round_uri=round_row.uri, participants=rows)
        except InvalidRoundDocument as exc:
            raise InboxRejected(422, f"invalid statement: {exc}", "invalidRound") from None
        await self._require_proof(ctx)
        row.statement, row.statement_activity_id = ctx.activity, ctx.activity["id"]
        move_participant(session, row, round_row.uri, ParticipantState.STATED, now)
        if all(r.state == ParticipantState.STATED for r in rows.values()):
            await self._propose(session, round_row, rows, now)

    async def _propose(
        self,
        session: AsyncSession,
        round_row: ClearingRound,
        rows: dict[str, RoundParticipant],
        now: datetime,
    ) -> None:
        statements = [r.statement for r in rows.values() if r.statement is not None]
        positions = {
            chamber: balances
            for chamber, balances in (
                read_statement(s, round_uri=round_row.uri, participants=rows) for s in statements
            )
        }
        obligations, mismatches = obligations_from(positions)
        result = net(obligations)
        round_row.total_before, round_row.total_after = result.total_before, result.total_after
        if result.total_removed == 0:
            await self._abort(
                session, round_row, rows, "no cycle of debt between the participants", now
            )
            return
        actor = await self._chamber_actor(session)
        stored = await publish(
            self.federation,
            session,
            actor,
            proposal_activity(
                round_row.uri,
                round_row.proposer_uri,
                round_row.participants,
                round_row.deadline,
                statements,
                result,
                mismatches,
            ),
            inboxes=inboxes_of(rows, self.chamber_uri),
            now=now,
            urgent_until=urgent_until(round_row.deadline, now),
        )
        round_row.proposal = stored.document
        round_row.proposal_activity_id = stored.activity_id
        round_row.digest = stored.document["object"]["digest"]
        set_state(session, round_row, RoundEvent.PROPOSE, now)

    async def on_signature(self, ctx: InboxContext) -> None:
        """Proposer: a participant signs the proposal; with the last signature, commit."""
        result = ctx.activity.get("result")
        if not isinstance(result, dict) or result.get("type") != ROUND_TYPE:
            return
        session = ctx.session
        round_row = await load_round(session, str(result.get("id")), lock=True)
        if round_row is None or round_row.role != RoundRole.PROPOSER:
            return
        rows = await participants_of(session, round_row)
        row = rows.get(ctx.actor_uri)
        if row is None or ctx.actor_uri == self.chamber_uri:
            raise InboxRejected(403, f"{ctx.actor_uri} is not invited to this round", "notInvited")
        now = self.clock()
        if round_row.state in (RoundState.COMMITTED.value, RoundState.ABORTED.value):
            await self._send_decision_again(session, round_row, row, now)
            return
        if ctx.object != round_row.proposal_activity_id or result.get("digest") != round_row.digest:
            raise InboxRejected(422, "this is not a signature of the proposal", "invalidRound")
        if row.state != ParticipantState.STATED:
            return  # a duplicate
        await self._require_proof(ctx)
        row.signature, row.signature_activity_id = ctx.activity, ctx.activity["id"]
        move_participant(session, row, round_row.uri, ParticipantState.SIGNED, now)
        others = [r for chamber, r in rows.items() if chamber != self.chamber_uri]
        if all(r.state == ParticipantState.SIGNED for r in others):
            await self._commit(session, round_row, rows, now)

    async def on_reject(self, ctx: InboxContext) -> None:
        """Proposer: a participant declines the invitation or refuses the proposal: abort."""
        session = ctx.session
        round_row = await load_round(session, str(ctx.activity.get("context")), lock=True)
        if round_row is None or round_row.role != RoundRole.PROPOSER:
            return
        if id_of(ctx.object) not in (round_row.invite_activity_id, round_row.proposal_activity_id):
            return
        rows = await participants_of(session, round_row)
        row = rows.get(ctx.actor_uri)
        if row is None or ctx.actor_uri == self.chamber_uri:
            raise InboxRejected(403, f"{ctx.actor_uri} is not invited to this round", "notInvited")
        now = self.clock()
        why = str(ctx.activity.get("content") or "no reason given")[:1000]
        move_participant(session, row, round_row.uri, ParticipantState.DECLINED, now, reason=why)
        row.reason = why
        if round_row.state in FINAL_ROUND_STATES:
            return
        await self._abort(session, round_row, rows, f"{ctx.actor_uri} refused: {why}", now)

    async def on_undo(self, ctx: InboxContext) -> None:
        """Proposer: a signed participant heard nothing by the deadline. Tell it the decision,
        or abort now if there is none (its signature is withdrawn)."""
        obj = ctx.object
        if not isinstance(obj, dict) or obj.get("type") != "Accept":
            return
        session = ctx.session
        round_row = await load_round(session, str(ctx.activity.get("context")), lock=True)
        if round_row is None or round_row.role != RoundRole.PROPOSER:
            return
        rows = await participants_of(session, round_row)
        row = rows.get(ctx.actor_uri)
        if row is None or ctx.actor_uri == self.chamber_uri:
            raise InboxRejected(403, f"{ctx.actor_uri} is not invited to this round", "notInvited")
        now = self.clock()
        if round_row.state in FINAL_ROUND_STATES:
            await self._send_decision_again(session, round_row, row, now)
            return
        move_participant(session, row, round_row.uri, ParticipantState.WITHDRAWN, now)
        await self._abort(
            session, round_row, rows, f"{ctx.actor_uri} withdrew (no decision by the deadline)", now
        )

    async def _commit(
        self,
        session: AsyncSession,
        round_row: ClearingRound,
        rows: dict[str, RoundParticipant],
        now: datetime,
    ) -> None:
        if now >= round_row.deadline:
            await self._abort(session, round_row, rows, "the deadline passed", now)
            return
        changes = changes_for(self.chamber_uri, round_row.proposal["object"]["netting"])
        balances = await mirror_balances(session, list(changes), lock=True)
        stale = stale_changes(balances, changes)
        if stale:
            await self._abort(session, round_row, rows, "; ".join(stale), now)
            return
        await self._post(session, round_row, now)
        signatures = [
            r.signature
            for chamber, r in rows.items()
            if chamber != self.chamber_uri and r.signature is not None
        ]
        actor = await self._chamber_actor(session)
        stored = await publish(
            self.federation,
            session,
            actor,
            decision_activity(
                round_row.uri,
                round_row.proposer_uri,
                round_row.participants,
                round_row.deadline,
                RoundState.COMMITTED,
                proposal_id=round_row.proposal_activity_id,
                digest=round_row.digest,
                signatures=signatures,
            ),
            inboxes=inboxes_of(rows, self.chamber_uri),
            now=now,
            urgent_until=urgent_until(round_row.deadline, now),
        )
        round_row.decision, round_row.decision_activity_id = stored.document, stored.activity_id
        set_state(session, round_row, RoundEvent.COMMIT, now)

    async def _abort(
        self,
        session: AsyncSession,
        round_row: ClearingRound,
        rows: dict[str, RoundParticipant],
        reason: str,
        now: datetime,
    ) -> None:
        actor = await self._chamber_actor(session)
        stored = await publish(
            self.federation,
            session,
            actor,
            decision_activity(
                round_row.uri,
                round_row.proposer_uri,
                round_row.participants,
                round_row.deadline,
                RoundState.ABORTED,
                proposal_id=round_row.proposal_activity_id,
                reason=reason,
            ),
            inboxes=inboxes_of(rows, self.chamber_uri),
            now=now,
            urgent_until=urgent_until(round_row.deadline, now),
        )
        round_row.decision, round_row.decision_activity_id = stored.document, stored.activity_id
        set_state(session, round_row, RoundEvent.ABORT, now, reason=reason[:2000])

    async def _send_decision_again(
        self,
        session: AsyncSession,
        round_row: ClearingRound,
        row: RoundParticipant,
        now: datetime,
    ) -> None:
        stored = (
            await session.execute(
                select(StoredActivity).where(
                    StoredActivity.activity_id == round_row.decision_activity_id
                )
            )
        ).scalar_one_or_none()
        if stored is not None and row.inbox:
            await deliver_again(
                self.federation,
                session,
                stored,
                row.inbox,
                now=now,
                urgent_until=urgent_until(round_row.deadline, now),
            )

    async def _proposer_deadline(self, session: AsyncSession, round_row: ClearingRound) -> None:
        """The deadline passed on an undecided round: abort, naming who did not answer."""
        rows = await participants_of(session, round_row)
        waiting_for = (
            ParticipantState.INVITED
            if round_row.state == RoundState.COLLECTING.value
            else ParticipantState.STATED
        )
        silent = sorted(
            chamber
            for chamber, r in rows.items()
            if r.state == waiting_for and chamber != self.chamber_uri
        )
        await self._abort(
            session,
            round_row,
            rows,
            f"the deadline passed without an answer from {', '.join(silent) or 'everyone'}",
            self.clock(),
        )
