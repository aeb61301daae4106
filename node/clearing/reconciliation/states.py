"""The state graph of reconciliation with one partner (pure): a process with no end.

``never`` until the first comparison; then ``ok`` or ``mismatch`` after each comparison of
the two chambers' statements, as often as they are compared.
"""

from __future__ import annotations

from typing import ClassVar

from node.process import State, StateGraph

__all__ = ["ReconciliationStates"]


class ReconciliationStates(StateGraph):
    recurs: ClassVar[bool] = True
    attribute: ClassVar[str] = "status"

    never = State(initial=True)
    ok = State()
    mismatch = State()

    never.transitions_to(ok, mismatch)
    ok.transitions_to(mismatch)
    mismatch.transitions_to(ok)
