"""Multilateral netting of inter-chamber obligations: cancel the most debt around cycles.

Given obligations "``debtor`` owes ``creditor`` ``minutes``", a netting removes ``r_e`` minutes
from each obligation ``e`` such that

* ``0 <= r_e <= minutes_e`` (an obligation is only reduced: no new edge, no reversed debt),
* every chamber's net position (what it is owed minus what it owes) is unchanged, i.e. the
  removals form a circulation: at each chamber, removed from its debts = removed from its claims,
* the total removed, ``sum(r_e)``, is as large as possible.

This is MTCS, *Multilateral Trade Credit Set-off*. Writing ``u_e = minutes_e - r_e`` for what
remains, the constraints say that ``u`` is a flow along the obligations, ``0 <= u_e <= minutes_e``,
in which each chamber sends out exactly its net debt ``d(v) = owes(v) - owed(v)``; maximising
``sum(r)`` is minimising ``sum(u)``. So the remaining obligations are a **minimum-cost flow**
with unit cost per minute on every obligation, capacity ``minutes_e``, from a super-source feeding
each net debtor ``d(v)`` to a super-sink draining each net creditor ``-d(v)``. (``u = minutes``
is always feasible, so the problem always has a solution.)

Algorithm: **primal-dual min-cost flow** (successive shortest paths, augmenting along *all*
shortest paths of a phase at once). Integer potentials ``p`` keep every residual reduced cost
``cost(e) + p(tail) - p(head)`` non-negative; each phase runs Dijkstra on reduced costs, adds the
(capped) distances to ``p``, then a Dinic max-flow on the admissible edges (reduced cost 0). All
arithmetic is on integers, so the result is exact.

Complexity: costs are 0 or ±1 and a simple augmenting path has at most ``V + 1`` edges, so the
shortest-path cost rises by at least one per phase: at most ``V`` phases, each one Dijkstra
``O(E log V)`` plus one Dinic ``O(V^2 E)`` worst case, i.e. ``O(V^3 E)`` worst case,
independent of the amounts (no pseudo-polynomial factor). In practice obligation graphs have a
small diameter, so only a handful of phases run: 1,000 chambers and 10,000 obligations net in
about a second (``python -m bench.netting``).

Certificate: the final potentials (``NettingResult.certificate``) prove optimality. With them every
residual edge has non-negative reduced cost, so there is no negative cycle, so no netting removes
more (LP duality). `verify_netting` checks positions, bounds and the certificate in ``O(E)``: a
chamber can check a netting it did not compute before signing it.

Determinism: obligations are processed in canonical order, so any chamber that recomputes the
netting of the same obligations gets the same `NettingResult.canonical` form, whatever the input
order.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from node.clearing.units import AmountError, NettingError, require_minutes

__all__ = [
    "NettingError",
    "NettingResult",
    "Obligation",
    "net",
    "net_positions",
    "total_debt",
    "verify_netting",
]


@dataclass(frozen=True, slots=True)
class Obligation:
    """``debtor`` owes ``creditor`` ``minutes`` (> 0) of the hour unit."""

    debtor: str
    creditor: str
    minutes: int

    def __post_init__(self) -> None:
        for role in ("debtor", "creditor"):
            name = getattr(self, role)
            if not isinstance(name, str) or not name:
                raise NettingError(f"an obligation's {role} is a chamber id, got {name!r}")
        if self.debtor == self.creditor:
            raise NettingError(f"{self.debtor} cannot owe itself")
        try:
            require_minutes(self.minutes, "an obligation")
        except AmountError as error:
            raise NettingError(str(error)) from error
        if self.minutes <= 0:
            raise NettingError(
                f"{self.debtor} -> {self.creditor}: an obligation is positive, got {self.minutes}"
            )


CanonicalLine = tuple[str, str, int, int]
"""``(debtor, creditor, original minutes, removed minutes)``."""


@dataclass(frozen=True, slots=True)
class NettingResult:
    """A netting: ``removed[i]`` minutes are cancelled from ``obligations[i]``."""

    obligations: tuple[Obligation, ...]
    removed: tuple[int, ...]
    certificate: Mapping[str, int] = field(default_factory=dict)
    """Potentials proving optimality (see the module docstring); checked by `verify_netting`."""

    @property
    def remaining(self) -> tuple[Obligation, ...]:
        """What is still owed after the netting (fully cancelled obligations left out)."""
        return tuple(
            Obligation(o.debtor, o.creditor, o.minutes - r)
            for o, r in zip(self.obligations, self.removed, strict=True)
            if o.minutes > r
        )

    @property
    def total_before(self) -> int:
        """Total debt before the netting."""
        return total_debt(self.obligations)

    @property
    def total_removed(self) -> int:
        """Total debt cancelled."""
        return sum(self.removed)

    @property
    def total_after(self) -> int:
        """Total debt left."""
        return self.total_before - self.total_removed

    def canonical(self) -> list[CanonicalLine]:
        """Sorted ``(debtor, creditor, original, removed)`` lines: the form chambers sign."""
        return sorted(
            (o.debtor, o.creditor, o.minutes, r)
            for o, r in zip(self.obligations, self.removed, strict=True)
        )


def _obligations(items: Iterable[Obligation | tuple[str, str, int]]) -> tuple[Obligation, ...]:
    return tuple(item if isinstance(item, Obligation) else Obligation(*item) for item in items)


def total_debt(obligations: Iterable[Obligation]) -> int:
    """The sum of the obligations."""
    return sum(o.minutes for o in obligations)


def net_positions(obligations: Iterable[Obligation]) -> dict[str, int]:
    """Each chamber's net position: what it is owed minus what it owes (they sum to zero)."""
    positions: dict[str, int] = {}
    for o in obligations:
        positions[o.debtor] = positions.get(o.debtor, 0) - o.minutes
        positions[o.creditor] = positions.get(o.creditor, 0) + o.minutes
    return positions


class _Network:
    """A residual network: edge ``2k`` and its reverse ``2k + 1``."""

    def __init__(self, size: int) -> None:
        self.adjacent: list[list[int]] = [[] for _ in range(size)]
        self.head: list[int] = []
        self.capacity: list[int] = []
        self.cost: list[int] = []

    def add(self, tail: int, head: int, capacity: int, cost: int) -> int:
        edge = len(self.head)
        self.adjacent[tail].append(edge)
        self.adjacent[head].append(edge + 1)
        self.head += [head, tail]
        self.capacity += [capacity, 0]
        self.cost += [cost, -cost]
        return edge


def _min_cost_flow(network: _Network, source: int, sink: int, demand: int) -> list[int]:
    """Send ``demand`` from ``source`` to ``sink`` at minimum cost; return the potentials."""
    size = len(network.adjacent)
    adjacent, heads, capacity, cost = (
        network.adjacent,
        network.head,
        network.capacity,
        network.cost,
    )
    potential = [0] * size  # every initial cost is >= 0
    sent = 0
    while sent < demand:
        # Dijkstra on reduced costs.
        distance: list[int | None] = [None] * size
        distance[source] = 0
        heap = [(0, source)]
        while heap:
            d, tail = heapq.heappop(heap)
            if d != distance[tail]:
                continue
            for edge in adjacent[tail]:
                if capacity[edge]:
                    head = heads[edge]
                    nd = d + cost[edge] + potential[tail] - potential[head]
                    known = distance[head]
                    if known is None or nd < known:
                        distance[head] = nd
                        heapq.heappush(heap, (nd, head))
        reach = distance[sink]
        if reach is None:
            raise NettingError("internal error: the net positions cannot be routed")
        for node in range(size):
            found = distance[node]
            potential[node] += reach if found is None or found > reach else found
        sent += _admissible_max_flow(network, source, sink, potential, demand - sent)
    return potential


def _admissible_max_flow(
    network: _Network, source: int, sink: int, potential: list[int], limit: int
) -> int:
    """Dinic's max-flow restricted to edges of zero reduced cost; at most ``limit``."""
    size = len(network.adjacent)
    adjacent, heads, capacity, cost = (
        network.adjacent,
        network.head,
        network.capacity,
        network.cost,
    )
    pushed = 0
    while pushed < limit:
        level = [-1] * size
        level[source] = 0
        queue = deque([source])
        while queue:
            tail = queue.popleft()
            for edge in adjacent[tail]:
                head = heads[edge]
                if (
                    capacity[edge]
                    and level[head] < 0
                    and cost[edge] + potential[tail] == potential[head]
                ):
                    level[head] = level[tail] + 1
                    queue.append(head)
        if level[sink] < 0:
            break
        cursor = [0] * size
        path: list[int] = []
        node = source
        while pushed < limit:
            if node == sink:
                amount = min(min(capacity[e] for e in path), limit - pushed)
                for e in path:
                    capacity[e] -= amount
                    capacity[e ^ 1] += amount
                pushed += amount
                # Back up to the first saturated edge of the path.
                for position, e in enumerate(path):
                    if not capacity[e]:
                        del path[position:]
                        break
                node = heads[path[-1]] if path else source
                continue
            edges = adjacent[node]
            while cursor[node] < len(edges):
                edge = edges[cursor[node]]
                head = heads[edge]
                if (
                    capacity[edge]
                    and level[head] == level[node] + 1
                    and cost[edge] + potential[node] == potential[head]
                ):
                    break
                cursor[node] += 1
            else:
                if node == source:
                    break
                level[node] = -1  # dead end for this phase
                edge = path.pop()
                node = heads[edge ^ 1]
                cursor[node] += 1
                continue
            path.append(edge)
            node = head
    return pushed


def net(obligations: Iterable[Obligation | tuple[str, str, int]]) -> NettingResult:
    """The netting that cancels the most debt without changing any chamber's net position.

    Accepts `Obligation`s or ``(debtor, creditor, minutes)`` tuples; raises `NettingError` on a
    malformed one. Parallel obligations (same debtor and creditor) are allowed.
    """
    given = _obligations(obligations)
    if not given:
        return NettingResult((), (), {})
    order = sorted(
        range(len(given)), key=lambda i: (given[i].debtor, given[i].creditor, given[i].minutes)
    )
    chambers = sorted({name for o in given for name in (o.debtor, o.creditor)})
    index = {name: i for i, name in enumerate(chambers)}
    source, sink = len(chambers), len(chambers) + 1
    network = _Network(len(chambers) + 2)
    edges = [0] * len(given)
    for i in order:
        o = given[i]
        edges[i] = network.add(index[o.debtor], index[o.creditor], o.minutes, 1)
    demand = 0
    for name, position in sorted(net_positions(given).items()):
        if position < 0:
            network.add(source, index[name], -position, 0)
            demand -= position
        elif position > 0:
            network.add(index[name], sink, position, 0)
    potential = _min_cost_flow(network, source, sink, demand)
    removed = tuple(o.minutes - network.capacity[edges[i] ^ 1] for i, o in enumerate(given))
    lowest = min(potential[: len(chambers)])
    certificate = {name: potential[index[name]] - lowest for name in chambers}
    return NettingResult(given, removed, certificate)


def verify_netting(result: NettingResult) -> None:
    """Check a netting in ``O(E)``; raise `NettingError` saying what is wrong.

    (a) every chamber's net position is unchanged, (b) ``0 <= removed <= original`` on each
    obligation, (c) the certificate proves that no netting cancels more.
    """
    if len(result.obligations) != len(result.removed):
        raise NettingError("the netting has not one removal per obligation")
    flow: dict[str, int] = {}
    for o, r in zip(result.obligations, result.removed, strict=True):
        if isinstance(r, bool) or not isinstance(r, int) or not 0 <= r <= o.minutes:
            raise NettingError(
                f"{o.debtor} -> {o.creditor}: removes {r!r} from an obligation of {o.minutes}"
            )
        flow[o.debtor] = flow.get(o.debtor, 0) - r
        flow[o.creditor] = flow.get(o.creditor, 0) + r
    for name, change in sorted(flow.items()):
        if change:
            raise NettingError(f"the netting changes the net position of {name} by {change}")
    p = result.certificate
    for o, r in zip(result.obligations, result.removed, strict=True):
        if o.debtor not in p or o.creditor not in p:
            raise NettingError(f"the certificate has no potential for {o.debtor} or {o.creditor}")
        slack = p[o.creditor] - p[o.debtor]
        # Residual edges of the remaining flow u = minutes - removed, cost 1 per minute owed.
        if r > 0 and slack > 1:  # could owe more here: 1 + p(debtor) - p(creditor) >= 0
            raise NettingError(f"the certificate fails on {o.debtor} -> {o.creditor} (forward)")
        if r < o.minutes and slack < 1:  # could owe less here: -1 + p(creditor) - p(debtor) >= 0
            raise NettingError(f"the certificate fails on {o.debtor} -> {o.creditor} (backward)")
