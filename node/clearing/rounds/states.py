"""The state graphs of a clearing round and of each chamber in it (pure: no I/O).

A round's and a participant's state change only through these graphs, by
`node.process_store.move` (`node.clearing.rounds.base.set_state`, `.move_participant`).
"""

from __future__ import annotations

from node.process import State, StateGraph

__all__ = ["ParticipantStates", "RoundStates"]


class RoundStates(StateGraph):
    """One node's side of a round (`node.clearing.rounds.protocol.RoundState`): the proposer
    goes collecting → proposed → committed; a participant signs in between; either aborts
    before the end, never after."""

    collecting = State(initial=True)
    proposed = State()
    signed = State()
    committed = State(final=True)
    aborted = State(final=True)

    collecting.transitions_to(proposed, aborted)
    proposed.transitions_to(signed, committed, aborted)
    signed.transitions_to(committed, aborted)


class ParticipantStates(StateGraph):
    """One chamber of a round as this node knows it (`ParticipantState`): invited, it states
    its positions (the proposer's own row starts stated), signs the proposal, or declines; a
    signer may withdraw its signature before the proposer decides."""

    invited = State(initial=True)
    stated = State(initial=True)
    signed = State()
    declined = State(final=True)
    withdrawn = State()

    invited.transitions_to(stated, signed, declined, withdrawn)
    stated.transitions_to(signed, declined, withdrawn)
    signed.transitions_to(withdrawn, declined)
    withdrawn.transitions_to(declined)
