"""The process engine: graphs are checked when declared; every move obeys them."""

from types import SimpleNamespace

import pytest

from node.process import InvalidGraph, InvalidMove, State, StateGraph


class Delivery(StateGraph):
    new = State(initial=True, try_interval=600)
    sent = State(final=True)
    failed = State(final=True)

    new.transitions_to(sent, failed)


def test_a_move_in_the_graph_is_assigned_and_described() -> None:
    row = SimpleNamespace(state="new")
    change = Delivery.move(row, Delivery.sent, subject="d1", by="worker", reason="200")
    assert row.state == "sent"
    assert (change.graph, change.subject, change.before, change.after) == (
        "Delivery",
        "d1",
        "new",
        "sent",
    )
    assert Delivery.new.try_interval == 600
    assert Delivery.finals() == {"sent", "failed"}


def test_a_move_out_of_a_final_state_is_refused_and_nothing_changes() -> None:
    row = SimpleNamespace(state="sent")
    with pytest.raises(InvalidMove, match="final"):
        Delivery.move(row, "failed")
    assert row.state == "sent"


def test_an_unknown_state_is_refused() -> None:
    with pytest.raises(InvalidMove, match="no such state"):
        Delivery.move(SimpleNamespace(state="new"), "lost")


def test_start_takes_only_an_initial_state() -> None:
    row = SimpleNamespace(state=None)
    assert Delivery.start(row, "new").after == "new"
    with pytest.raises(InvalidMove):
        Delivery.start(row, "sent")


def test_an_unreachable_state_fails_at_definition() -> None:
    with pytest.raises(InvalidGraph, match="orphan cannot be reached"):

        class Broken(StateGraph):
            new = State(initial=True)
            done = State(final=True)
            orphan = State(final=True)

            new.transitions_to(done)


def test_a_move_out_of_a_final_state_fails_at_definition() -> None:
    with pytest.raises(InvalidGraph, match="final but has moves"):

        class Broken(StateGraph):
            new = State(initial=True)
            done = State(final=True)

            new.transitions_to(done)
            done.transitions_to(new)


def test_a_state_that_can_never_end_fails_unless_the_process_recurs() -> None:
    with pytest.raises(InvalidGraph, match="loop can never reach a final state"):

        class Broken(StateGraph):
            new = State(initial=True)
            loop = State()
            done = State(final=True)

            new.transitions_to(done, loop)
            loop.transitions_to(loop)

    class Status(StateGraph):
        recurs = True
        never = State(initial=True)
        ok = State()
        mismatch = State()

        never.transitions_to(ok, mismatch)
        ok.transitions_to(ok, mismatch)
        mismatch.transitions_to(ok, mismatch)

    assert Status.allows("ok", "mismatch")


def test_a_graph_needs_an_initial_state() -> None:
    with pytest.raises(InvalidGraph, match="no initial state"):

        class Broken(StateGraph):
            done = State(final=True)
