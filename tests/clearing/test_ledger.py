"""The double-entry rules: balanced, tight (sum 0), within limits, exact rounding."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import node.clearing.ledger.rules as ledger_module
import node.clearing.units as units_module
from node.clearing.ledger.rules import (
    AccountKind,
    AmountError,
    CeilingBreach,
    DuplicateAccount,
    FloorBreach,
    InvalidTerms,
    LedgerError,
    Limits,
    MalformedTransaction,
    Posting,
    Transaction,
    UnbalancedTransaction,
    UnknownAccount,
    apply,
    demurrage_postings,
    exchange_postings,
    levy_for,
    total,
)
from node.clearing.units import DurationError, format_minutes, parse_duration

FUND = "fonds-des-communs"
MEMBERS = ["marie", "ahmed", "joke", "pieter", "lea"]
LIMITS = {
    "marie": Limits(floor=-1200),
    "ahmed": Limits(floor=-600, ceiling=900),
    "joke": Limits(floor=-1200, ceiling=3000),
    "pieter": Limits(floor=0),
    "lea": Limits(floor=-60),
    FUND: Limits(floor=0, kind=AccountKind.COMMONS_FUND),
    "gand": Limits(floor=-6000, ceiling=6000, kind=AccountKind.CHAMBER),
}


def within_limits(balances: dict[str, int]) -> bool:
    for account, balance in balances.items():
        terms = LIMITS[account]
        if balance < terms.floor or (terms.ceiling is not None and balance > terms.ceiling):
            return False
    return True


# -- the seed's example ------------------------------------------------------------------------


def test_the_seeds_three_members_trade_300_and_end_at_zero() -> None:
    limits = {name: Limits(floor=-1200) for name in "ABC"}
    balances: dict[str, int] = {"A": 0, "B": 0, "C": 0}
    volume = 0
    # A buys from B, B buys from C, C buys from A: the provider is credited.
    for provider, beneficiary in (("B", "A"), ("C", "B"), ("A", "C")):
        transaction = exchange_postings(provider, beneficiary, 100)
        balances = apply(balances, limits, transaction)
        volume += transaction.volume
        assert total(balances) == 0
    assert balances == {"A": 0, "B": 0, "C": 0}
    assert volume == 300


def test_after_the_first_exchange_a_is_in_debt_and_b_in_credit() -> None:
    limits = {name: Limits(floor=-1200) for name in "ABC"}
    balances = apply({}, limits, exchange_postings("B", "A", 100))
    assert balances == {"A": -100, "B": 100}


# -- refusals change nothing -------------------------------------------------------------------


def test_a_floor_breach_says_who_by_how_much_and_changes_nothing() -> None:
    balances = {"marie": -1110, "joke": 1110, FUND: 0}
    snapshot = dict(balances)
    with pytest.raises(FloorBreach) as caught:
        apply(balances, LIMITS, exchange_postings("joke", "marie", 180))
    assert "would take marie below their floor of -20 h 00 by 1 h 30" in str(caught.value)
    assert caught.value.account == "marie"
    assert caught.value.excess == 90
    assert balances == snapshot


def test_a_ceiling_breach_is_refused() -> None:
    with pytest.raises(CeilingBreach, match="above their ceiling of 15 h 00 by 0 h 10"):
        apply({"ahmed": 850, "marie": -850}, LIMITS, exchange_postings("ahmed", "marie", 60))


def test_a_member_outside_a_tightened_floor_can_still_pay_back() -> None:
    balances = {"lea": -300, "marie": 300}  # lea's floor was -60 when she went to -300
    after = apply(balances, LIMITS, exchange_postings("lea", "marie", 30))
    assert after == {"lea": -270, "marie": 270}
    with pytest.raises(FloorBreach):
        apply(balances, LIMITS, exchange_postings("marie", "lea", 1))


@pytest.mark.parametrize(
    ("postings", "error"),
    [
        ([Posting("marie", -10), Posting("ahmed", 9)], UnbalancedTransaction),
        ([Posting("marie", -10)], MalformedTransaction),
        ([], MalformedTransaction),
        ([Posting("marie", -10), Posting("marie", 10)], DuplicateAccount),
        ([Posting("marie", 0), Posting("ahmed", 0)], MalformedTransaction),
        ([Posting("marie", -10), Posting("ahmed", 10), Posting("lea", 0)], MalformedTransaction),
    ],
)
def test_malformed_transactions_are_refused(postings: list[Posting], error: type) -> None:
    with pytest.raises(error):
        Transaction(postings)


@pytest.mark.parametrize("amount", [1.5, 10.0, True, False, "10", None])
def test_amounts_are_ints_never_floats_or_bools(amount: object) -> None:
    with pytest.raises(AmountError):
        Posting("marie", amount)  # type: ignore[arg-type]
    with pytest.raises(AmountError):
        exchange_postings("ahmed", "marie", amount)  # type: ignore[arg-type]


def test_amount_errors_are_ledger_errors() -> None:
    assert issubclass(AmountError, LedgerError)


def test_an_unknown_account_is_refused() -> None:
    balances = {"marie": 0}
    with pytest.raises(UnknownAccount, match="'nobody'"):
        apply(balances, LIMITS, exchange_postings("nobody", "marie", 10))
    assert balances == {"marie": 0}


def test_apply_never_modifies_its_input() -> None:
    balances = {"marie": 0, "ahmed": 0}
    after = apply(balances, LIMITS, exchange_postings("ahmed", "marie", 10))
    assert balances == {"marie": 0, "ahmed": 0}
    assert after == {"marie": -10, "ahmed": 10}


@pytest.mark.parametrize(
    "terms", [{"floor": 10}, {"floor": -1.5}, {"ceiling": -1}, {"floor": True}]
)
def test_limits_are_checked(terms: dict[str, object]) -> None:
    with pytest.raises(LedgerError):
        Limits(**terms)  # type: ignore[arg-type]


# -- levy --------------------------------------------------------------------------------------


def test_the_provider_pays_the_levy_rounded_down() -> None:
    transaction = exchange_postings("ahmed", "marie", 90, levy_basis_points=250, commons_fund=FUND)
    # 2.5 % of 90 min is 2.25 min: 2 min to the fund, 88 to ahmed, marie pays exactly 90.
    assert transaction.postings == (
        Posting("marie", -90),
        Posting("ahmed", 88),
        Posting(FUND, 2),
    )


def test_a_levy_below_one_minute_leaves_the_fund_out() -> None:
    transaction = exchange_postings("ahmed", "marie", 30, levy_basis_points=300, commons_fund=FUND)
    assert transaction.postings == (Posting("marie", -30), Posting("ahmed", 30))


def test_a_levy_needs_a_fund_and_a_sane_rate() -> None:
    with pytest.raises(InvalidTerms):
        exchange_postings("ahmed", "marie", 600, levy_basis_points=100)
    with pytest.raises(InvalidTerms):
        exchange_postings("ahmed", "marie", 600, levy_basis_points=10_001, commons_fund=FUND)
    with pytest.raises(InvalidTerms):
        exchange_postings("ahmed", "marie", 600, levy_basis_points=-1, commons_fund=FUND)
    with pytest.raises(AmountError):
        exchange_postings("ahmed", "marie", 600, levy_basis_points=2.5, commons_fund=FUND)  # type: ignore[arg-type]


def test_exchange_needs_two_parties_and_a_positive_value() -> None:
    with pytest.raises(MalformedTransaction):
        exchange_postings("marie", "marie", 60)
    with pytest.raises(MalformedTransaction):
        exchange_postings("ahmed", "marie", 0)
    with pytest.raises(MalformedTransaction):
        exchange_postings("ahmed", "marie", -60)


def test_the_fund_as_a_party_gets_one_merged_posting() -> None:
    bought = exchange_postings("ahmed", FUND, 100, levy_basis_points=1000, commons_fund=FUND)
    assert bought.postings == (Posting(FUND, -90), Posting("ahmed", 90))
    sold = exchange_postings(FUND, "marie", 100, levy_basis_points=1000, commons_fund=FUND)
    assert sold.postings == (Posting("marie", -100), Posting(FUND, 100))


@given(
    minutes=st.integers(1, 10**9),
    rate=st.integers(0, 10_000),
)
def test_levy_is_exactly_the_floor_and_the_exchange_balances(minutes: int, rate: int) -> None:
    transaction = exchange_postings("ahmed", "marie", minutes, rate, commons_fund=FUND)
    amounts = {p.account: p.amount for p in transaction}
    assert sum(amounts.values()) == 0
    assert amounts["marie"] == -minutes
    levy = amounts.get(FUND, 0)
    assert levy == levy_for(minutes, rate)
    assert levy * 10_000 <= minutes * rate < (levy + 1) * 10_000
    assert amounts.get("ahmed", 0) == minutes - levy


# -- demurrage ---------------------------------------------------------------------------------


def test_demurrage_melts_above_the_threshold_rounded_down() -> None:
    balances = {"marie": 1000, "ahmed": 250, "joke": -1250, FUND: 0}
    postings = demurrage_postings(
        balances, rate_basis_points=100, threshold_minutes=240, commons_fund=FUND
    )
    # marie: 1 % of (1000 - 240) = 7.6 -> 7; ahmed: 1 % of 10 = 0.1 -> 0.
    assert postings == (Posting("marie", -7), Posting(FUND, 7))


def test_nothing_to_melt_gives_no_postings() -> None:
    assert demurrage_postings({"marie": 100, "joke": -100}, 500, 240, FUND) == ()


def test_the_funds_own_balance_never_melts() -> None:
    postings = demurrage_postings({FUND: 10_000, "marie": -10_000}, 500, 0, FUND)
    assert postings == ()


def test_demurrage_parameters_are_checked() -> None:
    with pytest.raises(InvalidTerms):
        demurrage_postings({"marie": 100}, 20_000, 0, FUND)
    with pytest.raises(InvalidTerms):
        demurrage_postings({"marie": 100}, 100, -1, FUND)
    with pytest.raises(AmountError):
        demurrage_postings({"marie": 100.0}, 100, 0, FUND)  # type: ignore[dict-item]


@given(
    balances=st.lists(st.integers(-(10**6), 10**6), min_size=1, max_size=8),
    rate=st.integers(0, 10_000),
    threshold=st.integers(0, 10**5),
)
def test_demurrage_balances_and_rounds_exactly(
    balances: list[int], rate: int, threshold: int
) -> None:
    ledger = {f"m{i}": b for i, b in enumerate(balances)}
    ledger[FUND] = -sum(balances)
    postings = demurrage_postings(ledger, rate, threshold, FUND)
    if not postings:
        return
    after = apply(ledger, {k: Limits(floor=-(10**7)) for k in ledger}, Transaction(postings))
    assert total(after) == 0
    for account, before in ledger.items():
        if account == FUND:
            continue
        melted = before - after[account]
        expected = max(before - threshold, 0) * rate // 10_000
        assert melted == expected
        assert after[account] >= min(before, threshold)


# -- any sequence of operations keeps every invariant -----------------------------------------


class LedgerMachine(RuleBasedStateMachine):
    """Exchanges and demurrage, valid or not, never break the ledger's invariants."""

    def __init__(self) -> None:
        super().__init__()
        self.balances: dict[str, int] = {name: 0 for name in LIMITS}

    @rule(
        provider=st.sampled_from([*MEMBERS, "gand", "stranger"]),
        beneficiary=st.sampled_from([*MEMBERS, "gand", "stranger"]),
        minutes=st.integers(1, 2000),
        rate=st.sampled_from([0, 0, 100, 250, 333]),
    )
    def exchange(self, provider: str, beneficiary: str, minutes: int, rate: int) -> None:
        before = dict(self.balances)
        try:
            transaction = exchange_postings(provider, beneficiary, minutes, rate, FUND)
            self.balances = apply(self.balances, LIMITS, transaction)
        except LedgerError:
            assert self.balances == before
            self.check_refusal_was_needed(provider, beneficiary, minutes, rate)

    def check_refusal_was_needed(
        self, provider: str, beneficiary: str, minutes: int, rate: int
    ) -> None:
        if provider == beneficiary or "stranger" in (provider, beneficiary):
            return
        levy = minutes * rate // 10_000
        trial = dict(self.balances)
        trial[beneficiary] -= minutes
        trial[provider] += minutes - levy
        trial[FUND] += levy
        assert not within_limits(trial)

    @rule(
        postings=st.lists(
            st.tuples(st.sampled_from([*LIMITS, "stranger"]), st.integers(-500, 500)),
            max_size=4,
        )
    )
    def arbitrary(self, postings: list[tuple[str, int]]) -> None:
        before = dict(self.balances)
        try:
            self.balances = apply(
                self.balances, LIMITS, Transaction(Posting(a, m) for a, m in postings)
            )
        except LedgerError:
            assert self.balances == before

    @rule(rate=st.integers(0, 10_000), threshold=st.integers(0, 600))
    def demurrage(self, rate: int, threshold: int) -> None:
        members = {name: self.balances[name] for name in MEMBERS}
        postings = demurrage_postings(members, rate, threshold, FUND)
        if postings:
            self.balances = apply(self.balances, LIMITS, Transaction(postings))

    @invariant()
    def tight(self) -> None:
        assert total(self.balances) == 0

    @invariant()
    def within_limits(self) -> None:
        assert within_limits(self.balances)


TestLedgerMachine = LedgerMachine.TestCase


# -- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("minutes", "text"),
    [(90, "1 h 30"), (-125, "-2 h 05"), (0, "0 h 00"), (-30, "-0 h 30"), (6000, "100 h 00")],
)
def test_format_minutes(minutes: int, text: str) -> None:
    assert format_minutes(minutes) == text


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("1h30", 90),
        ("1:30", 90),
        ("90min", 90),
        ("90 min", 90),
        ("1,5 h", 90),
        ("1.5h", 90),
        ("1 h 30", 90),
        ("1H30", 90),
        ("2h", 120),
        ("1u30", 90),
        ("2 uur", 120),
        ("1 heure", 60),
        ("0,25 h", 15),
        ("-2 h 05", -125),
        ("  1\u00a0h\u00a030 ", 90),
        ("1h30min", 90),
    ],
)
def test_parse_duration(text: str, minutes: int) -> None:
    assert parse_duration(text) == minutes


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("90", "no unit"),
        ("", "empty"),
        ("abc", "not a duration"),
        ("1h75", "below 60"),
        ("1:5", "not a duration"),
        ("1,33 h", "whole number of minutes"),
        ("1,5 h 10", "mixes"),
        ("1" * 50 + "h", "at most"),
    ],
)
def test_parse_duration_explains_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(DurationError, match=reason):
        parse_duration(text)


@given(st.integers(-(10**7), 10**7))
def test_format_then_parse_round_trips(minutes: int) -> None:
    assert parse_duration(format_minutes(minutes)) == minutes


# -- purity ------------------------------------------------------------------------------------


@pytest.mark.parametrize("module", [ledger_module, units_module])
def test_the_ledger_is_pure(module: object) -> None:
    tree = ast.parse(Path(module.__file__).read_text())  # type: ignore[attr-defined]
    roots: set[str] = set()
    for item in ast.walk(tree):
        if isinstance(item, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in item.names)
        elif isinstance(item, ast.ImportFrom) and item.module:
            roots.add(item.module.split(".")[0])
    assert roots <= {
        "__future__",
        "collections",
        "dataclasses",
        "enum",
        "fractions",
        "re",
        "typing",
        "node",
    }


# --- holds of settlements between chambers -----------------------------------------------


def test_pending_debits_count_against_the_floor() -> None:
    from node.clearing.ledger.rules import apply_with_holds

    limits = {"bob": Limits(floor=-600), "lille": Limits(floor=-600, kind=AccountKind.CHAMBER)}
    pay = exchange_postings("lille", "bob", 300)
    # Without holds, 5 h fits in a 10 h floor; with 6 h already promised elsewhere, it does not.
    assert apply_with_holds({"bob": 0}, {}, limits, pay)["bob"] == -300
    with pytest.raises(FloorBreach) as refused:
        apply_with_holds({"bob": 0}, {"bob": (-360, 0)}, limits, pay)
    assert refused.value.excess == 60
    # Pending credits do not help a debit: the settlement bringing them may still abort.
    with pytest.raises(FloorBreach):
        apply_with_holds({"bob": -400}, {"bob": (0, 600)}, limits, pay)


def test_pending_credits_count_against_the_ceiling() -> None:
    from node.clearing.ledger.rules import apply_with_holds

    limits = {"ana": Limits(floor=0, ceiling=600), "gand": Limits(floor=-6000)}
    earn = exchange_postings("ana", "gand", 300)
    assert apply_with_holds({"ana": 200}, {"ana": (-500, 0)}, limits, earn)["ana"] == 500
    with pytest.raises(CeilingBreach):
        apply_with_holds({"ana": 200}, {"ana": (0, 200)}, limits, earn)


def test_holds_are_not_posted_by_the_check() -> None:
    from node.clearing.ledger.rules import apply_with_holds

    limits = {"a": Limits(floor=-600), "b": Limits(floor=-600)}
    after = apply_with_holds(
        {"a": 10, "b": -10}, {"a": (-100, 50)}, limits, exchange_postings("a", "b", 30)
    )
    assert after == {"a": 40, "b": -40}
    assert sum(after.values()) == 0


def test_a_decided_transaction_posts_whatever_the_limits() -> None:
    from node.clearing.ledger.rules import apply_decided

    after = apply_decided({"gand": -590}, exchange_postings("lille", "gand", 60))
    assert after == {"gand": -650, "lille": 60}
    with pytest.raises(MalformedTransaction):
        apply_decided({}, [Posting("a", 1), Posting("b", -1)])  # type: ignore[arg-type]


@given(
    st.lists(st.integers(min_value=-600, max_value=600).filter(bool), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=600),
)
def test_holds_keep_the_floor_whatever_the_outcome(holds: list[int], amount: int) -> None:
    """If a debit passes counting every pending hold, it stays within the floor whichever of
    those holds are later posted or voided."""
    from itertools import combinations

    from node.clearing.ledger.rules import apply_with_holds

    limits = {"m": Limits(floor=-1000), "x": Limits(floor=-100_000)}
    pending = (sum(h for h in holds if h < 0), sum(h for h in holds if h > 0))
    try:
        after = apply_with_holds(
            {"m": 0}, {"m": pending}, limits, exchange_postings("x", "m", amount)
        )
    except FloorBreach:
        return
    for size in range(len(holds) + 1):
        for posted in combinations(holds, size):
            assert after["m"] + sum(posted) >= -1000
