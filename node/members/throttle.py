"""Sign-in throttling rules, pure: what each attempt counter allows, and how long to wait.

Every sign-in attempt is counted under three keys (``node.members.accounts`` stores them
and applies these rules with the rows locked, *before* the password is checked, so that a
burst of concurrent attempts cannot all go through):

- the pair (account, address): at most ``PAIR.free`` = 5 attempts per 15-minute window, then
  429 until the window ends, **for that pair only**: one address guessing one account stops
  there, and the member signing in from elsewhere is not concerned;
- the address, across accounts: 20 free attempts per window, then each further attempt waits
  a delay that doubles (1 s, 2 s, 4 s ... at most 60 s) before the next is admitted: one
  address cannot spray every account, yet members who share an address (a shared NAT, a
  proxy that does not pass the client's address) wait seconds, never a quarter of an hour;
- the account, from every address: 10 free attempts per window, then the same doubling
  delay: guessing spread over many addresses is slowed down to about one attempt a minute
  without a hard lock: the member's right password passes once the delay has run.

A right password gives its attempt back: only failures add up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

__all__ = [
    "ACCOUNT",
    "ADDRESS",
    "FIRST_DELAY",
    "MAX_DELAY",
    "PAIR",
    "WINDOW",
    "Counter",
    "Rule",
    "backoff_delay",
    "counted",
    "refusal",
    "retry_after_seconds",
]

#: How long attempts are remembered: a counter starts again after a window without limit.
WINDOW = timedelta(minutes=15)
#: The first wait once a backing-off key has used its free attempts; it doubles each time.
FIRST_DELAY = timedelta(seconds=1)
#: The longest wait between two attempts on a backing-off key.
MAX_DELAY = timedelta(seconds=60)


@dataclass(frozen=True)
class Rule:
    """``free`` attempts per window; then either refuse until the window ends (``backoff``
    False) or admit one attempt per doubling delay (``backoff`` True)."""

    free: int
    backoff: bool


PAIR = Rule(free=5, backoff=False)
ADDRESS = Rule(free=20, backoff=True)
ACCOUNT = Rule(free=10, backoff=True)


@dataclass(frozen=True)
class Counter:
    """Attempts counted since ``window_start``; no attempt is admitted before ``not_before``."""

    count: int
    window_start: datetime
    not_before: datetime | None = None


def _current(counter: Counter, now: datetime) -> Counter:
    """The counter, started again when its window is over (a pending delay still holds)."""
    if now >= counter.window_start + WINDOW:
        return Counter(0, now, counter.not_before)
    return counter


def backoff_delay(excess: int) -> timedelta:
    """The wait after the ``excess``-th attempt beyond the free ones (1, 2, 4 ... capped)."""
    if excess <= 0:
        return timedelta(0)
    return min(FIRST_DELAY * 2 ** min(excess - 1, 30), MAX_DELAY)


def refusal(counter: Counter, rule: Rule, now: datetime) -> timedelta | None:
    """How long this attempt must wait, or None when it may go ahead."""
    counter = _current(counter, now)
    if counter.not_before is not None and now < counter.not_before:
        return counter.not_before - now
    if not rule.backoff and counter.count >= rule.free:
        return counter.window_start + WINDOW - now
    return None


def counted(counter: Counter, rule: Rule, now: datetime) -> Counter:
    """The counter with one more (admitted) attempt, and the delay it sets if backing off."""
    counter = _current(counter, now)
    count = counter.count + 1
    not_before = counter.not_before
    if rule.backoff and count > rule.free:
        not_before = now + backoff_delay(count - rule.free)
    return Counter(count, counter.window_start, not_before)


def retry_after_seconds(wait: timedelta) -> int:
    """A ``Retry-After`` value: whole seconds, at least one."""
    return max(1, math.ceil(wait.total_seconds()))
