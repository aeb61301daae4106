"""The life of an exchange, as a pure function: (state, event, who acts) -> next state.

One party *declares* the exchange (the initiator: usually the provider, "I did this for you,
worth N"; or the beneficiary, "you did this for me"); the other (the counterparty) must agree
before anything is posted::

    proposed ──accept (counterparty)──▶ posted
       │ ▲  ╲──refuse (counterparty)──▶ refused
       │ │   ╲─withdraw (initiator)───▶ withdrawn
       │ │    ╲expire (chamber)───────▶ expired
  contest│ │amend (initiator)
       ▼ │
    contested ── accept / refuse / withdraw / expire, as from proposed

``amend`` (the initiator changes the terms) is allowed from ``proposed`` and ``contested`` and
always leads back to ``proposed``. Between two chambers, an acceptance first leads to
``settling`` while the chambers settle it; their decision then posts it or brings it
back. ``posted``, ``refused``, ``withdrawn`` and ``expired`` are
final.

Between two chambers the declaring chamber decides: when the counterparty's refusal crossed
the declarer's amendment or withdrawal (or its chamber's expiry), the declaring chamber
ignores the refusal, and the other chamber's refused copy follows it
(`crossing_correction`, a declared correction of `ExchangeStates`). Pure: no I/O, no clock.
"""

from __future__ import annotations

from enum import StrEnum

from node.clearing.units import ClearingError
from node.process import State, StateGraph

__all__ = [
    "FINAL_STATES",
    "OPEN_STATES",
    "ExchangeEvent",
    "ExchangeState",
    "ExchangeStates",
    "SettlementStates",
    "InvalidTransition",
    "Party",
    "Role",
    "allowed_events",
    "crossing_correction",
    "next_state",
    "party_of",
]


class ExchangeState(StrEnum):
    PROPOSED = "proposed"
    CONTESTED = "contested"
    POSTED = "posted"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    SETTLING = "settling"
    """Accepted across two chambers; the chambers are settling it (`node.clearing.settlement`)."""


class ExchangeEvent(StrEnum):
    ACCEPT = "accept"
    CONTEST = "contest"
    AMEND = "amend"
    REFUSE = "refuse"
    WITHDRAW = "withdraw"
    EXPIRE = "expire"


class Role(StrEnum):
    """A member's side of an exchange."""

    PROVIDER = "provider"
    BENEFICIARY = "beneficiary"


class Party(StrEnum):
    """Who acts on an exchange, relative to who declared it."""

    INITIATOR = "initiator"
    COUNTERPARTY = "counterparty"
    CHAMBER = "chamber"


OPEN_STATES = frozenset({ExchangeState.PROPOSED, ExchangeState.CONTESTED})
FINAL_STATES = frozenset(ExchangeState) - OPEN_STATES - {ExchangeState.SETTLING}


class ExchangeStates(StateGraph):
    """Every move an exchange's state can make (who may make it: `next_state`).

    ``settling`` goes back to where it was (``proposed``/``contested``) when the settlement
    aborts, or to the final state the deciding chamber reports."""

    proposed = State(initial=True)
    contested = State()
    settling = State()
    posted = State(final=True)
    refused = State(final=True)
    withdrawn = State(final=True)
    expired = State(final=True)

    proposed.transitions_to(proposed, contested, settling, posted, refused, withdrawn, expired)
    contested.transitions_to(proposed, settling, posted, refused, withdrawn, expired)
    settling.transitions_to(proposed, contested, posted, refused, withdrawn, expired)
    # A refusal that crossed the declaring side's move (`crossing_correction`).
    refused.corrected_to(proposed, withdrawn, expired)


class SettlementStates(StateGraph):
    """A settlement between two chambers (`node.clearing.settlement`): the preparer's row is
    ``prepared`` until the decision; the decider's is ``received`` only inside the
    transaction that decides it."""

    prepared = State(initial=True)
    received = State(initial=True)
    committed = State(final=True)
    aborted = State(final=True)

    prepared.transitions_to(committed, aborted)
    received.transitions_to(committed, aborted)


_TABLE: dict[tuple[ExchangeEvent, Party], tuple[frozenset[ExchangeState], ExchangeState]] = {
    (ExchangeEvent.ACCEPT, Party.COUNTERPARTY): (OPEN_STATES, ExchangeState.POSTED),
    (ExchangeEvent.CONTEST, Party.COUNTERPARTY): (
        frozenset({ExchangeState.PROPOSED}),
        ExchangeState.CONTESTED,
    ),
    (ExchangeEvent.REFUSE, Party.COUNTERPARTY): (OPEN_STATES, ExchangeState.REFUSED),
    (ExchangeEvent.AMEND, Party.INITIATOR): (OPEN_STATES, ExchangeState.PROPOSED),
    (ExchangeEvent.WITHDRAW, Party.INITIATOR): (OPEN_STATES, ExchangeState.WITHDRAWN),
    (ExchangeEvent.EXPIRE, Party.CHAMBER): (OPEN_STATES, ExchangeState.EXPIRED),
}

assert all(
    ExchangeStates.allows(source, target)
    for sources, target in _TABLE.values()
    for source in sources
), "every member's action is a move of the exchange's graph"

_WHO = {
    ExchangeEvent.ACCEPT: "the other party (not the one who declared it)",
    ExchangeEvent.CONTEST: "the other party (not the one who declared it)",
    ExchangeEvent.REFUSE: "the other party (not the one who declared it)",
    ExchangeEvent.AMEND: "the member who declared it",
    ExchangeEvent.WITHDRAW: "the member who declared it",
    ExchangeEvent.EXPIRE: "the chamber",
}


class InvalidTransition(ClearingError):
    """This event is not possible in this state, or not for this party."""

    def __init__(self, state: ExchangeState, event: ExchangeEvent, party: Party) -> None:
        self.state = state
        self.event = event
        self.party = party
        allowed_from, _ = _TABLE.get((event, party), (frozenset(), state))
        if (event, party) not in _TABLE:
            message = f"only {_WHO[event]} can {event.value} this exchange"
        elif state in FINAL_STATES:
            message = f"this exchange is already {state.value}: it cannot change any more"
        else:
            states = " or ".join(sorted(s.value for s in allowed_from))
            message = (
                f"{event.value} is possible only when the exchange is {states}; it is {state.value}"
            )
        super().__init__(message)


def party_of(role: Role, initiator: Role) -> Party:
    """The party of the member on side ``role`` when ``initiator`` declared the exchange."""
    return Party.INITIATOR if role == initiator else Party.COUNTERPARTY


def next_state(state: ExchangeState, event: ExchangeEvent, party: Party) -> ExchangeState:
    """The state after ``event`` by ``party``, or raise `InvalidTransition`."""
    rule = _TABLE.get((event, party))
    if rule is None or state not in rule[0]:
        raise InvalidTransition(state, event, party)
    return rule[1]


_CROSSED = {
    (ExchangeEvent.AMEND, Party.INITIATOR): ExchangeState.PROPOSED,
    (ExchangeEvent.WITHDRAW, Party.INITIATOR): ExchangeState.WITHDRAWN,
    (ExchangeEvent.EXPIRE, Party.CHAMBER): ExchangeState.EXPIRED,
}


def crossing_correction(
    state: ExchangeState,
    event: ExchangeEvent,
    party: Party,
    *,
    version: int,
    amended_version: int | None = None,
) -> ExchangeState | None:
    """Where a copy that took a step the declaring chamber never took goes, when the
    declaring side's own step arrives after it (None: no correction, the step is refused).

    The declaring chamber decides. A copy is ``refused`` (the counterparty refused proposal
    ``version``) and then receives what the declaring side did before that refusal reached
    it, so the declaring chamber ignored the refusal: an amendment (a newer signed
    ``Update``, ``amended_version`` > ``version``) reopens the copy (``proposed``, the new
    terms); a withdrawal or an expiry of that same proposal makes it ``withdrawn`` or
    ``expired``. The caller checks that a withdrawal or expiry answers the refused proposal.
    The inbox and ``archipel verify`` (`activities.verify_exchange`) both use this rule."""
    if state != ExchangeState.REFUSED:
        return None
    corrected = _CROSSED.get((event, party))
    if corrected is None:
        return None
    if event == ExchangeEvent.AMEND and (amended_version is None or amended_version <= version):
        return None
    assert ExchangeStates.allows(state, corrected, correction=True)
    return corrected


def allowed_events(state: ExchangeState, party: Party) -> list[ExchangeEvent]:
    """What ``party`` may do now (for the buttons of a page)."""
    return [
        event for (event, who), (sources, _) in _TABLE.items() if who == party and state in sources
    ]
