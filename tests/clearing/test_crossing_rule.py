"""The one rule for crossings between two chambers' copies of an exchange (pure), and the
engine's declared corrections it relies on."""

from types import SimpleNamespace

import pytest

from node.clearing.exchanges.states import (
    ExchangeEvent,
    ExchangeState,
    ExchangeStates,
    Party,
    crossing_correction,
)
from node.process import InvalidGraph, InvalidMove, State, StateGraph

S, E, P = ExchangeState, ExchangeEvent, Party


@pytest.mark.parametrize(
    ("state", "event", "party", "amended", "expected"),
    [
        # The counterparty's refusal crossed the declaring side's step: follow the decider.
        (S.REFUSED, E.AMEND, P.INITIATOR, 2, S.PROPOSED),
        (S.REFUSED, E.AMEND, P.INITIATOR, 5, S.PROPOSED),
        (S.REFUSED, E.WITHDRAW, P.INITIATOR, None, S.WITHDRAWN),
        (S.REFUSED, E.EXPIRE, P.CHAMBER, None, S.EXPIRED),
        # Not a newer amendment: the refusal stands.
        (S.REFUSED, E.AMEND, P.INITIATOR, 1, None),
        (S.REFUSED, E.AMEND, P.INITIATOR, None, None),
        # Only the declaring side's steps correct a refusal; nothing else is reopened.
        (S.REFUSED, E.ACCEPT, P.COUNTERPARTY, None, None),
        (S.REFUSED, E.CONTEST, P.COUNTERPARTY, None, None),
        (S.REFUSED, E.AMEND, P.COUNTERPARTY, 2, None),
        (S.POSTED, E.AMEND, P.INITIATOR, 2, None),
        (S.POSTED, E.WITHDRAW, P.INITIATOR, None, None),
        (S.WITHDRAWN, E.AMEND, P.INITIATOR, 2, None),
        (S.EXPIRED, E.WITHDRAW, P.INITIATOR, None, None),
        (S.SETTLING, E.WITHDRAW, P.INITIATOR, None, None),
        (S.PROPOSED, E.WITHDRAW, P.INITIATOR, None, None),
    ],
)
def test_crossing_correction(
    state: ExchangeState,
    event: ExchangeEvent,
    party: Party,
    amended: int | None,
    expected: ExchangeState | None,
) -> None:
    assert crossing_correction(state, event, party, version=1, amended_version=amended) == expected


def test_the_exchange_graph_declares_the_corrections_of_a_refused_copy() -> None:
    for target in ("proposed", "withdrawn", "expired"):
        assert not ExchangeStates.allows("refused", target)
        assert ExchangeStates.allows("refused", target, correction=True)
    assert not ExchangeStates.allows("posted", "proposed", correction=True)
    assert ExchangeStates.is_final("refused")


def test_a_correction_is_made_only_when_asked_and_is_recorded_as_one() -> None:
    row = SimpleNamespace(state="refused")
    with pytest.raises(InvalidMove, match="only a correction"):
        ExchangeStates.move(row, "proposed")
    assert row.state == "refused"
    change = ExchangeStates.move(row, "proposed", correction=True, reason="crossed")
    assert (row.state, change.before, change.after) == ("proposed", "refused", "proposed")
    assert change.details == {"correction": True}
    ordinary = ExchangeStates.move(row, "contested", correction=True)
    assert ordinary.details == {}  # an ordinary move, even when a correction was allowed
    with pytest.raises(InvalidMove, match="final"):
        ExchangeStates.move(SimpleNamespace(state="posted"), "proposed", correction=True)


def test_a_correction_to_another_graphs_state_fails_at_definition() -> None:
    class Other(StateGraph):
        new = State(initial=True)
        done = State(final=True)

        new.transitions_to(done)

    with pytest.raises(InvalidGraph, match="another graph"):

        class Broken(StateGraph):
            new = State(initial=True)
            done = State(final=True)

            new.transitions_to(done)
            done.corrected_to(Other.new)
