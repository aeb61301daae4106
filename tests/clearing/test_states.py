"""The exchange state machine, as a pure function."""

from pathlib import Path

import pytest

from node.clearing.exchanges.states import (
    FINAL_STATES,
    ExchangeEvent,
    ExchangeState,
    InvalidTransition,
    Party,
    Role,
    allowed_events,
    next_state,
    party_of,
)

P, C, X = Party.INITIATOR, Party.COUNTERPARTY, Party.CHAMBER
S, E = ExchangeState, ExchangeEvent


@pytest.mark.parametrize(
    ("state", "event", "party", "after"),
    [
        (S.PROPOSED, E.ACCEPT, C, S.POSTED),
        (S.PROPOSED, E.CONTEST, C, S.CONTESTED),
        (S.PROPOSED, E.REFUSE, C, S.REFUSED),
        (S.PROPOSED, E.WITHDRAW, P, S.WITHDRAWN),
        (S.PROPOSED, E.AMEND, P, S.PROPOSED),
        (S.PROPOSED, E.EXPIRE, X, S.EXPIRED),
        (S.CONTESTED, E.AMEND, P, S.PROPOSED),
        (S.CONTESTED, E.ACCEPT, C, S.POSTED),
        (S.CONTESTED, E.REFUSE, C, S.REFUSED),
        (S.CONTESTED, E.WITHDRAW, P, S.WITHDRAWN),
        (S.CONTESTED, E.EXPIRE, X, S.EXPIRED),
    ],
)
def test_allowed_transitions(state: S, event: E, party: Party, after: S) -> None:
    assert next_state(state, event, party) == after


@pytest.mark.parametrize(
    ("state", "event", "party"),
    [
        (S.PROPOSED, E.ACCEPT, P),  # nobody validates their own declaration
        (S.PROPOSED, E.WITHDRAW, C),
        (S.PROPOSED, E.AMEND, C),
        (S.PROPOSED, E.EXPIRE, C),
        (S.CONTESTED, E.CONTEST, C),
        (S.PROPOSED, E.ACCEPT, X),
    ],
)
def test_refused_transitions(state: S, event: E, party: Party) -> None:
    with pytest.raises(InvalidTransition):
        next_state(state, event, party)


@pytest.mark.parametrize("state", sorted(FINAL_STATES))
@pytest.mark.parametrize("event", list(E))
@pytest.mark.parametrize("party", list(Party))
def test_final_states_never_change(state: S, event: E, party: Party) -> None:
    with pytest.raises(InvalidTransition):
        next_state(state, event, party)
    assert allowed_events(state, party) == []


def test_messages_say_who_may_act() -> None:
    with pytest.raises(InvalidTransition, match="only the other party"):
        next_state(S.PROPOSED, E.ACCEPT, P)
    with pytest.raises(InvalidTransition, match="already posted"):
        next_state(S.POSTED, E.ACCEPT, C)


def test_party_is_relative_to_the_initiator() -> None:
    assert party_of(Role.PROVIDER, Role.PROVIDER) == P
    assert party_of(Role.BENEFICIARY, Role.PROVIDER) == C
    assert party_of(Role.PROVIDER, Role.BENEFICIARY) == C  # the reverse flow
    assert set(allowed_events(S.PROPOSED, C)) == {E.ACCEPT, E.CONTEST, E.REFUSE}
    assert set(allowed_events(S.PROPOSED, P)) == {E.AMEND, E.WITHDRAW}


@pytest.mark.parametrize("name", ["exchanges/states.py", "exchanges/activities.py"])
def test_pure_modules_import_no_io_library(name: str) -> None:
    source = (Path(__file__).parents[2] / "node" / "clearing" / name).read_text()
    for library in ("sqlalchemy", "httpx", "starlette", "asyncpg", "aiosqlite"):
        assert f"import {library}" not in source and f"from {library}" not in source
