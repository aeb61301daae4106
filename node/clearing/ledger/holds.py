"""The state graph of a hold: a posting reserved by a prepared settlement (pure).

A hold is ``pending`` (it counts against the account's headroom) until its settlement
commits (``posted``: the ledger's write carries it) or aborts (``voided``).
"""

from __future__ import annotations

from node.process import State, StateGraph

__all__ = ["HoldStates", "hold_subject"]


class HoldStates(StateGraph):
    pending = State(initial=True)
    posted = State(final=True)
    voided = State(final=True)

    pending.transitions_to(posted, voided)


def hold_subject(settlement_uri: str, account_key: str) -> str:
    """The process key of the hold a settlement keeps on an account."""
    return f"{settlement_uri} {account_key}"
