"""``archipel verify URL``: check an exchange (or a clearing round) as any third party can.

`verify_url` fetches the AS2 document at the URL, then the public document of every actor that
signed something in it (plain GETs, no signature of ours: a verifier needs no chamber), and
replays it: an exchange's ``history`` with `activities.verify_exchange`, a ``ClearingRound``
with `rounds.verify_round`. Nothing the server says is believed: only the proofs are. The
document's own terms and state are then compared with what the proofs establish.

The checks (`report_exchange`, `report_round`) are pure; only `verify_url` and `verify` do
I/O, through the caller's client (`transport.make_async_client`: no private address unless
asked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from node import __version__
from node.activitypub.fetch import FetchError, fetch_document
from node.activitypub.transport import make_async_client
from node.clearing.exchanges.activities import exchange_terms_match, verify_exchange
from node.clearing.rounds.protocol import (
    ROUND_TYPE,
    RoundState,
)
from node.clearing.rounds.review import verify_round
from node.clearing.units import ClearingError, format_minutes

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_SIGNERS",
    "Check",
    "VerifyError",
    "VerifyReport",
    "report_exchange",
    "report_round",
    "signers_of",
    "stated_state",
    "verify",
    "verify_url",
]

EXCHANGE_TYPE = "EconomicEvent"
MAX_DOCUMENT_BYTES = 5_000_000
"""An exchange's document embeds every activity of its life: larger than an actor's."""
MAX_SIGNERS = 64
"""More actors than this in one document is not an exchange or a round: refused."""
_SIGNER_KEYS = ("actor", "attributedTo")


class VerifyError(ClearingError):
    """The document cannot be verified at all (unreachable, or neither an exchange nor a
    round); the message says which URL and why."""


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, and whether it holds."""

    ok: bool
    text: str

    def line(self) -> str:
        return f"{'✓' if self.ok else '✗'} {self.text}"


@dataclass
class VerifyReport:
    url: str
    kind: str
    id: str
    state: str | None = None
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state is not None and all(check.ok for check in self.checks)

    def lines(self) -> list[str]:
        title = f"{self.kind} {self.id}"
        if self.id != self.url:
            title += f" (served by {self.url})"
        outcome = f"✓ verified: {self.state}" if self.ok else "✗ not verified"
        return [title, *(f"  {check.line()}" for check in self.checks), outcome]


def signers_of(document: Any, *, limit: int = MAX_SIGNERS) -> set[str]:
    """Every ``actor`` (and ``attributedTo``) named anywhere in ``document``: whose public
    keys the proofs need. More than ``limit`` is refused (`VerifyError`)."""
    found: set[str] = set()
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key in _SIGNER_KEYS and isinstance(value, str):
                    found.add(value.split("#")[0])
                elif isinstance(value, Mapping | list):
                    stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
        if len(found) > limit:
            raise VerifyError(f"the document names more than {limit} actors: not verified")
    return found


def _step_text(index: int, kind: str, actor: str, event: str, state: str | None) -> str:
    what = f"{index}. {kind} by {actor}"
    if state is None:
        return f"{what}: {event}" if event else what
    return f"{what}: {event} → {state}"


def report_exchange(
    url: str, document: Mapping[str, Any], actors: Iterable[Mapping[str, Any]]
) -> VerifyReport:
    """Replay the exchange's ``history`` with the actors' public documents; then check that
    the document states the terms and the state its proofs establish."""
    report = VerifyReport(url, "exchange", str(document.get("id")))
    history = document.get("history")
    if not isinstance(history, list) or not all(isinstance(a, Mapping) for a in history):
        report.checks.append(Check(False, "the document has no history of signed activities"))
        return report
    result = verify_exchange(history, actors)
    for step in result.steps:
        if step.ok:
            text = _step_text(step.index, step.type, step.actor, step.event, step.state)
        else:
            text = _step_text(step.index, step.type, step.actor, step.event, None)
            text += f" — {step.problem}"
        report.checks.append(Check(step.ok, text))
    unchecked = len(history) - len(result.steps)
    if unchecked and not result.ok:
        later = "1 later activity" if unchecked == 1 else f"{unchecked} later activities"
        report.checks.append(Check(False, f"{later} not checked"))
    if not result.ok:
        if not result.steps:
            report.checks.extend(Check(False, problem) for problem in result.problems)
        return report
    assert result.state is not None and result.terms is not None
    terms = result.terms
    if exchange_terms_match(document, terms):
        report.checks.append(
            Check(
                True,
                f"the document states the signed terms: {format_minutes(terms['minutes'])}"
                f" from {terms['provider']} to {terms['receiver']}",
            )
        )
    else:
        report.checks.append(
            Check(
                False,
                "the document's terms (id, parties, minutes, version) are not the signed ones",
            )
        )
    report.checks.append(stated_state(document, result.state.value))
    report.state = result.state.value
    return report


def stated_state(document: Mapping[str, Any], proved: str) -> Check:
    """Whether the document's own ``state`` is the one its signed history proves (an
    exchange or a round served as ``committed`` when it was aborted does not verify)."""
    claimed = document.get("state")
    return Check(claimed == proved, f"the document says {claimed}; its history proves {proved}")


def report_round(
    url: str, document: Mapping[str, Any], actors: Iterable[Mapping[str, Any]]
) -> VerifyReport:
    """Check a clearing round's statements, netting, signatures and decision."""
    report = VerifyReport(url, "clearing round", str(document.get("id")))
    result = verify_round(document, actors)
    report.checks.extend(Check(False, problem) for problem in result.problems)
    if not result.ok:
        return report
    assert result.state is not None
    report.checks.append(Check(True, "every statement, the netting and every signature verify"))
    report.checks.append(stated_state(document, result.state.value))
    if result.state != RoundState.COMMITTED:
        report.state = result.state.value
        return report  # nothing was netted
    for line in result.lines:
        report.checks.append(
            Check(
                True,
                f"{line.get('debtor')} owes {line.get('creditor')}"
                f" {format_minutes(int(line.get('minutes', 0)))}"
                f" ({format_minutes(int(line.get('removed', 0)))} netted out)",
            )
        )
    report.checks.append(
        Check(
            True,
            f"debt between the chambers: {format_minutes(result.total_before)} before,"
            f" {format_minutes(result.total_after)} after",
        )
    )
    report.state = result.state.value
    return report


async def verify_url(
    client: httpx.AsyncClient, url: str, *, allow_http: bool = False
) -> VerifyReport:
    """Fetch and verify the exchange or round at ``url`` (see the module docstring)."""
    try:
        fetched = await fetch_document(
            client, url, max_bytes=MAX_DOCUMENT_BYTES, expect_id=False, allow_http=allow_http
        )
    except FetchError as exc:
        raise VerifyError(f"cannot fetch the document: {exc}") from None
    document = fetched.document
    kind = document.get("type")
    if kind == EXCHANGE_TYPE:
        check = report_exchange
    elif kind == ROUND_TYPE:
        check = report_round
    else:
        raise VerifyError(f"{url} is not an exchange (nor a clearing round): its type is {kind!r}")
    actors: list[dict[str, Any]] = []
    failures: list[Check] = []
    for uri in sorted(signers_of(document)):
        try:
            actor = await fetch_document(client, uri, allow_http=allow_http)
        except FetchError as exc:
            failures.append(Check(False, f"the actor {uri} cannot be fetched: {exc}"))
            continue
        actors.append(actor.document)
    report = check(url, document, actors)
    report.checks[:0] = failures
    return report


async def verify(url: str, *, allow_private_addresses: bool = False) -> VerifyReport:
    """`verify_url` with the guarded client: private addresses (and plain http) only when
    ``allow_private_addresses`` (local demos and tests)."""
    async with make_async_client(
        allow_private_addresses=allow_private_addresses,
        user_agent=f"Archipel/{__version__} (verify)",
    ) as client:
        return await verify_url(client, url, allow_http=allow_private_addresses)
