"""Actor keys made once a run: RSA-2048 generation costs 50-150 ms, and tests make actors
all the time (``generate_actor_keys`` itself is tested in tests/test_keys.py)."""

from __future__ import annotations

from collections.abc import Callable

from node.activitypub.keys import ActorKeys, generate_actor_keys

__all__ = ["KeyPool"]


class KeyPool:
    """Keys generated on demand and kept: each ``hand_out()`` gives a stand-in for
    ``generate_actor_keys`` that returns the pool's keys in order, so that the actors made
    with one stand-in have distinct keys and the run generates only as many keys as its
    busiest user needs."""

    def __init__(self) -> None:
        self._keys: list[ActorKeys] = []

    def hand_out(self) -> Callable[[], ActorKeys]:
        taken = 0

        def next_keys() -> ActorKeys:
            nonlocal taken
            if taken == len(self._keys):
                self._keys.append(generate_actor_keys())
            taken += 1
            return self._keys[taken - 1]

        return next_keys
