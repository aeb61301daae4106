"""The hour unit, counted in whole minutes, and the clearing house's exception tree.

Every amount in the clearing house is an ``int`` of minutes of the virtual hour unit: exact,
never a float. ``bool`` is an ``int`` to Python but never an amount here.

    >>> format_minutes(90), format_minutes(-125)
    ('1 h 30', '-2 h 05')
    >>> parse_duration("1h30"), parse_duration("1:30"), parse_duration("90min")
    (90, 90, 90)
    >>> parse_duration("1,5 h"), parse_duration("1u30")
    (90, 90)

Exceptions (one tree for ``node.clearing``)::

    ClearingError
    ├── LedgerError                   refused postings and transactions (node.clearing.ledger.rules)
    │   ├── AmountError               not an int of minutes (float, bool, str...)
    │   └── ...                       see node.clearing.ledger.rules
    ├── DurationError                 a duration typed by a person could not be read
    └── NettingError                  bad obligations or a netting that does not verify

This module is pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

__all__ = [
    "MAX_BRICKS",
    "MAX_DESCRIPTION",
    "MAX_MINUTES",
    "MINUTES_PER_HOUR",
    "AmountError",
    "ClearingError",
    "DurationError",
    "LedgerError",
    "NettingError",
    "format_minutes",
    "parse_duration",
    "require_minutes",
]

MINUTES_PER_HOUR = 60
MAX_MINUTES = 1000 * 60
"""The most an exchange may be worth (its declaration, an amendment, a copy received)."""
MAX_DESCRIPTION = 2000
MAX_BRICKS = 20
_MAX_INPUT = 40


class ClearingError(Exception):
    """Base of every error raised by ``node.clearing``."""


class LedgerError(ClearingError):
    """A posting or transaction was refused; nothing was changed."""


class AmountError(LedgerError, TypeError):
    """An amount is not an integer number of minutes."""


class DurationError(ClearingError, ValueError):
    """A duration typed by a person could not be read; the message says how to write it."""


class NettingError(ClearingError):
    """Obligations given to the netting are invalid, or a netting result does not verify."""


def require_minutes(value: Any, what: str = "amount") -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``), else raise `AmountError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise AmountError(
            f"{what} must be a whole number of minutes (an int), got {type(value).__name__} "
            f"{value!r}"
        )
    return value


def format_minutes(minutes: int) -> str:
    """``90 -> "1 h 30"``, ``-125 -> "-2 h 05"``, ``0 -> "0 h 00"``."""
    require_minutes(minutes)
    sign = "-" if minutes < 0 else ""
    hours, rest = divmod(abs(minutes), MINUTES_PER_HOUR)
    return f"{sign}{hours} h {rest:02d}"


_HOURS = r"(?:h|hr|hrs|hour|hours|heure|heures|u|uur)"
_MINUTES = r"(?:m|min|mins|minute|minutes|mn)"
_NUMBER = r"\d+(?:[.,]\d+)?"
# "1 h 30", "1h", "1u30", "1,5 h"
_HOURS_FORM = re.compile(rf"(?P<h>{_NUMBER})\s*{_HOURS}\s*(?:(?P<m>\d{{1,2}})\s*(?:{_MINUTES})?)?")
# "1:30"
_CLOCK_FORM = re.compile(r"(?P<h>\d+):(?P<m>\d{2})")
# "90min", "90 minutes"
_MINUTES_FORM = re.compile(rf"(?P<m>\d+)\s*{_MINUTES}")

_HOW = 'write it like "1 h 30", "1h30", "1:30", "90 min" or "1,5 h"'


def parse_duration(text: str) -> int:
    """Read a duration typed by a person into whole minutes; raise `DurationError` if unclear.

    Accepted: ``1 h 30``, ``1h30``, ``1h``, ``1:30``, ``90min``, ``90 min``, ``1,5 h``,
    ``1.5h``, Dutch ``1u30``, and a leading ``-`` or ``+``. Every `format_minutes` output
    parses back to the same number. A bare number is refused: hours or minutes?
    """
    if not isinstance(text, str):
        raise DurationError(f"a duration must be text, got {type(text).__name__}")
    if len(text) > _MAX_INPUT:
        raise DurationError(f"a duration is at most {_MAX_INPUT} characters; {_HOW}")
    cleaned = " ".join(text.split()).lower()
    if not cleaned:
        raise DurationError(f"the duration is empty; {_HOW}")
    sign = 1
    if cleaned[0] in "+-−":
        sign = -1 if cleaned[0] != "+" else 1
        cleaned = cleaned[1:].lstrip()
    if re.fullmatch(_NUMBER, cleaned):
        raise DurationError(
            f"{text.strip()!r} has no unit: is it hours or minutes? add one, e.g. "
            f'"{cleaned} h" or "{cleaned} min"'
        )
    if match := _CLOCK_FORM.fullmatch(cleaned):
        hours = Fraction(int(match["h"]))
        extra = int(match["m"])
    elif match := _HOURS_FORM.fullmatch(cleaned):
        hours = Fraction(match["h"].replace(",", "."))
        extra = int(match["m"]) if match["m"] is not None else 0
        if extra and hours.denominator != 1:
            raise DurationError(f"{text.strip()!r} mixes decimal hours and minutes; {_HOW}")
    elif match := _MINUTES_FORM.fullmatch(cleaned):
        return sign * int(match["m"])
    else:
        raise DurationError(f"{text.strip()!r} is not a duration; {_HOW}")
    if extra >= MINUTES_PER_HOUR:
        raise DurationError(f"{text.strip()!r}: minutes after the hours must be below 60")
    total = hours * MINUTES_PER_HOUR + extra
    if total.denominator != 1:
        raise DurationError(
            f"{text.strip()!r} is not a whole number of minutes "
            f"({float(total):.2f} min); round it, e.g. "
            f'"{format_minutes(int(total))}"'
        )
    return sign * int(total)
