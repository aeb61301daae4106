"""Multilateral netting: positions kept, obligations only reduced, the most debt cancelled."""

from __future__ import annotations

import ast
import itertools
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import node.clearing.rounds.netting as netting_module
from node.clearing.rounds.netting import (
    NettingError,
    NettingResult,
    Obligation,
    net,
    net_positions,
    verify_netting,
)

CHAMBERS = ["lille", "roubaix", "gand", "tournai", "mons"]


def obligations(max_nodes: int, max_edges: int, max_amount: int) -> st.SearchStrategy:
    names = CHAMBERS[:max_nodes]
    pair = st.tuples(st.sampled_from(names), st.sampled_from(names)).filter(lambda p: p[0] != p[1])
    edge = st.builds(lambda p, m: Obligation(p[0], p[1], m), pair, st.integers(1, max_amount))
    return st.lists(edge, max_size=max_edges)


def random_obligation(rng: random.Random, names: list[str], minutes: int) -> Obligation:
    debtor, creditor = rng.sample(names, 2)
    return Obligation(debtor, creditor, minutes)


def check_invariants(given_: list[Obligation], result: NettingResult) -> None:
    assert result.obligations == tuple(given_)
    assert len(result.removed) == len(given_)
    for obligation, removed in zip(given_, result.removed, strict=True):
        assert 0 <= removed <= obligation.minutes
    positions = net_positions(given_)
    after = net_positions(result.remaining)
    assert {k: v for k, v in positions.items() if v} == {k: v for k, v in after.items() if v}
    assert result.total_before == result.total_removed + result.total_after
    assert result.total_after == sum(o.minutes for o in result.remaining)
    # Nothing cancels below what the net positions force to remain.
    assert result.total_after >= sum(v for v in positions.values() if v > 0)
    verify_netting(result)


# -- the design's example ----------------------------------------------------------------------


def test_lille_roubaix_gand_cycle_nets_to_zero() -> None:
    result = net(
        [
            Obligation("lille", "roubaix", 300),
            Obligation("roubaix", "gand", 300),
            Obligation("gand", "lille", 300),
        ]
    )
    assert result.removed == (300, 300, 300)
    assert result.remaining == ()
    assert result.total_removed == 900
    assert result.total_after == 0
    assert result.canonical() == [
        ("gand", "lille", 300, 300),
        ("lille", "roubaix", 300, 300),
        ("roubaix", "gand", 300, 300),
    ]


def test_an_uneven_cycle_cancels_its_smallest_debt_around() -> None:
    result = net([("lille", "roubaix", 300), ("roubaix", "gand", 500), ("gand", "lille", 420)])
    assert result.removed == (300, 300, 300)
    assert {(o.debtor, o.creditor, o.minutes) for o in result.remaining} == {
        ("roubaix", "gand", 200),
        ("gand", "lille", 120),
    }


def test_a_chain_has_nothing_to_cancel() -> None:
    result = net([("lille", "roubaix", 60), ("roubaix", "gand", 60)])
    assert result.removed == (0, 0)


def test_two_chambers_owing_each_other_cancel_the_smaller_debt() -> None:
    result = net([("lille", "gand", 90), ("gand", "lille", 30)])
    assert result.removed == (30, 30)


def test_two_cycles_sharing_a_debt_leave_only_the_net_positions() -> None:
    # gand -> lille (7) closes both lille -> roubaix -> gand (5) and lille -> gand (5).
    # Net positions: lille -3, roubaix 0, gand +3: only 3 min need remain out of 22.
    result = net(
        [
            ("lille", "roubaix", 5),
            ("roubaix", "gand", 5),
            ("lille", "gand", 5),
            ("gand", "lille", 7),
        ]
    )
    check_invariants(list(result.obligations), result)
    assert result.total_removed == 19
    assert result.total_after == 3


def test_no_obligations_no_netting() -> None:
    result = net([])
    assert result.removed == () and result.total_removed == 0
    verify_netting(result)


def test_the_canonical_form_does_not_depend_on_the_input_order() -> None:
    rng = random.Random(3)
    base = [random_obligation(rng, CHAMBERS, rng.randint(1, 4)) for _ in range(12)]
    canonical = net(base).canonical()
    for _ in range(10):
        shuffled = base[:]
        rng.shuffle(shuffled)
        assert net(shuffled).canonical() == canonical


@pytest.mark.parametrize(
    "bad",
    [
        ("lille", "lille", 10),
        ("lille", "gand", 0),
        ("lille", "gand", -5),
        ("lille", "gand", 1.5),
        ("lille", "gand", True),
        ("", "gand", 5),
    ],
)
def test_malformed_obligations_are_refused(bad: tuple[str, str, object]) -> None:
    with pytest.raises(NettingError):
        net([bad])  # type: ignore[list-item]


# -- verification refuses bad nettings ---------------------------------------------------------


def cycle() -> list[Obligation]:
    return [
        Obligation("lille", "roubaix", 300),
        Obligation("roubaix", "gand", 300),
        Obligation("gand", "lille", 300),
    ]


def test_verify_refuses_a_changed_position() -> None:
    result = net(cycle())
    forged = NettingResult(result.obligations, (300, 200, 300), result.certificate)
    with pytest.raises(NettingError, match="net position"):
        verify_netting(forged)


def test_verify_refuses_removing_more_than_owed() -> None:
    result = net(cycle())
    forged = NettingResult(result.obligations, (400, 400, 400), result.certificate)
    with pytest.raises(NettingError, match="removes 400"):
        verify_netting(forged)


def test_verify_refuses_a_netting_that_is_not_optimal() -> None:
    result = net(cycle())
    lazy = NettingResult(result.obligations, (100, 100, 100), result.certificate)
    with pytest.raises(NettingError, match="certificate"):
        verify_netting(lazy)
    with pytest.raises(NettingError, match="certificate"):
        verify_netting(NettingResult(result.obligations, (100, 100, 100), {}))


# -- against independent optima ----------------------------------------------------------------


def brute_force_optimum(given_: list[Obligation]) -> int:
    """The largest total removal, by trying every integer removal vector."""
    positions_ok = net_positions(given_)
    best = 0
    for removed in itertools.product(*(range(o.minutes + 1) for o in given_)):
        change: dict[str, int] = dict.fromkeys(positions_ok, 0)
        for o, r in zip(given_, removed, strict=True):
            change[o.debtor] += r
            change[o.creditor] -= r
        if not any(change.values()):
            best = max(best, sum(removed))
    return best


@settings(max_examples=150, deadline=None)
@given(obligations(max_nodes=4, max_edges=6, max_amount=3))
def test_matches_a_brute_force_optimum(given_: list[Obligation]) -> None:
    result = net(given_)
    check_invariants(given_, result)
    assert result.total_removed == brute_force_optimum(given_)


def linprog_optimum(given_: list[Obligation]) -> int:
    """The largest total removal, as a linear programme solved by HiGHS."""
    optimize = pytest.importorskip("scipy.optimize")
    if not given_:
        return 0
    names = sorted({n for o in given_ for n in (o.debtor, o.creditor)})
    rows = [[0] * len(given_) for _ in names]
    for column, o in enumerate(given_):
        rows[names.index(o.debtor)][column] += 1
        rows[names.index(o.creditor)][column] -= 1
    solution = optimize.linprog(
        c=[-1] * len(given_),
        A_eq=rows,
        b_eq=[0] * len(names),
        bounds=[(0, o.minutes) for o in given_],
        method="highs",
    )
    assert solution.status == 0
    return round(-solution.fun)


@settings(max_examples=300, deadline=None)
@given(obligations(max_nodes=5, max_edges=8, max_amount=40))
def test_matches_the_linear_programming_optimum(given_: list[Obligation]) -> None:
    result = net(given_)
    check_invariants(given_, result)
    assert result.total_removed == linprog_optimum(given_)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32), st.integers(5, 60), st.integers(10, 400))
def test_matches_the_linear_programming_optimum_on_larger_networks(
    seed: int, chambers: int, edges: int
) -> None:
    rng = random.Random(seed)
    names = [f"c{i}" for i in range(chambers)]
    given_ = [random_obligation(rng, names, rng.randint(1, 2400)) for _ in range(edges)]
    result = net(given_)
    check_invariants(given_, result)
    assert result.total_removed == linprog_optimum(given_)


@pytest.mark.parametrize("seed", range(3))
def test_invariants_hold_on_a_large_network(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"chamber-{i}" for i in range(300)]
    given_ = [random_obligation(rng, names, rng.randint(1, 2400)) for _ in range(3000)]
    check_invariants(given_, net(given_))


# -- purity ------------------------------------------------------------------------------------


def test_the_netting_is_pure() -> None:
    tree = ast.parse(Path(netting_module.__file__).read_text())
    roots: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module:
            roots.add(item.module.split(".")[0])
    assert roots <= {"__future__", "collections", "dataclasses", "heapq", "node", "typing"}
