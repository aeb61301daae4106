"""A clock that stands still until the test moves it (``Federation``, ``Worker`` and the
clearing services take a clock; ``create_app(clock=...)`` hands one to all of them)."""

from __future__ import annotations

from datetime import datetime, timedelta

__all__ = ["Clock"]


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        """Move forward by ``timedelta(**delta)``."""
        self.now += timedelta(**delta)
