"""Reconciliation with partner chambers: signed statements sent, received and compared.

Every ``clearing_reconcile_interval_minutes`` (a durable job, ``clearing.reconcile``) and on
demand (``archipel partner reconcile``), this chamber sends each partner a signed statement of
the partner's mirror account as of now: an ``Add`` of an ``AccountStatement`` from the chamber
actor, with an ``eddsa-jcs-2022`` proof, delivered by a durable job
(`node.activitypub.outbox.publish`). The wire form is
`node.clearing.reconciliation.statements`'s and
``docs/between-chambers.md``'s.

A statement received (`register_reconciliation_handlers`) is accepted only from a partner
chamber, only with a valid proof by that chamber's own key, and only if every field is well
formed; otherwise it is refused with the reason and nothing is kept. It is compared with our
ledger *at its cut-off and over its window*, what was in flight included (settlements
prepared, and clearing rounds with the partner started, before the cut-off and not decided by
it); the report is stored for the partner
(`Reconciliation`), and a new mismatch (or its resolution) is written to the administrators'
audit log. Unless it is itself an answer, we answer with our own statement at the same
cut-off, so that both chambers hold a report and each holds the other's signed statement.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from node.activitypub.federation import Federation, FederationError, authority_of
from node.activitypub.inbox import InboxContext, InboxDispatcher, InboxRejected
from node.activitypub.keys import public_keys_of
from node.activitypub.models import LocalActor
from node.activitypub.outbox import new_activity_id, publish
from node.activitypub.proofs import verify_proof
from node.clearing.ledger.models import ClearingAccount
from node.clearing.partners.models import Partner
from node.clearing.partners.partnership import ask_unconfirmed_partners
from node.clearing.reconciliation.ledger import mirror_statement, postings_of, reference_notes
from node.clearing.reconciliation.models import Reconciliation, ReconciliationStatus
from node.clearing.reconciliation.statements import (
    MAX_ENTRIES,
    RECENT,
    STATEMENT_TYPE,
    InvalidStatement,
    Report,
    Statement,
    compare,
    format_time,
    signed_minutes,
)
from node.clearing.reconciliation.states import ReconciliationStates
from node.clearing.reconciliation.wire import parse_statement, statement_document
from node.clearing.units import ClearingError
from node.config import Settings
from node.db import read_only, session_scope
from node.jobs import Done, Handler, Job, Outcome, ensure_pending, recur
from node.members.audit import AuditAction, record_audit
from node.process_store import move as move_process
from node.process_store import start as start_process

__all__ = [
    "ACTIVITY_TYPE",
    "RECONCILE_JOB",
    "PartnerReconciliation",
    "Reconciler",
    "ReconciliationError",
    "SentStatement",
    "UnknownPartner",
    "partner_name",
    "reconciliation_job_handlers",
    "register_reconciliation_handlers",
]

RECONCILE_JOB = "clearing.reconcile"
ACTIVITY_TYPE = "Add"
#: At most this many differences are kept per partner (the count is in the summary).
MAX_STORED = 500


class ReconciliationError(ClearingError):
    """Reconciliation cannot be done as asked; the message says why."""


class UnknownPartner(ReconciliationError):
    def __init__(self, chamber_uri: str) -> None:
        super().__init__(
            f"{chamber_uri} is not a partner chamber of this chamber (see `archipel partner add`)"
        )


@dataclass(frozen=True)
class SentStatement:
    partner: str
    activity_id: str
    as_of: datetime
    balance: int
    entries: int
    pending: int


@dataclass(frozen=True)
class PartnerReconciliation:
    """What the administrators see for one partner: the last statements and report."""

    chamber_uri: str
    name: str
    balance: int
    status: str
    sent_at: datetime | None = None
    sent_as_of: datetime | None = None
    sent_activity_id: str = ""
    received_at: datetime | None = None
    received_as_of: datetime | None = None
    received_activity_id: str = ""
    compared_at: datetime | None = None
    our_balance: int | None = None
    their_balance: int | None = None
    mismatches: tuple[dict[str, Any], ...] = ()
    pending: tuple[dict[str, Any], ...] = ()
    summary: str = ""
    mismatch_since: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        def time(value: datetime | None) -> str | None:
            return None if value is None else format_time(value)

        return {
            "chamber": self.chamber_uri,
            "name": self.name,
            "balance_minutes": self.balance,
            "status": self.status,
            "last_sent": {
                "at": time(self.sent_at),
                "as_of": time(self.sent_as_of),
                "activity": self.sent_activity_id or None,
            },
            "last_received": {
                "at": time(self.received_at),
                "as_of": time(self.received_as_of),
                "activity": self.received_activity_id or None,
            },
            "compared_at": time(self.compared_at),
            "our_balance_minutes": self.our_balance,
            "their_balance_minutes": self.their_balance,
            "mismatch_since": time(self.mismatch_since),
            "summary": self.summary,
            "mismatches": list(self.mismatches),
            "pending": list(self.pending),
        }


def partner_name(partner: Partner) -> str:
    return partner.name or partner.handle or authority_of(partner.chamber_uri)


class Reconciler:
    """Sends, receives and compares statements; built from the federation (and settings)."""

    def __init__(
        self,
        federation: Federation,
        *,
        interval: timedelta = timedelta(hours=6),
        recent: timedelta = RECENT,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.federation = federation
        self.sessionmaker: async_sessionmaker[AsyncSession] = federation.sessionmaker
        self.interval = interval
        self.recent = recent
        self.clock = clock or federation.clock

    @classmethod
    def from_settings(cls, federation: Federation, settings: Settings) -> Reconciler:
        return cls(
            federation, interval=timedelta(minutes=settings.clearing_reconcile_interval_minutes)
        )

    @property
    def chamber_uri(self) -> str:
        return self.federation.urls(self.federation.instance_username).id

    # --- our statement --------------------------------------------------------------------

    async def statement_of(
        self,
        session: AsyncSession,
        partner: Partner,
        as_of: datetime,
        *,
        start: datetime | None = None,
        limit: int | None = None,
    ) -> Statement:
        """Our statement of ``partner``'s mirror account as of ``as_of``, after ``start``
        (at most ``limit`` references: a longer history starts later), in flight included."""
        return await mirror_statement(
            session,
            partner,
            chamber=self.chamber_uri,
            host=authority_of(self.federation.base_url),
            as_of=as_of,
            start=start,
            limit=limit,
        )

    # --- sending --------------------------------------------------------------------------

    async def send_statements(
        self, chamber_uri: str | None = None, *, ensure_cycle: bool = True
    ) -> list[SentStatement]:
        """Send our statement now to every partner (or to ``chamber_uri``), each in its own
        transaction; delivery is a durable job. Starts the periodic cycle if none is due."""
        async with read_only(self.sessionmaker) as session:
            query = select(Partner).order_by(Partner.id)
            if chamber_uri is not None:
                query = query.where(Partner.chamber_uri == chamber_uri)
            partners = list((await session.execute(query)).scalars())
        if chamber_uri is not None and not partners:
            raise UnknownPartner(chamber_uri)
        now = self.clock()
        sent = []
        for partner in partners:
            async with session_scope(self.sessionmaker) as session:
                locked = await self._lock_partner(session, partner.chamber_uri)
                if locked is not None:
                    sent.append(await self._send(session, locked, as_of=now, now=now))
        if ensure_cycle:
            await self.schedule()
        return sent

    async def _lock_partner(self, session: AsyncSession, chamber_uri: str) -> Partner | None:
        return (
            await session.execute(
                select(Partner).where(Partner.chamber_uri == chamber_uri).with_for_update()
            )
        ).scalar_one_or_none()

    async def _send(
        self,
        session: AsyncSession,
        partner: Partner,
        *,
        as_of: datetime,
        now: datetime,
        start: datetime | None = None,
        in_reply_to: str | None = None,
    ) -> SentStatement:
        actor = (
            await session.execute(
                select(LocalActor).where(LocalActor.username == self.federation.instance_username)
            )
        ).scalar_one_or_none()
        if actor is None:
            raise ReconciliationError("the chamber actor does not exist: run `archipel init`")
        as_of = as_of.replace(microsecond=0)
        statement = await self.statement_of(session, partner, as_of, start=start, limit=MAX_ENTRIES)
        activity_id = new_activity_id(self.federation, actor)
        statement = replace(statement, id=f"{activity_id}#statement", in_reply_to=in_reply_to)
        activity = {
            "id": activity_id,
            "type": ACTIVITY_TYPE,
            "to": [partner.chamber_uri],
            "summary": f"Statement of {partner_name(partner)}'s account as of "
            f"{format_time(as_of)}: {signed_minutes(statement.balance)}",
            "object": statement_document(statement),
        }
        stored = await publish(
            self.federation, session, actor, activity, inboxes=[partner.inbox], now=now
        )
        row = await self._row(session, partner, now)
        row.sent_activity_id, row.sent_at, row.sent_as_of = stored.activity_id, now, as_of
        row.updated_at = now
        return SentStatement(
            partner.chamber_uri,
            stored.activity_id,
            as_of,
            statement.balance,
            len(statement.entries),
            len(statement.pending),
        )

    async def _row(self, session: AsyncSession, partner: Partner, now: datetime) -> Reconciliation:
        """The partner's row (the caller holds the partner's row lock), created if needed."""
        row = (
            await session.execute(
                select(Reconciliation).where(Reconciliation.partner_id == partner.id)
            )
        ).scalar_one_or_none()
        if row is None:
            row = Reconciliation(
                partner_id=partner.id,
                mismatches=[],
                pending=[],
                created_at=now,
                updated_at=now,
            )
            start_process(
                session,
                ReconciliationStates,
                row,
                ReconciliationStates.never,
                subject=partner.chamber_uri,
                now=now,
            )
            session.add(row)
            await session.flush()
        return row

    # --- receiving ------------------------------------------------------------------------

    async def receive(self, ctx: InboxContext) -> Report:
        """Check, compare and record a partner's statement (in the inbox's transaction), and
        answer it with ours unless it is an answer. Raises `InboxRejected` if refused."""
        now = self.clock()
        session = ctx.session
        partner = await self._lock_partner(session, ctx.actor_uri)
        if partner is None:
            raise InboxRejected(
                403,
                f"{ctx.actor_uri} is not a partner chamber of this chamber: statements are "
                "accepted only from partners",
                "notAPartner",
            )
        await self._check_proof(ctx, now)
        try:
            theirs = parse_statement(
                ctx.object, sender=ctx.actor_uri, recipient=self.chamber_uri, now=now
            )
        except InvalidStatement as exc:
            raise InboxRejected(422, f"invalid statement: {exc}", "invalidStatement") from None
        report = await self.compare_with(session, partner, theirs)
        await self._record(session, partner, report, theirs, str(ctx.activity["id"]), now)
        if theirs.in_reply_to is None:
            await self._send(
                session,
                partner,
                as_of=min(theirs.as_of, now),
                start=theirs.start,
                in_reply_to=theirs.id,
                now=now,
            )
        return report

    async def compare_with(
        self, session: AsyncSession, partner: Partner, theirs: Statement
    ) -> Report:
        """Compare the partner's statement with our ledger at its cut-off, over its window."""
        ours = await self.statement_of(session, partner, theirs.as_of, start=theirs.start)
        only_theirs = [e.reference for e in theirs.entries if ours.entry(e.reference) is None]
        elsewhere = await postings_of(session, partner, only_theirs)
        name = partner_name(partner)
        report = compare(ours, theirs, partner_name=name, elsewhere=elsewhere, recent=self.recent)
        listed = [d.reference for d in (*report.mismatches, *report.pending) if d.reference]
        notes = await reference_notes(session, listed) if listed else {}
        if notes:
            report = compare(
                ours,
                theirs,
                partner_name=name,
                elsewhere=elsewhere,
                notes=notes,
                recent=self.recent,
            )
        return report

    async def _check_proof(self, ctx: InboxContext, now: datetime) -> None:
        if "proof" not in ctx.activity:
            raise InboxRejected(
                401,
                "the statement is not signed: it needs a Data Integrity proof by the chamber",
                "noProof",
            )
        try:
            actor = await ctx.federation.cached_actor(ctx.session, ctx.actor_uri)
        except FederationError as exc:
            raise InboxRejected(401, f"no key to check the proof: {exc}", "keyNotFound") from None
        keys = public_keys_of(actor.document)
        result = verify_proof(ctx.activity, keys.get, now=now)
        methods = result.verification_methods
        if not result.ok or not methods or not all(m in keys for m in methods):
            raise InboxRejected(
                401, f"the statement's proof is refused: {result.message}", "invalidProof"
            )

    async def _record(
        self,
        session: AsyncSession,
        partner: Partner,
        report: Report,
        theirs: Statement,
        activity_id: str,
        now: datetime,
    ) -> None:
        row = await self._row(session, partner, now)
        if row.received_as_of is not None and theirs.as_of < row.received_as_of:
            return  # an older statement arriving late: the newer report stands
        row.received_activity_id, row.received_at = activity_id, now
        row.received_as_of, row.compared_at = theirs.as_of, now
        row.our_balance, row.their_balance = report.our_balance, report.their_balance
        row.mismatches = [d.to_json() for d in report.mismatches[:MAX_STORED]]
        row.pending = [d.to_json() for d in report.pending[:MAX_STORED]]
        row.summary = report.summary
        row.updated_at = now
        was_mismatch = row.status == ReconciliationStatus.MISMATCH
        fingerprint = report.fingerprint()
        details = {
            "as_of": format_time(theirs.as_of),
            "statement": activity_id,
            "our_balance": report.our_balance,
            "their_balance": report.their_balance,
            "mismatches": row.mismatches[:50],
        }
        if not report.ok:
            if not was_mismatch:
                row.mismatch_since = now
            if fingerprint != row.fingerprint:
                await record_audit(
                    session,
                    None,
                    AuditAction.RECONCILE_MISMATCH,
                    partner.chamber_uri,
                    report.summary,
                    details=details,
                    now=now,
                )
        elif was_mismatch:
            row.mismatch_since = None
            await record_audit(
                session,
                None,
                AuditAction.RECONCILE_RESOLVED,
                partner.chamber_uri,
                report.summary,
                details=details,
                now=now,
            )
        if row.status != report.status.value:
            move_process(
                session,
                ReconciliationStates,
                row,
                report.status.value,
                subject=partner.chamber_uri,
                now=now,
                reason=report.summary[:2000],
            )
        row.fingerprint = fingerprint

    # --- reading --------------------------------------------------------------------------

    async def status(
        self, session: AsyncSession, chamber_uri: str | None = None
    ) -> list[PartnerReconciliation]:
        """Every partner's reconciliation (or ``chamber_uri``'s), by partner."""
        query = (
            select(Partner, Reconciliation, ClearingAccount.balance)
            .join(ClearingAccount, ClearingAccount.id == Partner.account_id)
            .outerjoin(Reconciliation, Reconciliation.partner_id == Partner.id)
            .order_by(Partner.id)
        )
        if chamber_uri is not None:
            query = query.where(Partner.chamber_uri == chamber_uri)
        found = [
            _view(partner, row, balance)
            for partner, row, balance in (await session.execute(query)).all()
        ]
        if chamber_uri is not None and not found:
            raise UnknownPartner(chamber_uri)
        return found

    # --- the periodic job -----------------------------------------------------------------

    async def schedule(self, run_at: datetime | None = None) -> bool:
        """Start the periodic cycle at ``run_at`` (default: one interval from now) unless a
        run is already due; True if one was enqueued."""
        async with session_scope(self.sessionmaker) as session:
            return await self.ensure_cycle(session, run_at)

    async def ensure_cycle(self, session: AsyncSession, run_at: datetime | None = None) -> bool:
        """`schedule` in the caller's transaction."""
        now = self.clock()
        return await ensure_pending(session, RECONCILE_JOB, run_at or now + self.interval, now=now)

    async def run(self, job: Job) -> Outcome:
        """One run of the cycle: statements to every partner, the partnership offered again to
        those that have not confirmed it, then the next run."""
        await self.send_statements(ensure_cycle=False)
        await ask_unconfirmed_partners(self.federation)
        async with session_scope(self.sessionmaker) as session:
            now = self.clock()
            await recur(session, job, now + self.interval, now=now)
        return Done()


def _view(partner: Partner, row: Reconciliation | None, balance: int) -> PartnerReconciliation:
    base = PartnerReconciliation(
        chamber_uri=partner.chamber_uri,
        name=partner_name(partner),
        balance=balance,
        status=ReconciliationStatus.NEVER,
    )
    if row is None:
        return base
    return replace(
        base,
        status=row.status,
        sent_at=row.sent_at,
        sent_as_of=row.sent_as_of,
        sent_activity_id=row.sent_activity_id,
        received_at=row.received_at,
        received_as_of=row.received_as_of,
        received_activity_id=row.received_activity_id,
        compared_at=row.compared_at,
        our_balance=row.our_balance,
        their_balance=row.their_balance,
        mismatches=tuple(row.mismatches or ()),
        pending=tuple(row.pending or ()),
        summary=row.summary,
        mismatch_since=row.mismatch_since,
    )


# --- wiring -------------------------------------------------------------------------------------


def register_reconciliation_handlers(dispatcher: InboxDispatcher, reconciler: Reconciler) -> None:
    """Receive partners' statements (``Add`` of an ``AccountStatement``), with the node's one
    ``Reconciler``; a statement received also starts this chamber's periodic cycle if none is
    due."""

    async def on_add(ctx: InboxContext) -> None:
        await reconciler.receive(ctx)
        await reconciler.ensure_cycle(ctx.session)

    dispatcher.register(ACTIVITY_TYPE, STATEMENT_TYPE, on_add)


def reconciliation_job_handlers(reconciler: Reconciler) -> dict[str, Handler]:
    """The periodic job: ``clearing.reconcile``, run by the node's one ``Reconciler``."""
    return {RECONCILE_JOB: reconciler.run}
