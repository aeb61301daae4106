"""Multilateral netting cost against linear passes over the same obligations, in the same run.

    .venv/bin/python -m bench.netting [--chambers 1000] [--obligations 10000] [--seed 7]

Prints the time to net (exact min-cost flow), the total debt before and after, and two
baselines on the same data: one pass computing the net positions, and `verify_netting`
(positions, bounds and the optimality certificate, ``O(E)``), with the ratios.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import TypeVar

from node.clearing.rounds.netting import Obligation, net, net_positions, verify_netting
from node.clearing.units import format_minutes

T = TypeVar("T")


def timed(work: Callable[[], T]) -> tuple[T, float]:
    start = time.perf_counter()
    value = work()
    return value, time.perf_counter() - start


def best_of(work: Callable[[], object], runs: int = 5) -> float:
    return min(timed(work)[1] for _ in range(runs))


def obligations(chambers: int, count: int, seed: int) -> list[Obligation]:
    """``count`` random obligations between ``chambers`` chambers, 15 min to 40 h each."""
    rng = random.Random(seed)
    names = [f"chamber-{i:04d}" for i in range(chambers)]
    result = []
    for _ in range(count):
        debtor, creditor = rng.sample(names, 2)
        result.append(Obligation(debtor, creditor, rng.randint(15, 2400)))
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chambers", type=int, default=1000)
    parser.add_argument("--obligations", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    data = obligations(args.chambers, args.obligations, args.seed)
    result, netting = timed(lambda: net(data))
    positions = best_of(lambda: net_positions(data))
    verifying = best_of(lambda: verify_netting(result))
    print(f"chambers {args.chambers}, obligations {len(data)}, seed {args.seed}")
    print(f"net (exact min-cost flow)    {netting * 1000:10.1f} ms")
    print(
        f"net_positions (one pass)     {positions * 1000:10.1f} ms   "
        f"net / positions = {netting / positions:8.0f}x"
    )
    print(
        f"verify_netting (O(E) check)  {verifying * 1000:10.1f} ms   "
        f"net / verify    = {netting / verifying:8.0f}x"
    )
    before, after = result.total_before, result.total_after
    print(f"debt before  {format_minutes(before):>14}  ({before} min)")
    print(f"debt after   {format_minutes(after):>14}  ({after} min)")
    share = result.total_removed / before
    print(f"cancelled    {format_minutes(result.total_removed):>14}  ({share:.1%})")
    lower_bound = sum(p for p in net_positions(data).values() if p > 0)
    print(f"lower bound  {format_minutes(lower_bound):>14}  (sum of net creditor positions)")


if __name__ == "__main__":
    main()
