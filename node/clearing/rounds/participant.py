"""A participant's side of a clearing round (private; see `node.clearing.rounds.service`).

It states its positions when invited, reviews the proposal (a job: the participants' public
keys are fetched outside any transaction) and signs or refuses it, then applies the
proposer's decision; past the deadline it drops an unsigned round or asks for the decision.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import FederationError
from node.activitypub.inbox import InboxContext, InboxRejected
from node.activitypub.keys import public_keys_of
from node.activitypub.models import StoredActivity
from node.activitypub.outbox import publish
from node.clearing.partners.service import urgent_until
from node.clearing.rounds.base import (
    ROUND_DEADLINE_JOB,
    ROUND_REVIEW_JOB,
    RoundBase,
    load_round,
    mirror_balances,
    move_participant,
    origin_matches,
    participants_of,
    partner_of,
    schedule,
    set_state,
    start_participant,
    start_round,
)
from node.clearing.rounds.models import ClearingRound, ParticipantState, RoundParticipant, RoundRole
from node.clearing.rounds.protocol import (
    ROUND_TYPE,
    InvalidRoundDocument,
    RoundEvent,
    RoundState,
    changes_for,
    format_time,
    read_invite,
    refusal_activity,
    signature_activity,
    stale_changes,
    undo_activity,
)
from node.clearing.rounds.review import ProposalReview, review_proposal
from node.db import read_only, session_scope
from node.jobs import Done, Fail, Outcome, Retry, enqueue

__all__ = ["ParticipantSide"]

log = logging.getLogger(__name__)


class ParticipantSide(RoundBase):
    """State, review, sign, apply the decision."""

    async def on_invite(self, ctx: InboxContext) -> None:
        """A partner invites us: state our positions (or decline)."""
        obj = ctx.object
        if not isinstance(obj, dict) or obj.get("type") != ROUND_TYPE:
            return
        try:
            invitation = read_invite(ctx.activity)
        except InvalidRoundDocument as exc:
            raise InboxRejected(422, f"invalid round invitation: {exc}", "invalidRound") from None
        if invitation.proposer != ctx.actor_uri or not origin_matches(
            invitation.uri, ctx.actor_uri
        ):
            raise InboxRejected(403, "a round is proposed by its own chamber", "originMismatch")
        me = self.chamber_uri
        if me not in invitation.participants:
            raise InboxRejected(422, f"{me} is not a participant of this round", "invalidRound")
        session = ctx.session
        if await load_round(session, invitation.uri) is not None:
            return  # invited twice (a redelivery under another id): we answered already
        now = self.clock()
        partner = await partner_of(session, invitation.proposer)
        round_row = ClearingRound(
            uri=invitation.uri,
            role=RoundRole.PARTICIPANT,
            proposer_uri=invitation.proposer,
            deadline=invitation.deadline,
            participants=list(invitation.participants),
            invite_activity_id=ctx.activity["id"],
            created_at=now,
            updated_at=now,
        )
        start_round(session, round_row, now)
        session.add(round_row)
        await session.flush()
        actor = await self._chamber_actor(session)
        refusal = ""
        if partner is None:
            refusal = f"{invitation.proposer} is not a partner of this chamber"
        elif now >= invitation.deadline:
            refusal = "the round's deadline has passed"
        if refusal:
            inbox = await self._inbox_of(session, invitation.proposer)
            await publish(
                self.federation,
                session,
                actor,
                refusal_activity(
                    me, invitation.proposer, invitation.uri, ctx.activity["id"], refusal
                ),
                inboxes=[inbox],
                now=now,
                urgent_until=urgent_until(round_row.deadline, now),
            )
            set_state(session, round_row, RoundEvent.ABORT, now, reason=f"declined: {refusal}")
            return
        assert partner is not None
        statement = await self._state(session, actor, round_row, inboxes=[partner.inbox], now=now)
        for chamber in invitation.participants:
            row = RoundParticipant(
                round_id=round_row.id,
                chamber_uri=chamber,
                inbox=partner.inbox if chamber == invitation.proposer else "",
                statement=statement.document if chamber == me else None,
                statement_activity_id=statement.activity_id if chamber == me else "",
                updated_at=now,
            )
            state = ParticipantState.STATED if chamber == me else ParticipantState.INVITED
            start_participant(session, row, invitation.uri, state, now)
            session.add(row)
        await schedule(session, ROUND_DEADLINE_JOB, invitation.uri, invitation.deadline, now)

    async def on_update(self, ctx: InboxContext) -> None:
        """Participant: the proposal, or the proposer's decision."""
        obj = ctx.object
        if not isinstance(obj, dict) or obj.get("type") != ROUND_TYPE:
            return
        session = ctx.session
        round_row = await load_round(session, str(obj.get("id")), lock=True)
        if round_row is None or round_row.role != RoundRole.PARTICIPANT:
            return
        if ctx.actor_uri != round_row.proposer_uri:
            raise InboxRejected(403, "only the proposer speaks for its round", "actorMismatch")
        await self._require_proof(ctx)  # the proposal and the decision are evidence we keep
        now = self.clock()
        state = obj.get("state")
        current = RoundState(round_row.state)
        if state == RoundState.PROPOSED.value:
            if current != RoundState.COLLECTING:
                return  # a duplicate, or we already dropped the round
            round_row.proposal = ctx.activity
            round_row.proposal_activity_id = ctx.activity["id"]
            set_state(session, round_row, RoundEvent.PROPOSE, now)
            await enqueue(session, ROUND_REVIEW_JOB, {"round": round_row.uri}, now=now)
        elif state == RoundState.COMMITTED.value:
            if current == RoundState.COMMITTED:
                return
            if current != RoundState.SIGNED:
                log.warning("round %s: commit received while %s", round_row.uri, current.value)
                raise InboxRejected(
                    409, f"this chamber has not signed round {round_row.uri}", "roundConflict"
                )
            given = obj.get("signatures")
            signatures = (
                [s for s in given if isinstance(s, dict)] if isinstance(given, list) else []
            )
            ours = [s for s in signatures if s.get("id") == round_row.signature_activity_id]
            if obj.get("digest") != round_row.digest or not ours:
                raise InboxRejected(
                    422, "the commit is not for the proposal this chamber signed", "invalidRound"
                )
            await self._post(session, round_row, now)
            round_row.decision = ctx.activity
            round_row.decision_activity_id = ctx.activity["id"]
            set_state(session, round_row, RoundEvent.COMMIT, now)
            rows = await participants_of(session, round_row)
            for signature in signatures:
                row = rows.get(str(signature.get("actor")))
                if row is not None:
                    row.signature, row.signature_activity_id = signature, str(signature.get("id"))
                    move_participant(session, row, round_row.uri, ParticipantState.SIGNED, now)
        elif state == RoundState.ABORTED.value:
            if current == RoundState.COMMITTED:
                log.error("round %s: abort received after a commit", round_row.uri)
                raise InboxRejected(409, f"round {round_row.uri} is committed", "roundConflict")
            if not round_row.decision:
                round_row.decision = ctx.activity
                round_row.decision_activity_id = ctx.activity["id"]
            if current != RoundState.ABORTED:
                reason = str(ctx.activity.get("content") or "aborted by the proposer")
                set_state(session, round_row, RoundEvent.ABORT, now, reason=reason[:2000])

    async def review(self, uri: str) -> Outcome:
        """Participant: check the proposal (fetching public keys first, outside any
        transaction), then sign it or refuse it, in one transaction."""
        me = self.chamber_uri
        async with read_only(self.sessionmaker) as session:
            round_row = await load_round(session, uri)
            if round_row is None:
                return Fail(f"no round {uri}")
            if round_row.role != RoundRole.PARTICIPANT or round_row.state != RoundState.PROPOSED:
                return Done()
            participants = list(round_row.participants)
            proposal = dict(round_row.proposal)
            proposer, deadline = round_row.proposer_uri, round_row.deadline
            mine = (
                await session.execute(
                    select(StoredActivity.document).where(
                        StoredActivity.activity_id == round_row.statement_activity_id
                    )
                )
            ).scalar_one()
            own_keys = await self._own_key_document(session)
        keys: dict[str, Any] = public_keys_of(own_keys)
        problems: list[str] = []
        for chamber in participants:
            if chamber == me:
                continue
            try:
                remote = await self.federation.get_remote_actor(chamber)
            except FederationError as exc:
                if self.clock() < deadline:
                    return Retry(f"cannot fetch {chamber}: {exc}")
                problems.append(f"cannot fetch {chamber}: {exc}")
                continue
            keys.update(public_keys_of(remote.document))
        review = review_proposal(
            proposal,
            keys,
            me=me,
            my_statement=mine,
            round_uri=uri,
            proposer=proposer,
            participants=participants,
            end_time=format_time(deadline),
        )
        problems += review.problems
        async with session_scope(self.sessionmaker) as session:
            round_row = await load_round(session, uri, lock=True)
            if round_row is None or round_row.state != RoundState.PROPOSED.value:
                return Done()
            now = self.clock()
            if now >= round_row.deadline:
                set_state(session, round_row, RoundEvent.ABORT, now, reason="the deadline passed")
                return Done()
            changes = changes_for(me, review.lines)
            if not problems:
                balances = await mirror_balances(session, list(changes))
                problems += stale_changes(balances, changes)
            rows = await participants_of(session, round_row)
            for chamber, statement in review.statements.items():
                row = rows.get(chamber)
                if row is not None and row.statement is None:
                    row.statement = dict(statement)
                    row.statement_activity_id = str(statement.get("id"))
                    move_participant(session, row, round_row.uri, ParticipantState.STATED, now)
            await self._sign_or_refuse(session, round_row, rows, review, problems, now)
        return Done()

    async def _sign_or_refuse(
        self,
        session: AsyncSession,
        round_row: ClearingRound,
        rows: dict[str, RoundParticipant],
        review: ProposalReview,
        problems: list[str],
        now: datetime,
    ) -> None:
        """Sign the reviewed proposal, or refuse it saying why (the round aborts here)."""
        me, uri = self.chamber_uri, round_row.uri
        actor = await self._chamber_actor(session)
        inbox = await self._inbox_of(session, round_row.proposer_uri)
        round_row.total_before, round_row.total_after = review.total_before, review.total_after
        if problems:
            reason = "; ".join(problems)[:2000]
            await publish(
                self.federation,
                session,
                actor,
                refusal_activity(
                    me, round_row.proposer_uri, uri, round_row.proposal_activity_id, reason
                ),
                inboxes=[inbox],
                now=now,
                urgent_until=urgent_until(round_row.deadline, now),
            )
            set_state(session, round_row, RoundEvent.ABORT, now, reason=f"refused: {reason}")
            log.warning("round %s refused: %s", uri, reason)
            return
        stored = await publish(
            self.federation,
            session,
            actor,
            signature_activity(
                me, round_row.proposer_uri, uri, round_row.proposal_activity_id, review.digest
            ),
            inboxes=[inbox],
            now=now,
            urgent_until=urgent_until(round_row.deadline, now),
        )
        round_row.digest = review.digest
        round_row.signature_activity_id = stored.activity_id
        row = rows.get(me)
        if row is not None:
            row.signature, row.signature_activity_id = stored.document, stored.activity_id
            move_participant(session, row, round_row.uri, ParticipantState.SIGNED, now)
        set_state(session, round_row, RoundEvent.SIGN, now)

    async def _participant_deadline(
        self, session: AsyncSession, round_row: ClearingRound
    ) -> Outcome:
        """Not signed: drop the round (it cannot commit without us). Signed: ask the proposer
        for its decision (``Undo``), again and again with backoff until it comes."""
        now = self.clock()
        if round_row.state != RoundState.SIGNED.value:
            set_state(session, round_row, RoundEvent.ABORT, now, reason="the deadline passed")
            return Done()
        actor = await self._chamber_actor(session)
        inbox = await self._inbox_of(session, round_row.proposer_uri)
        await publish(
            self.federation,
            session,
            actor,
            undo_activity(
                self.chamber_uri,
                round_row.proposer_uri,
                round_row.uri,
                round_row.signature_activity_id,
            ),
            inboxes=[inbox],
            now=now,
            urgent_until=urgent_until(round_row.deadline, now),
        )
        return Retry("signed, no decision yet: asked the proposer (Undo)")
