"""The clearing house's ActivityStreams documents, and a verifier that needs nothing else.

An exchange is a ValueFlows ``EconomicEvent`` (``action`` ``vf:deliverService``, ``provider``,
``receiver``, ``effortQuantity`` in ``om2:hour``), plus our exact ``minutes`` (hours are shown
as a decimal for other software, minutes are the truth). Its life is told by activities between
the two members' actors, each signed (``eddsa-jcs-2022``) by the member who acts:

=========  ==================  ====================================================
event      activity            object
=========  ==================  ====================================================
declare    ``Offer``           the exchange (terms, ``state: proposed``)
amend      ``Update``          the exchange with its new terms
accept     ``Accept``          the proposal (``Offer``/``Update`` id); ``result`` = terms
contest    ``TentativeReject``  the proposal; ``content`` = the comment
refuse     ``Reject``          the proposal
withdraw   ``Undo``            the proposal
expire     ``Reject``          the proposal, by the chamber actor
=========  ==================  ====================================================

Between two chambers, the acceptance is settled by the chambers' actors
(`node.clearing.settlement`, ``docs/between-chambers.md``): ``prepare`` is the accepting
member's chamber's ``Offer`` of a ``Settlement``; ``commit`` and ``abort`` are the declaring
member's chamber's ``Accept`` or ``Reject`` of that ``Offer``.

``verify_exchange`` checks a whole history with only public documents: the activities and
their actors' documents (for the keys). Pure: no database, network or clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from node.activitypub.keys import public_keys_of
from node.activitypub.proofs import verify_proof
from node.activitypub.urls import same_origin
from node.clearing.exchanges.states import (
    FINAL_STATES,
    ExchangeEvent,
    ExchangeState,
    InvalidTransition,
    Party,
    crossing_correction,
    next_state,
)
from node.clearing.units import MINUTES_PER_HOUR, format_minutes

__all__ = [
    "ACTIVITY_TYPES",
    "CHAMBER_TYPES",
    "PUBLIC",
    "SETTLEMENT_TYPE",
    "ExchangeTerms",
    "Verification",
    "VerifiedStep",
    "event_activity",
    "exchange_object",
    "exchange_terms_match",
    "hours_value",
    "proposal_activity",
    "verify_exchange",
]

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
DELIVER_SERVICE = "vf:deliverService"
HOUR_UNIT = "om2:hour"

ACTIVITY_TYPES: Mapping[str, str] = {
    "declare": "Offer",
    ExchangeEvent.AMEND: "Update",
    ExchangeEvent.ACCEPT: "Accept",
    ExchangeEvent.CONTEST: "TentativeReject",
    ExchangeEvent.REFUSE: "Reject",
    ExchangeEvent.WITHDRAW: "Undo",
    ExchangeEvent.EXPIRE: "Reject",
}
_EVENT_OF_TYPE = {"Accept": ExchangeEvent.ACCEPT, "TentativeReject": ExchangeEvent.CONTEST}


@dataclass(frozen=True)
class ExchangeTerms:
    """What the two parties agree on."""

    uri: str
    provider: str
    receiver: str
    minutes: int
    description: str
    performed_on: date
    bricks: tuple[str, ...] = ()
    version: int = 1
    url: str | None = None


def hours_value(minutes: int) -> str | int:
    """Hours as an exact decimal for ``hasNumericalValue`` (90 -> "1.5"; 20 -> "0.333...")."""
    if minutes % MINUTES_PER_HOUR == 0:
        return minutes // MINUTES_PER_HOUR
    value = Decimal(minutes) / Decimal(MINUTES_PER_HOUR)
    return format(value.quantize(Decimal("0.000001")).normalize(), "f")


def exchange_object(
    terms: ExchangeTerms, *, state: ExchangeState, attributed_to: str
) -> dict[str, Any]:
    """The exchange as an ``EconomicEvent`` (FEP-0837 / ValueFlows terms) with our minutes."""
    document: dict[str, Any] = {
        "id": terms.uri,
        "type": "EconomicEvent",
        "attributedTo": attributed_to,
        "action": DELIVER_SERVICE,
        "provider": terms.provider,
        "receiver": terms.receiver,
        "effortQuantity": {
            "hasUnit": HOUR_UNIT,
            "hasNumericalValue": hours_value(terms.minutes),
        },
        "minutes": terms.minutes,
        "name": format_minutes(terms.minutes),
        "summary": terms.description,
        "hasPointInTime": f"{terms.performed_on.isoformat()}T00:00:00Z",
        "state": state.value,
        "version": terms.version,
        "to": [PUBLIC],
        "cc": sorted({terms.provider, terms.receiver} - {attributed_to}),
    }
    if terms.bricks:
        document["tag"] = [{"type": "Link", "href": brick, "rel": "used"} for brick in terms.bricks]
    if terms.url:
        document["url"] = terms.url
    return document


def proposal_activity(
    event: str, actor: str, counterparty: str, exchange: dict[str, Any]
) -> dict[str, Any]:
    """``Offer`` (declare) or ``Update`` (amend) of the exchange, from its initiator."""
    return {
        "type": ACTIVITY_TYPES[event],
        "actor": actor,
        "object": exchange,
        "target": counterparty,
        "context": exchange["id"],
        "to": [PUBLIC],
        "cc": [counterparty],
    }


def event_activity(
    event: ExchangeEvent,
    actor: str,
    proposal_id: str,
    exchange_uri: str,
    counterparty: str,
    *,
    comment: str = "",
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An answer to the current proposal: Accept, TentativeReject, Reject or Undo."""
    activity: dict[str, Any] = {
        "type": ACTIVITY_TYPES[event],
        "actor": actor,
        "object": proposal_id,
        "context": exchange_uri,
        "to": [PUBLIC],
        "cc": [counterparty],
    }
    if event == ExchangeEvent.EXPIRE:
        activity["summary"] = "expired: the other party did not answer in time"
    if comment:
        activity["content"] = comment
    if result is not None:
        activity["result"] = result
    return activity


# --- verification ----------------------------------------------------------------------------

CHAMBER_TYPES = frozenset({"Group", "Organization"})
SETTLEMENT_TYPE = "Settlement"
COMMITTED = "committed"
ABORTED = "aborted"


@dataclass(frozen=True)
class VerifiedStep:
    """One activity of a history as `verify_exchange` replayed it.

    ``event`` is ``declare``, an `ExchangeEvent`, or, between two chambers, ``prepare``,
    ``commit`` or ``abort``; ``state`` is the exchange's state after it; ``problem`` says why
    the step does not verify ("" when it does)."""

    index: int
    type: str
    id: str
    actor: str
    event: str = ""
    state: ExchangeState | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class Verification:
    """The outcome of `verify_exchange`: ``ok``, the state it proves, what failed, and
    each activity's step (replay stops at the first that fails)."""

    ok: bool
    state: ExchangeState | None
    terms: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)
    steps: list[VerifiedStep] = field(default_factory=list)


_TERM_KEYS = ("id", "provider", "receiver", "minutes", "action", "version")


def _terms(document: Mapping[str, Any]) -> dict[str, Any]:
    return {key: document.get(key) for key in _TERM_KEYS}


def exchange_terms_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two exchange documents state the same terms (parties, value, version)."""
    return _terms(a) == _terms(b)


class _Refused(Exception):
    """A step that does not verify; ``event`` is what it tried to be."""

    def __init__(self, message: str, event: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.event = event


@dataclass
class _InFlight:
    """A settlement between the two chambers, offered and not yet decided."""

    offer_id: str
    uri: str
    preparer: str
    back_to: ExchangeState
    may_commit: bool


class _Replay:
    """The exchange as its history so far proves it; `apply` checks and applies one step."""

    def __init__(self, actors: Iterable[Mapping[str, Any]], chamber: str | None) -> None:
        self.keys: dict[str, Any] = {}
        self.types: dict[str, set[str]] = {}
        for document in actors:
            self.keys.update(public_keys_of(dict(document)))
            kinds = document.get("type")
            if isinstance(document.get("id"), str):
                listed = kinds if isinstance(kinds, list) else [kinds]
                self.types[document["id"]] = {k for k in listed if isinstance(k, str)}
        self.chamber = chamber
        self.state: ExchangeState | None = None
        self.terms: dict[str, Any] = {}
        self.proposal_id = ""
        self.initiator = ""
        self.accept_id = ""
        self.before_accept = ExchangeState.PROPOSED
        self.in_flight: _InFlight | None = None

    @property
    def counterparty(self) -> str:
        provider, receiver = self.terms["provider"], self.terms["receiver"]
        return str(receiver if self.initiator == provider else provider)

    @property
    def cross(self) -> bool:
        """Whether the two members are on two chambers (then the chambers settle it)."""
        return not same_origin(str(self.terms["provider"]), str(self.terms["receiver"]))

    def check_proof(self, document: Mapping[str, Any], actor: Any) -> None:
        result = verify_proof(document, self.keys.get)
        if not result.ok:
            raise _Refused(result.message)
        owners = {method.split("#")[0] for method in result.verification_methods}
        if owners != {actor}:
            raise _Refused(f"signed by {', '.join(sorted(owners))}, not by its actor {actor}")

    def is_chamber(self, actor: str) -> bool:
        return actor == self.chamber or bool(self.types.get(actor, set()) & CHAMBER_TYPES)

    def apply(self, activity: Mapping[str, Any]) -> str:
        """Check ``activity`` (proof, author, step) and apply it; return its event."""
        actor = activity.get("actor")
        self.check_proof(activity, actor)
        if self.state is None:
            return self._declare(activity, str(actor))
        if activity.get("context") != self.terms["id"]:
            raise _Refused("about another exchange")
        assert isinstance(actor, str)
        kind = activity.get("type")
        if actor in (self.terms["provider"], self.terms["receiver"]):
            return self._member(activity, actor, kind)
        if not self.is_chamber(actor):
            raise _Refused(f"{actor} is not a party to this exchange, nor a chamber")
        obj = activity.get("object")
        if kind == "Offer" and isinstance(obj, Mapping) and obj.get("type") == SETTLEMENT_TYPE:
            return self._prepare(activity, actor, obj)
        if self.in_flight is not None and kind in ("Accept", "Reject"):
            return self._decide(activity, actor, kind)
        if kind == "Reject" and self.in_flight is None and self._unseen_abort(activity, actor):
            return "abort"
        if kind == "Reject" and obj == self.proposal_id:
            if actor != self.chamber and not same_origin(actor, str(self.terms["id"])):
                raise _Refused(
                    "only the chamber where the exchange was declared expires it", "expire"
                )
            self._transition(ExchangeEvent.EXPIRE, Party.CHAMBER)
            return ExchangeEvent.EXPIRE.value
        raise _Refused(f"a {kind} by a chamber is not a step of this exchange")

    def _unseen_abort(self, activity: Mapping[str, Any], actor: str) -> bool:
        """The declaring chamber's ``Reject`` of a settlement it never received (the other
        chamber asked for the abort after the deadline): the exchange does not change."""
        result = activity.get("result")
        return (
            same_origin(actor, self.initiator)
            and isinstance(result, Mapping)
            and result.get("type") == SETTLEMENT_TYPE
            and result.get("state") == ABORTED
            and result.get("exchange") == self.terms["id"]
        )

    def _declare(self, activity: Mapping[str, Any], actor: str) -> str:
        obj = activity.get("object")
        if activity.get("type") != "Offer" or not isinstance(obj, Mapping):
            raise _Refused("an exchange starts with an Offer of the exchange", "declare")
        if actor not in (obj.get("provider"), obj.get("receiver")):
            raise _Refused("only a party can declare an exchange", "declare")
        if not same_origin(str(obj.get("id")), actor):
            raise _Refused("an exchange is declared on its declarer's own server", "declare")
        self.state = ExchangeState.PROPOSED
        self.terms, self.proposal_id, self.initiator = _terms(obj), str(activity.get("id")), actor
        return "declare"

    def _transition(
        self, event: ExchangeEvent, party: Party, amended_version: int | None = None
    ) -> None:
        """The member's (or chamber's) step, or the correction of a copy whose refusal
        crossed the declaring side's step (`crossing_correction`, as the inbox does)."""
        assert self.state is not None
        try:
            self.state = next_state(self.state, event, party)
        except InvalidTransition as exc:
            version = self.terms.get("version")
            corrected = crossing_correction(
                self.state,
                event,
                party,
                version=version if isinstance(version, int) else 1,
                amended_version=amended_version,
            )
            if corrected is None:
                raise _Refused(str(exc), event.value) from None
            self.state = corrected

    def _member(self, activity: Mapping[str, Any], actor: str, kind: Any) -> str:
        party = Party.INITIATOR if actor == self.initiator else Party.COUNTERPARTY
        obj = activity.get("object")
        if kind == "Update":
            event = ExchangeEvent.AMEND
            if not isinstance(obj, Mapping) or obj.get("id") != self.terms["id"]:
                raise _Refused("an Update carries the exchange itself", event)
        elif kind == "Undo":
            event = ExchangeEvent.WITHDRAW
        elif kind == "Reject":
            event = ExchangeEvent.REFUSE
        elif kind in _EVENT_OF_TYPE:
            event = _EVENT_OF_TYPE[kind]
        else:
            raise _Refused(f"{kind} is not a clearing activity")
        if event != ExchangeEvent.AMEND and obj != self.proposal_id:
            raise _Refused(f"answers {obj}, not the current proposal {self.proposal_id}", event)
        before = self.state
        amended = obj.get("version") if isinstance(obj, Mapping) else None
        valid = isinstance(amended, int) and not isinstance(amended, bool)
        self._transition(event, party, amended if valid else None)
        if event == ExchangeEvent.AMEND:
            assert isinstance(obj, Mapping)
            parties = (obj.get("provider"), obj.get("receiver"))
            if parties != (self.terms["provider"], self.terms["receiver"]):
                raise _Refused("an amendment cannot change the parties", event)
            self.terms, self.proposal_id = _terms(obj), str(activity.get("id"))
        if event == ExchangeEvent.ACCEPT:
            accepted = activity.get("result")
            if not isinstance(accepted, Mapping) or _terms(accepted) != self.terms:
                raise _Refused("the accepted terms differ from the proposal", event)
            if self.cross:
                assert before is not None
                self.state, self.before_accept = ExchangeState.SETTLING, before
                self.accept_id = str(activity.get("id"))
        return event.value

    def _prepare(self, activity: Mapping[str, Any], actor: str, obj: Mapping[str, Any]) -> str:
        """The ``Offer`` of a ``Settlement`` by the accepting member's chamber."""
        if not self.cross:
            raise _Refused("both members are on one chamber: there is nothing to settle", "prepare")
        if self.in_flight is not None:
            raise _Refused(f"{self.in_flight.uri} is not decided yet", "prepare")
        counterparty = self.counterparty
        if not same_origin(actor, counterparty):
            raise _Refused(
                f"a settlement comes from the chamber of {counterparty}, who accepts", "prepare"
            )
        uri = obj.get("id")
        if not isinstance(uri, str) or not same_origin(uri, actor):
            raise _Refused("the settlement's id is on its chamber's server", "prepare")
        stated = (obj.get("exchange"), obj.get("provider"), obj.get("receiver"), obj.get("minutes"))
        agreed = (
            self.terms["id"],
            self.terms["provider"],
            self.terms["receiver"],
            self.terms["minutes"],
        )
        assert self.state is not None
        # At the declaring chamber, an acceptance of terms since amended is refused: its
        # settlement states the older proposal's terms (and cannot commit).
        stale = (
            stated != agreed
            and self.state != ExchangeState.SETTLING
            and self._states_an_older_proposal(stated, obj.get("evidence"))
        )
        if stated != agreed and not stale:
            differ = ", ".join(
                f"{name} {got!r} instead of {want!r}"
                for name, got, want in zip(
                    ("exchange", "provider", "receiver", "minutes"), stated, agreed, strict=True
                )
                if got != want
            )
            raise _Refused(f"the settlement differs from the exchange: {differ}", "prepare")
        accept = self._evidence_accept(obj.get("evidence"), counterparty)
        if self.state == ExchangeState.SETTLING:
            if accept.get("id") != self.accept_id:
                raise _Refused("the settlement carries another acceptance", "prepare")
            back_to, may_commit = self.before_accept, True
        else:
            # The decider records the member's Accept only with a commit: otherwise the
            # acceptance is known from the settlement's evidence alone.
            back_to, may_commit = self.state, not stale and self._acceptable(accept)
            if may_commit:
                self.state, self.accept_id = ExchangeState.SETTLING, str(accept.get("id"))
        self.in_flight = _InFlight(str(activity.get("id")), uri, actor, back_to, may_commit)
        return "prepare"

    def _states_an_older_proposal(self, stated: tuple[Any, ...], evidence: Any) -> bool:
        """Whether the settlement's terms are those of the proposal in its evidence, signed
        by the member who declared the exchange (an acceptance that crossed an amendment)."""
        if not isinstance(evidence, list) or not evidence or not isinstance(evidence[0], Mapping):
            return False
        proposal = evidence[0]
        terms = proposal.get("object")
        if proposal.get("type") not in ("Offer", "Update") or not isinstance(terms, Mapping):
            return False
        try:
            self.check_proof(proposal, self.initiator)
        except _Refused:
            return False
        keys = ("id", "provider", "receiver", "minutes")
        return tuple(terms.get(key) for key in keys) == stated

    def _evidence_accept(self, evidence: Any, counterparty: str) -> Mapping[str, Any]:
        if (
            not isinstance(evidence, list)
            or len(evidence) != 2
            or not all(isinstance(item, Mapping) for item in evidence)
        ):
            raise _Refused("a settlement's evidence is the proposal and its acceptance", "prepare")
        proposal, accept = evidence
        if accept.get("type") != "Accept" or accept.get("actor") != counterparty:
            raise _Refused(f"the evidence holds no Accept by {counterparty}", "prepare")
        if accept.get("context") != self.terms["id"] or proposal.get("id") != accept.get("object"):
            raise _Refused("the evidence is about another exchange or proposal", "prepare")
        try:
            self.check_proof(accept, counterparty)
        except _Refused as exc:
            raise _Refused(f"the acceptance in the evidence: {exc.message}", "prepare") from None
        return accept

    def _acceptable(self, accept: Mapping[str, Any]) -> bool:
        """Whether the acceptance answers the current proposal, now, with its terms."""
        accepted = accept.get("result")
        if accept.get("object") != self.proposal_id or not isinstance(accepted, Mapping):
            return False
        assert self.state is not None
        try:
            next_state(self.state, ExchangeEvent.ACCEPT, Party.COUNTERPARTY)
        except InvalidTransition:
            return False
        return _terms(accepted) == self.terms

    def _decide(self, activity: Mapping[str, Any], actor: str, kind: str) -> str:
        """The deciding chamber's ``Accept`` (committed) or ``Reject`` (aborted)."""
        flight = self.in_flight
        assert flight is not None
        event = "commit" if kind == "Accept" else "abort"
        if activity.get("object") != flight.offer_id:
            raise _Refused(f"answers {activity.get('object')}, not {flight.offer_id}", event)
        if actor == flight.preparer or not same_origin(actor, self.initiator):
            raise _Refused(
                f"the decision comes from the chamber of {self.initiator}, who declared it",
                event,
            )
        result = activity.get("result")
        if (
            not isinstance(result, Mapping)
            or result.get("id", flight.uri) != flight.uri
            or result.get("exchange", self.terms["id"]) != self.terms["id"]
        ):
            raise _Refused(f"the decision's result is the settlement {flight.uri}", event)
        said = COMMITTED if kind == "Accept" else ABORTED
        if result.get("state") != said:
            raise _Refused(f"a {kind} says {said}, not {result.get('state')!r}", event)
        if kind == "Accept":
            if not flight.may_commit:
                raise _Refused("committed, but the acceptance did not answer the proposal", event)
            if result.get("minutes", self.terms["minutes"]) != self.terms["minutes"]:
                raise _Refused("the decision commits another amount", event)
            self.state = ExchangeState.POSTED
        else:
            reported = result.get("exchangeState")
            final = {s.value for s in FINAL_STATES} - {ExchangeState.POSTED.value}
            self.state = ExchangeState(reported) if reported in final else flight.back_to
        self.in_flight, self.accept_id = None, ""
        return event


def verify_exchange(
    activities: Sequence[Mapping[str, Any]],
    actors: Iterable[Mapping[str, Any]],
    *,
    chamber: str | None = None,
    expected_state: str | None = None,
) -> Verification:
    """Replay an exchange's activities, oldest first, checking each proof and each step.

    ``actors`` are the public actor documents of everyone who signed: the members, and the
    chambers that expire or settle it. Every activity must carry a valid proof by its own
    ``actor``'s key; the first is an ``Offer`` by the provider or the receiver, on their own
    server; each answer names the current proposal and comes from the right party; an
    ``Accept``'s ``result`` repeats the proposal's terms. ``chamber`` (or any ``Group`` or
    ``Organization`` on the exchange's server) may expire it.

    Between two chambers, the member's ``Accept`` leads to ``settling``; then the accepting
    member's chamber offers the ``Settlement`` (the same terms, with that ``Accept`` signed
    in its evidence) and the declaring member's chamber decides: its ``Accept`` (``result``
    ``committed``) posts the exchange, its ``Reject`` brings it back to where it was, or to
    the final state it reports. ``expected_state`` (what the exchange's document claims)
    must be the state the history proves.
    """
    replay = _Replay(actors, chamber)
    problems: list[str] = []
    steps: list[VerifiedStep] = []
    for index, activity in enumerate(activities, start=1):
        step = VerifiedStep(
            index, str(activity.get("type")), str(activity.get("id")), str(activity.get("actor"))
        )
        try:
            event = replay.apply(activity)
        except _Refused as exc:
            steps.append(replace(step, event=exc.event, problem=exc.message))
            problems.append(f"activity {index} ({step.type}, {step.id}): {exc.message}")
            break
        steps.append(replace(step, event=event, state=replay.state))
    if replay.state is None and not problems:
        problems.append("no activity to verify")
    if not problems and expected_state is not None and replay.state != expected_state:
        assert replay.state is not None
        problems.append(
            f"the exchange says it is {expected_state}, but its history proves {replay.state.value}"
        )
    ok = not problems
    terms = replay.terms if replay.state is not None else None
    return Verification(ok, replay.state if ok else None, terms, problems, steps)
