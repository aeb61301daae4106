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

``verify_exchange`` checks a whole history with only public documents: the activities and
their actors' documents (for the keys). Pure: no database, network or clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from node.activitypub.keys import public_keys_of
from node.activitypub.proofs import verify_proof
from node.clearing.states import ExchangeEvent, ExchangeState, InvalidTransition, Party, next_state
from node.clearing.units import MINUTES_PER_HOUR, format_minutes

__all__ = [
    "ACTIVITY_TYPES",
    "PUBLIC",
    "ExchangeTerms",
    "Verification",
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


@dataclass
class Verification:
    """The outcome of `verify_exchange`: ``ok``, the state it proves, and what failed."""

    ok: bool
    state: ExchangeState | None
    terms: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)


_TERM_KEYS = ("id", "provider", "receiver", "minutes", "action", "version")


def _terms(document: Mapping[str, Any]) -> dict[str, Any]:
    return {key: document.get(key) for key in _TERM_KEYS}


def exchange_terms_match(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two exchange documents state the same terms (parties, value, version)."""
    return _terms(a) == _terms(b)


def verify_exchange(
    activities: Sequence[Mapping[str, Any]],
    actors: Iterable[Mapping[str, Any]],
    *,
    chamber: str | None = None,
) -> Verification:
    """Replay an exchange's activities, oldest first, checking each proof and each step.

    ``actors`` are the public actor documents of the parties (and of the chamber, for an
    expiry). Every activity must carry a valid proof by its own ``actor``'s key; the first is
    an ``Offer`` by the provider or the receiver; each answer names the current proposal and
    comes from the right party; an ``Accept``'s ``result`` repeats the proposal's terms.
    """
    keys: dict[str, Any] = {}
    for document in actors:
        keys.update(public_keys_of(dict(document)))
    problems: list[str] = []
    state: ExchangeState | None = None
    terms: dict[str, Any] | None = None
    proposal_id: str | None = None
    initiator: str | None = None
    for index, activity in enumerate(activities):
        where = f"activity {index + 1} ({activity.get('type')}, {activity.get('id')})"
        actor = activity.get("actor")
        result = verify_proof(activity, keys.get)
        if not result.ok:
            problems.append(f"{where}: {result.message}")
            break
        method = result.verification_method or ""
        if method.split("#")[0] != actor:
            problems.append(f"{where}: signed by {method}, not by its actor {actor}")
            break
        kind = activity.get("type")
        if state is None:
            obj = activity.get("object")
            if kind != "Offer" or not isinstance(obj, Mapping):
                problems.append(f"{where}: an exchange starts with an Offer of the exchange")
                break
            if actor not in (obj.get("provider"), obj.get("receiver")):
                problems.append(f"{where}: only a party can declare an exchange")
                break
            state, terms, proposal_id, initiator = (
                ExchangeState.PROPOSED,
                _terms(obj),
                str(activity.get("id")),
                str(actor),
            )
            continue
        assert terms is not None
        if activity.get("context") != terms["id"]:
            problems.append(f"{where}: about another exchange")
            break
        if actor == initiator:
            party = Party.INITIATOR
        elif actor in (terms["provider"], terms["receiver"]):
            party = Party.COUNTERPARTY
        elif chamber is not None and actor == chamber:
            party = Party.CHAMBER
        else:
            problems.append(f"{where}: {actor} is not a party to this exchange")
            break
        if kind == "Update":
            event = ExchangeEvent.AMEND
            obj = activity.get("object")
            if not isinstance(obj, Mapping) or obj.get("id") != terms["id"]:
                problems.append(f"{where}: an Update carries the exchange itself")
                break
        elif kind == "Undo":
            event = ExchangeEvent.WITHDRAW
        elif kind == "Reject":
            event = ExchangeEvent.EXPIRE if party == Party.CHAMBER else ExchangeEvent.REFUSE
        elif kind in _EVENT_OF_TYPE:
            event = _EVENT_OF_TYPE[kind]
        else:
            problems.append(f"{where}: {kind} is not a clearing activity")
            break
        if event != ExchangeEvent.AMEND and activity.get("object") != proposal_id:
            problems.append(f"{where}: answers {activity.get('object')}, not {proposal_id}")
            break
        try:
            state = next_state(state, event, party)
        except InvalidTransition as exc:
            problems.append(f"{where}: {exc}")
            break
        if event == ExchangeEvent.AMEND:
            obj = activity["object"]
            if (obj.get("provider"), obj.get("receiver")) != (terms["provider"], terms["receiver"]):
                problems.append(f"{where}: an amendment cannot change the parties")
                break
            terms, proposal_id = _terms(obj), str(activity.get("id"))
        if event == ExchangeEvent.ACCEPT:
            accepted = activity.get("result")
            if not isinstance(accepted, Mapping) or _terms(accepted) != terms:
                problems.append(f"{where}: the accepted terms differ from the proposal")
                break
    if state is None and not problems:
        problems.append("no activity to verify")
    return Verification(not problems, state if not problems else None, terms, problems)
