"""The clearing-access gate is a pure rule: what is missing, and administrators' decisions."""

from datetime import UTC, date, datetime, timedelta

import pytest

from node import i18n
from node.members.gate import (
    ClearingRule,
    MissingBricks,
    MissingTime,
    RevokedByAdministrator,
    evaluate_clearing_access,
)

NOW = datetime(2026, 11, 12, 10, 0, tzinfo=UTC)
SIX_MONTHS = ClearingRule(min_bricks=1, min_days=180)


def test_open_when_both_conditions_hold() -> None:
    access = evaluate_clearing_access(
        SIX_MONTHS, published_bricks=1, member_since=NOW - timedelta(days=180), now=NOW
    )
    assert access.allowed and access.missing == ()


def test_says_what_is_missing() -> None:
    access = evaluate_clearing_access(
        ClearingRule(min_bricks=3, min_days=180),
        published_bricks=1,
        member_since=NOW - timedelta(days=10),
        now=NOW,
    )
    assert not access.allowed
    assert access.missing == (MissingBricks(2), MissingTime(date(2027, 5, 1)))
    i18n.use_language("en")
    assert access.reasons() == ["2 more published bricks", "access opens on May 1, 2027"]
    i18n.use_language("fr")
    assert access.reasons() == [
        "2 briques publiées de plus",
        "l'accès ouvre le 1 mai 2027",
    ]


def test_one_more_brick_is_singular() -> None:
    i18n.use_language("en")
    access = evaluate_clearing_access(
        ClearingRule(min_bricks=1, min_days=0), published_bricks=0, member_since=NOW, now=NOW
    )
    assert access.reasons() == ["1 more published brick"]


def test_zero_turns_conditions_off() -> None:
    access = evaluate_clearing_access(
        ClearingRule(min_bricks=0, min_days=0), published_bricks=0, member_since=NOW, now=NOW
    )
    assert access.allowed


@pytest.mark.parametrize("bricks", [0, 5])
def test_administrators_decide_over_the_rule(bricks: int) -> None:
    granted = evaluate_clearing_access(
        SIX_MONTHS, published_bricks=bricks, member_since=NOW, now=NOW, override="granted"
    )
    assert granted.allowed and granted.override == "granted"
    revoked = evaluate_clearing_access(
        SIX_MONTHS,
        published_bricks=bricks,
        member_since=NOW - timedelta(days=999),
        now=NOW,
        override="revoked",
        override_reason="unpaid debts",
    )
    assert not revoked.allowed
    assert revoked.missing == (RevokedByAdministrator("unpaid debts"),)
    i18n.use_language("en")
    assert revoked.reasons() == ["access withdrawn by an administrator: unpaid debts"]
