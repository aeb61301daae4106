"""Delivering one stored activity to one inbox: the ``deliver`` job handler and host health.

Exactly one POST per job: once the POST is sent, the job's outcome depends on the answer
alone. The bookkeeping that follows (a host's health, a gone follower) is written in its own
transaction, and a failure there is logged, never turned into a retry that would send the
activity again.

The worker hands the handler the jobs it claimed (`DeliverJob.prepare`): what they need is
read in one short transaction for all of them — the hosts' health, the domain blocks, the
stored activities (each serialised once, whatever the number of inboxes) and the signing
actors. A handler called alone (tests, a job claimed without preparation) reads it itself.
Host health is written only when it changes: a failure, or the first success after failures.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from node.activitypub.federation import Federation, authority_of
from node.activitypub.http_auth import HttpSignatureAuth
from node.activitypub.models import Follow, HostHealth, LocalActor, RemoteActor, StoredActivity
from node.db import insert_for, read_only
from node.jobs import Done, Fail, Job, JobState, Outcome, Retry
from node.ops.metrics import DELIVERY_ATTEMPTS, status_class
from node.wake import notify_jobs

__all__ = ["DELIVER", "DeliverJob", "DeliveryPolicy", "deliver_job"]

log = logging.getLogger(__name__)

DELIVER = "deliver"
_HEADERS = {
    "Content-Type": "application/activity+json",
    "Accept": "application/activity+json, application/ld+json, application/json",
}
#: Prepared jobs never run (a worker cancelled between claim and run) are forgotten past this.
_MAX_PREPARED = 10_000


class DeliveryPolicy:
    """Give up after three days; pause a host after 5 failures in a row, for 20 retry bases
    (except for urgent deliveries, until their ``urgent_until``)."""

    give_up_after = timedelta(days=3)
    pause_after_failures = 5
    pause_in_retry_bases = 20


@dataclass(frozen=True)
class _Ready:
    """What one delivery needs, read before it runs."""

    host: str
    failures: int  # the host's consecutive failures when read
    paused_until: datetime | None
    blocked: bool
    body: bytes | None  # None: the activity or its actor no longer exists
    auth: HttpSignatureAuth | None


def _urgent_until(job: Job) -> datetime | None:
    raw = job.payload.get("urgent_until")
    if not isinstance(raw, str):
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _body(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


class DeliverJob:
    """The job handler that POSTs one stored activity to one inbox, signed as its actor."""

    def __init__(self, federation: Federation, *, retry_base: float = 30.0) -> None:
        self.federation = federation
        self.pause_for = timedelta(seconds=retry_base * DeliveryPolicy.pause_in_retry_bases)
        self._prepared: dict[int, _Ready] = {}

    async def prepare(self, jobs: list[Job]) -> None:
        """Read what ``jobs`` need, in one transaction (the worker calls it after a claim)."""
        if len(self._prepared) > _MAX_PREPARED:
            self._prepared.clear()
        self._prepared.update(await self._load(jobs))

    async def _load(self, jobs: list[Job]) -> dict[int, _Ready]:
        federation = self.federation
        hosts = {job.id: job.host or authority_of(job.payload["inbox"]) for job in jobs}
        pks = {job.activity_pk for job in jobs if job.activity_pk is not None}
        usernames = {str(job.payload["actor"]) for job in jobs}
        async with read_only(federation.sessionmaker) as session:
            health = {
                row.host: row
                for row in (
                    await session.execute(
                        select(HostHealth).where(HostHealth.host.in_(set(hosts.values())))
                    )
                ).scalars()
            }
            blocked = await federation.blocked_among(session, {j.payload["inbox"] for j in jobs})
            rows = await session.execute(
                select(StoredActivity.id, StoredActivity.document).where(StoredActivity.id.in_(pks))
            )
            documents: dict[int, dict[str, Any]] = {pk: document for pk, document in rows}
            actors = {
                actor.username: actor
                for actor in (
                    await session.execute(
                        select(LocalActor).where(LocalActor.username.in_(usernames))
                    )
                ).scalars()
            }
        bodies = {pk: _body(document) for pk, document in documents.items()}
        signers = {name: federation.signer(actor) for name, actor in actors.items()}
        ready: dict[int, _Ready] = {}
        for job in jobs:
            host = hosts[job.id]
            row = health.get(host)
            auth = signers.get(str(job.payload["actor"]))
            body = bodies.get(job.activity_pk) if job.activity_pk is not None else None
            ready[job.id] = _Ready(
                host=host,
                failures=row.consecutive_failures if row is not None else 0,
                paused_until=row.paused_until if row is not None else None,
                blocked=job.payload["inbox"] in blocked,
                body=body if auth is not None else None,
                auth=auth,
            )
        return ready

    async def __call__(self, job: Job) -> Outcome:
        ready = self._prepared.pop(job.id, None)
        if ready is None:
            ready = (await self._load([job]))[job.id]
        now = self.federation.clock()
        urgent_until = _urgent_until(job)
        paused = ready.paused_until if ready.paused_until and ready.paused_until > now else None
        if paused is not None and (urgent_until is None or urgent_until <= now):
            DELIVERY_ATTEMPTS.inc(result="paused")
            return Retry(f"{ready.host} is paused after repeated failures", delay=paused - now)
        if ready.blocked:
            DELIVERY_ATTEMPTS.inc(result="blocked")
            return Fail(f"{ready.host} is blocked")
        if ready.body is None or ready.auth is None:
            return Fail("the activity or its actor no longer exists")
        inbox = job.payload["inbox"]
        try:
            response = await self.federation.http.post(
                inbox, content=ready.body, headers=_HEADERS, auth=ready.auth
            )
            await response.aread()
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            DELIVERY_ATTEMPTS.inc(result="network")
            await self._after_post(self._failed, ready.host, error, now)
            return Retry(error)
        # The POST was sent: from here on the outcome depends on the answer only.
        status = response.status_code
        DELIVERY_ATTEMPTS.inc(result="gone" if status == 410 else status_class(status))
        if 200 <= status < 300:
            await self._answered(ready, now)
            return Done()
        if status == 410:
            await self._after_post(self._gone, inbox, now)
            return Fail("410 Gone: removed")
        error = f"HTTP {status}: {response.text[:200]}"
        if status in (408, 429) or status >= 500:
            await self._after_post(self._failed, ready.host, error, now)
            retry_after = response.headers.get("retry-after", "")
            delay = (
                timedelta(seconds=min(int(retry_after), 3600)) if retry_after.isdigit() else None
            )
            return Retry(error, delay=delay)
        await self._answered(ready, now)  # the host answers; we were refused
        return Fail(error)

    async def _answered(self, ready: _Ready, now: datetime) -> None:
        """The host answered: its failure count goes back to 0 (written only if it was not)."""
        if ready.failures > 0 or ready.paused_until is not None:
            await self._after_post(self._recovered, ready.host, now)

    async def _after_post(self, write: Any, *args: Any) -> None:
        try:
            async with self.federation.sessionmaker() as session, session.begin():
                await write(session, *args)
        except Exception:  # the POST is sent: never make the job run (and POST) again for this
            log.exception("delivery bookkeeping failed (%s)", getattr(write, "__name__", write))

    async def _recovered(self, session: AsyncSession, host: str, now: datetime) -> None:
        """The host answers after failures: healthy again, and the deliveries to it that wait
        for their next attempt are due now (after an outage the backlog goes out at once,
        ``per_host`` at a time, instead of each waiting out its own backoff)."""
        await session.execute(
            update(HostHealth)
            .where(HostHealth.host == host, HostHealth.consecutive_failures > 0)
            .values(consecutive_failures=0, paused_until=None, last_error="")
        )
        waiting = await session.execute(
            update(Job)
            .where(
                Job.kind == DELIVER,
                Job.host == host,
                Job.state == JobState.PENDING,
                Job.next_attempt_at > now,
            )
            .values(next_attempt_at=now)
        )
        if getattr(waiting, "rowcount", 0):
            await notify_jobs(session)

    async def _failed(self, session: AsyncSession, host: str, error: str, now: datetime) -> None:
        """Count consecutive failures per host atomically (several workers deliver at once):
        one upsert, whoever inserts the row first."""
        statement = (
            insert_for(session, HostHealth)
            .values(host=host, consecutive_failures=1, last_error=error[:500], paused_until=None)
            .on_conflict_do_update(
                index_elements=[HostHealth.host],
                set_={
                    "consecutive_failures": HostHealth.consecutive_failures + 1,
                    "last_error": error[:500],
                },
            )
            .returning(HostHealth.consecutive_failures)
        )
        failures = (await session.execute(statement)).scalar_one()
        if failures >= DeliveryPolicy.pause_after_failures:
            await session.execute(
                update(HostHealth)
                .where(HostHealth.host == host)
                .values(paused_until=now + self.pause_for)
            )

    async def _gone(self, session: AsyncSession, inbox: str, now: datetime) -> None:
        """410 Gone: the actors behind that inbox no longer exist; stop following and sending."""
        personal = (
            await session.execute(select(RemoteActor).where(RemoteActor.inbox == inbox))
        ).scalars()
        for actor in personal:
            actor.gone_at = now
            await session.execute(
                delete(Follow).where(
                    (Follow.follower_uri == actor.uri) | (Follow.followee_uri == actor.uri)
                )
            )


def deliver_job(federation: Federation, *, retry_base: float = 30.0) -> DeliverJob:
    """The ``deliver`` job handler (see `DeliverJob`)."""
    return DeliverJob(federation, retry_base=retry_base)
