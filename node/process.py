"""Durable processes as declared state graphs: the one way a process's state changes.

A process (an exchange, a settlement, a clearing round, a job…) declares its states and the
moves between them once, as a `StateGraph` subclass (after Takahē's graphs)::

    class SettlementStates(StateGraph):
        prepared = State(initial=True, try_interval=30)
        committed = State(final=True)
        aborted = State(final=True)

        prepared.transitions_to(committed, aborted)

The declaration is checked when the class is defined (`InvalidGraph` at import time): at
least one initial state, every state reachable from an initial one, no move out of a final
state, and (unless the graph ``recurs``) a way from every state to a final one.

Every change goes through `StateGraph.move`: it checks the move, assigns it to the row and
returns a `Move` that the caller's store records (`node.process_store`). `StateGraph.check`
is the same rule for a pure replay (``archipel verify``, the inbox handlers' reducers).

A process kept by two parties (an exchange's copy on the other chamber) may have to follow
the party that decides when their messages crossed: such moves are declared apart, as
*corrections* (``refused.corrected_to(proposed)``), may leave a final state, and are made
only when the caller asks for one (``move(..., correction=True)``; the domain's rule says
when), recorded as such.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

__all__ = ["InvalidGraph", "InvalidMove", "Move", "State", "StateGraph"]


class InvalidGraph(TypeError):
    """A state graph's declaration is inconsistent (raised when its class is defined)."""


class InvalidMove(ValueError):
    """This move is not in the process's graph."""

    def __init__(self, graph: str, before: str, after: str, why: str) -> None:
        self.graph, self.before, self.after = graph, before, after
        super().__init__(f"{graph}: {before} → {after} is not possible: {why}")


class State:
    """One state of a graph; ``transitions_to`` declares where it may go next."""

    def __init__(
        self,
        *,
        initial: bool = False,
        final: bool = False,
        try_interval: float | None = None,
        delete_after: float | None = None,
    ) -> None:
        self.name = ""
        self.initial = initial
        self.final = final
        self.try_interval = try_interval
        self.delete_after = delete_after
        self.targets: list[State] = []
        self.corrections: list[State] = []

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def transitions_to(self, *states: State) -> None:
        self.targets.extend(s for s in states if s not in self.targets)

    def corrected_to(self, *states: State) -> None:
        """Moves made only as a correction (see the module), even out of a final state."""
        self.corrections.extend(s for s in states if s not in self.corrections)

    @property
    def value(self) -> str:
        return self.name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"State({self.name!r})"


@dataclass(frozen=True)
class Move:
    """One recorded change: which process, which row, from where to where, and why."""

    graph: str
    subject: str
    before: str | None
    after: str
    by: str = ""
    reason: str = ""
    at: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _value(state: Any) -> str:
    return state.value if hasattr(state, "value") else str(state)


class StateGraph:
    """Subclass it with `State` attributes; the class itself is the process's rulebook."""

    states: ClassVar[dict[str, State]]
    recurs: ClassVar[bool] = False
    """A process with no end (a partner's reconciliation status): no final state needed."""
    attribute: ClassVar[str] = "state"
    """The row's column holding the state."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.states = {name: value for name, value in vars(cls).items() if isinstance(value, State)}
        cls._validate()

    @classmethod
    def _validate(cls) -> None:
        name = cls.__name__
        states = cls.states
        if not states:
            raise InvalidGraph(f"{name} declares no state")
        for state in states.values():
            for target in (*state.targets, *state.corrections):
                if target.name not in states or states[target.name] is not target:
                    raise InvalidGraph(f"{name}.{state} goes to a state of another graph")
            if state.final and state.targets:
                raise InvalidGraph(f"{name}.{state} is final but has moves out of it")
        initial = [s for s in states.values() if s.initial]
        if not initial:
            raise InvalidGraph(f"{name} has no initial state")
        unreachable = set(states) - _reachable(initial)
        if unreachable:
            raise InvalidGraph(f"{name}: {', '.join(sorted(unreachable))} cannot be reached")
        if cls.recurs:
            return
        stuck = [s.name for s in states.values() if not s.final and not _ends(s)]
        if stuck:
            raise InvalidGraph(f"{name}: {', '.join(sorted(stuck))} can never reach a final state")

    @classmethod
    def state(cls, value: Any) -> State:
        found = cls.states.get(_value(value))
        if found is None:
            raise InvalidMove(cls.__name__, _value(value), "?", "no such state")
        return found

    @classmethod
    def finals(cls) -> frozenset[str]:
        return frozenset(n for n, s in cls.states.items() if s.final)

    @classmethod
    def is_final(cls, value: Any) -> bool:
        return cls.state(value).final

    @classmethod
    def allows(cls, before: Any, after: Any, *, correction: bool = False) -> bool:
        source = cls.states.get(_value(before))
        if source is None:
            return False
        moves = [*source.targets, *source.corrections] if correction else source.targets
        return any(t.name == _value(after) for t in moves)

    @classmethod
    def check(cls, before: Any, after: Any, *, correction: bool = False) -> str:
        """The new state's value, or `InvalidMove` (the pure rule every change obeys);
        ``correction`` also allows the state's declared corrections."""
        source = cls.state(before)
        target = cls.state(after)
        if target in source.targets or (correction and target in source.corrections):
            return target.name
        if target in source.corrections:
            why = f"{source} → {target} is only a correction"
        elif source.final:
            why = "it is final"
        else:
            why = f"{source} goes to " + (", ".join(t.name for t in source.targets) or "nothing")
        raise InvalidMove(cls.__name__, source.name, target.name, why)

    @classmethod
    def start(cls, row: Any, state: Any, *, subject: str = "", **details: Any) -> Move:
        """Give a new row its first state (one of the initial ones)."""
        target = cls.state(state)
        if not target.initial:
            raise InvalidMove(cls.__name__, "(new)", target.name, "not an initial state")
        setattr(row, cls.attribute, target.name)
        return Move(cls.__name__, subject, None, target.name, details=details)

    @classmethod
    def move(
        cls,
        row: Any,
        to: Any,
        *,
        subject: str = "",
        by: str = "",
        reason: str = "",
        at: datetime | None = None,
        correction: bool = False,
        **details: Any,
    ) -> Move:
        """Check ``row``'s move to ``to``, assign it, and return what to record (a
        ``correction`` is recorded with ``details["correction"]``)."""
        before = getattr(row, cls.attribute)
        after = cls.check(before, to, correction=correction)
        setattr(row, cls.attribute, after)
        if correction and not cls.allows(before, after):
            details = {**details, "correction": True}
        return Move(cls.__name__, subject, _value(before), after, by, reason, at, details)


def _reachable(starts: Iterable[State]) -> set[str]:
    seen: set[str] = set()
    todo = list(starts)
    while todo:
        state = todo.pop()
        if state.name in seen:
            continue
        seen.add(state.name)
        todo.extend(state.targets)
    return seen


def _ends(state: State) -> bool:
    todo, seen = [state], set()
    while todo:
        current = todo.pop()
        if current.final:
            return True
        if current.name not in seen:
            seen.add(current.name)
            todo.extend(current.targets)
    return False
