"""The clearing-access gate: "contributing to the commons bank is the condition for using
the clearing house". Pure: the rule, what a member has done, the clock and an
administrator's decision in; whether access is open and what is missing out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from node import i18n

__all__ = [
    "ClearingAccess",
    "ClearingRule",
    "MissingBricks",
    "MissingTime",
    "Reason",
    "RevokedByAdministrator",
    "describe",
    "format_date",
    "evaluate_clearing_access",
]


@dataclass(frozen=True)
class ClearingRule:
    """The chamber's rule: at least ``min_bricks`` published bricks and a membership at
    least ``min_days`` old (0 turns a condition off)."""

    min_bricks: int = 1
    min_days: int = 0


@dataclass(frozen=True)
class MissingBricks:
    count: int


@dataclass(frozen=True)
class MissingTime:
    opens_on: date


@dataclass(frozen=True)
class RevokedByAdministrator:
    reason: str


Reason = MissingBricks | MissingTime | RevokedByAdministrator


@dataclass(frozen=True)
class ClearingAccess:
    """``allowed``, and when not, each thing missing; ``override`` is an administrator's
    ``granted``/``revoked`` decision (None: the rule alone decides)."""

    allowed: bool
    missing: tuple[Reason, ...] = ()
    override: str | None = None
    override_reason: str = ""

    def reasons(self) -> list[str]:
        """What is missing, in the current language (``node.i18n``)."""
        return [describe(reason) for reason in self.missing]

    @property
    def bricks_missing(self) -> int:
        """How many more bricks to publish (0: none)."""
        return sum(r.count for r in self.missing if isinstance(r, MissingBricks))

    @property
    def opens_on(self) -> str:
        """The date the waiting time ends, formatted ("" when there is none)."""
        days = [r.opens_on for r in self.missing if isinstance(r, MissingTime)]
        return format_date(days[0]) if days else ""


def evaluate_clearing_access(
    rule: ClearingRule,
    *,
    published_bricks: int,
    member_since: datetime,
    now: datetime,
    override: str | None = None,
    override_reason: str = "",
) -> ClearingAccess:
    """Granted by hand opens access whatever the rule; revoked by hand closes it."""
    if override == "granted":
        return ClearingAccess(True, (), override, override_reason)
    if override == "revoked":
        return ClearingAccess(False, (RevokedByAdministrator(override_reason),), override, "")
    missing: list[Reason] = []
    if published_bricks < rule.min_bricks:
        missing.append(MissingBricks(rule.min_bricks - published_bricks))
    if rule.min_days > 0:
        opens_at = member_since + timedelta(days=rule.min_days)
        if now < opens_at:
            missing.append(MissingTime(opens_at.date()))
    return ClearingAccess(not missing, tuple(missing), None, "")


def describe(reason: Reason) -> str:
    if isinstance(reason, MissingBricks):
        return i18n.ngettext(
            "%(count)d more published brick", "%(count)d more published bricks", reason.count
        ) % {"count": reason.count}
    if isinstance(reason, MissingTime):
        return i18n.gettext("access opens on %(date)s") % {"date": format_date(reason.opens_on)}
    if reason.reason:
        return i18n.gettext("access withdrawn by an administrator: %(reason)s") % {
            "reason": reason.reason
        }
    return i18n.gettext("access withdrawn by an administrator")


def format_date(day: date) -> str:
    """``12 May 2027`` / ``12 mai 2027`` in the current language (``node.i18n.format_day``)."""
    return i18n.format_day(day)
