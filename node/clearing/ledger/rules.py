"""The double-entry core of the clearing house: postings, transactions and their rules.

Pure functions over balances and limits; the service loads balances, calls `apply` and saves the
result inside one database transaction. Nothing here does I/O or reads a clock.

Amounts are ``int`` minutes of the hour unit (see `node.clearing.units`). A `Transaction` is two
or more `Posting`s, one per account, no zero amount, summing to zero: units are never created or
lost (*étanchéité*), so a ledger whose accounts all opened at zero always sums to zero.

Sign convention: a positive balance is what the chamber owes the account holder (they gave more
than they received); a credit is a positive posting, a debit a negative one.

Limits (`Limits`): every account has a ``floor`` (its overdraft limit, ``<= 0``) and an optional
``ceiling``. `apply` refuses a posting that *moves a balance the wrong way past a limit*: a debit
ending below the floor, a credit ending above the ceiling. A posting that moves a balance back
towards its limits is always accepted, even if the account is still outside them (after an
administrator tightens a floor, say), so that a member can always pay back.

Levy (`exchange_postings`): **the provider pays it.** The beneficiary is debited exactly the value
they validated; the provider is credited that value minus the levy, which goes to the commons fund.
The levy is ``minutes * basis_points // 10_000``: rounded *down* to a whole minute, so a chamber
never takes more than its announced rate; the posting balances exactly whatever the rounding.

Demurrage, *fonte* (`demurrage_postings`): for one period, each account above the threshold loses
``(balance - threshold) * basis_points // 10_000`` minutes (rounded down), credited to the commons
fund. Melting never takes a balance below the threshold, hence never below zero or a floor.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum

from node.clearing.units import AmountError, LedgerError, format_minutes, require_minutes

__all__ = [
    "BASIS_POINTS",
    "AccountKind",
    "AmountError",
    "CeilingBreach",
    "DuplicateAccount",
    "FloorBreach",
    "InvalidTerms",
    "LedgerError",
    "Limits",
    "LimitBreach",
    "MalformedTransaction",
    "Posting",
    "Transaction",
    "UnbalancedTransaction",
    "UnknownAccount",
    "apply",
    "apply_decided",
    "apply_with_holds",
    "demurrage_postings",
    "exchange_postings",
    "levy_for",
    "total",
]

BASIS_POINTS = 10_000
"""100 % in basis points: a rate of 250 is 2.5 %."""


class AccountKind(StrEnum):
    """Who holds an account in a chamber's ledger."""

    MEMBER = "member"
    COMMONS_FUND = "commons_fund"
    CHAMBER = "chamber"
    """The mirror account of a partner chamber (Gand's account in Lille's ledger)."""


class MalformedTransaction(LedgerError):
    """The transaction is not a valid double entry (too few postings, zero amount...)."""


class UnbalancedTransaction(MalformedTransaction):
    """The postings do not sum to zero."""

    def __init__(self, imbalance: int) -> None:
        self.imbalance = imbalance
        super().__init__(
            f"the postings sum to {format_minutes(imbalance)} instead of 0 h 00: "
            "every minute credited must be debited somewhere"
        )


class DuplicateAccount(MalformedTransaction):
    """An account appears in more than one posting of a transaction."""

    def __init__(self, account: str) -> None:
        self.account = account
        super().__init__(f"{account} appears in more than one posting; merge them into one")


class UnknownAccount(LedgerError):
    """A posting names an account the ledger does not have."""

    def __init__(self, account: str) -> None:
        self.account = account
        super().__init__(f"there is no account {account!r} in this ledger")


class InvalidTerms(LedgerError, ValueError):
    """A rate, threshold or limit is out of range (rates are 0..10 000 basis points)."""


class LimitBreach(LedgerError):
    """A posting would take an account past one of its limits."""

    def __init__(self, account: str, balance: int, amount: int, limit: int, excess: int) -> None:
        self.account = account
        self.balance = balance
        self.amount = amount
        self.limit = limit
        self.excess = excess
        super().__init__(self._describe())

    def _describe(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class FloorBreach(LimitBreach):
    """A debit would take an account below its floor (its overdraft limit)."""

    def _describe(self) -> str:
        return (
            f"would take {self.account} below their floor of {format_minutes(self.limit)} "
            f"by {format_minutes(self.excess)} (balance {format_minutes(self.balance)}, "
            f"debit {format_minutes(-self.amount)})"
        )


class CeilingBreach(LimitBreach):
    """A credit would take an account above its ceiling."""

    def _describe(self) -> str:
        return (
            f"would take {self.account} above their ceiling of {format_minutes(self.limit)} "
            f"by {format_minutes(self.excess)} (balance {format_minutes(self.balance)}, "
            f"credit {format_minutes(self.amount)})"
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """An account's terms: its kind, its floor (``<= 0``) and its optional ceiling (``>= 0``)."""

    floor: int = 0
    ceiling: int | None = None
    kind: AccountKind = AccountKind.MEMBER

    def __post_init__(self) -> None:
        require_minutes(self.floor, "floor")
        if self.floor > 0:
            raise InvalidTerms(f"a floor is an overdraft limit, at most 0 h 00; got {self.floor}")
        if self.ceiling is not None:
            require_minutes(self.ceiling, "ceiling")
            if self.ceiling < 0:
                raise InvalidTerms(f"a ceiling is at least 0 h 00; got {self.ceiling}")
        if not isinstance(self.kind, AccountKind):
            raise InvalidTerms(f"unknown account kind {self.kind!r}")


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of a transaction: ``amount`` minutes credited (> 0) or debited (< 0)."""

    account: str
    amount: int

    def __post_init__(self) -> None:
        if not isinstance(self.account, str) or not self.account:
            raise MalformedTransaction(
                f"an account key is a non-empty string, got {self.account!r}"
            )
        require_minutes(self.amount, f"the amount posted to {self.account}")


@dataclass(frozen=True, slots=True, init=False)
class Transaction:
    """Two or more postings, one per account, none zero, summing to zero (checked on creation)."""

    postings: tuple[Posting, ...]

    def __init__(self, postings: Iterable[Posting]) -> None:
        object.__setattr__(self, "postings", tuple(postings))
        _check(self.postings)

    def __iter__(self) -> Iterator[Posting]:
        return iter(self.postings)

    @property
    def volume(self) -> int:
        """The minutes that changed hands: the sum of the credits."""
        return sum(p.amount for p in self.postings if p.amount > 0)


def _check(postings: tuple[Posting, ...]) -> None:
    for posting in postings:
        if not isinstance(posting, Posting):
            raise MalformedTransaction(f"a transaction holds Postings, got {posting!r}")
    if len(postings) < 2:
        raise MalformedTransaction(
            f"a transaction needs at least two postings (a debit and a credit), got {len(postings)}"
        )
    seen: set[str] = set()
    for posting in postings:
        if posting.amount == 0:
            raise MalformedTransaction(f"the posting to {posting.account} is zero; leave it out")
        if posting.account in seen:
            raise DuplicateAccount(posting.account)
        seen.add(posting.account)
    imbalance = sum(p.amount for p in postings)
    if imbalance != 0:
        raise UnbalancedTransaction(imbalance)


def total(balances: Mapping[str, int]) -> int:
    """The sum of the balances: 0 for a whole ledger, always (étanchéité)."""
    return sum(require_minutes(b, f"the balance of {k}") for k, b in balances.items())


def apply(
    balances: Mapping[str, int], limits: Mapping[str, Limits], transaction: Transaction
) -> dict[str, int]:
    """Return the balances after ``transaction``, or raise a `LedgerError` and change nothing.

    ``limits`` lists the accounts of the ledger; an account in ``limits`` but missing from
    ``balances`` is at zero (accounts open at zero). The input mapping is never modified.
    """
    if not isinstance(transaction, Transaction):
        raise MalformedTransaction(f"apply takes a Transaction, got {type(transaction).__name__}")
    _check(transaction.postings)
    updated = dict(balances)
    for posting in transaction.postings:
        terms = limits.get(posting.account)
        if terms is None:
            raise UnknownAccount(posting.account)
        before = require_minutes(updated.get(posting.account, 0), f"balance of {posting.account}")
        after = before + posting.amount
        if posting.amount < 0 and after < terms.floor:
            raise FloorBreach(
                posting.account, before, posting.amount, terms.floor, terms.floor - after
            )
        if posting.amount > 0 and terms.ceiling is not None and after > terms.ceiling:
            raise CeilingBreach(
                posting.account, before, posting.amount, terms.ceiling, after - terms.ceiling
            )
        updated[posting.account] = after
    return updated


def apply_with_holds(
    balances: Mapping[str, int],
    holds: Mapping[str, tuple[int, int]],
    limits: Mapping[str, Limits],
    transaction: Transaction,
) -> dict[str, int]:
    """`apply`, counting the holds of settlements still pending as if they were posted.

    ``holds`` maps an account to its pending ``(debits, credits)`` (debits <= 0 <= credits).
    A debit is checked against the floor as if every pending debit of its account were already
    posted, a credit against the ceiling as if every pending credit were: whatever the pending
    settlements become, the limits hold. Returns the balances after ``transaction`` alone.
    """
    worst = dict(balances)
    for posting in transaction.postings:
        debits, credits = holds.get(posting.account, (0, 0))
        worst[posting.account] = worst.get(posting.account, 0) + (
            debits if posting.amount < 0 else credits
        )
    apply(worst, limits, transaction)
    return apply_decided(balances, transaction)


def apply_decided(balances: Mapping[str, int], transaction: Transaction) -> dict[str, int]:
    """The balances after a transaction already agreed elsewhere, whatever the limits.

    For postings decided by a protocol between chambers (a settlement's commit, a clearing
    round): the limits were checked when it was prepared; refusing now would break the
    agreement of the other ledgers. The transaction must still be a valid double entry.
    """
    if not isinstance(transaction, Transaction):
        raise MalformedTransaction(f"apply takes a Transaction, got {type(transaction).__name__}")
    _check(transaction.postings)
    updated = dict(balances)
    for posting in transaction.postings:
        before = require_minutes(updated.get(posting.account, 0), f"balance of {posting.account}")
        updated[posting.account] = before + posting.amount
    return updated


def _rate(basis_points: int, what: str) -> int:
    require_minutes(basis_points, what)
    if not 0 <= basis_points <= BASIS_POINTS:
        raise InvalidTerms(f"{what} must be between 0 and {BASIS_POINTS} basis points (0-100 %)")
    return basis_points


def levy_for(minutes: int, levy_basis_points: int) -> int:
    """The levy on an exchange of ``minutes``: ``minutes * bp // 10_000`` (rounded down)."""
    require_minutes(minutes, "the value of the exchange")
    return minutes * _rate(levy_basis_points, "the levy") // BASIS_POINTS


def _merge(lines: Iterable[tuple[str, int]]) -> tuple[Posting, ...]:
    """One posting per account, zeros dropped, first-seen order kept."""
    sums: dict[str, int] = {}
    for account, amount in lines:
        sums[account] = sums.get(account, 0) + amount
    return tuple(Posting(account, amount) for account, amount in sums.items() if amount != 0)


def exchange_postings(
    provider: str,
    beneficiary: str,
    minutes: int,
    levy_basis_points: int = 0,
    commons_fund: str | None = None,
) -> Transaction:
    """The transaction for "``provider`` did ``minutes`` of work for ``beneficiary``".

    The beneficiary is debited ``minutes``; the provider is credited ``minutes - levy``; the
    commons fund is credited the levy (`levy_for`, rounded down). When the commons fund is itself
    a party, its two lines are merged into one.
    """
    require_minutes(minutes, "the value of the exchange")
    if minutes <= 0:
        raise MalformedTransaction(
            f"the value of an exchange is positive, got {format_minutes(minutes)}"
        )
    if provider == beneficiary:
        raise MalformedTransaction(f"{provider} cannot exchange with themselves")
    levy = levy_for(minutes, levy_basis_points)
    if levy and commons_fund is None:
        raise InvalidTerms("a levy needs a commons fund account to credit")
    lines = [(beneficiary, -minutes), (provider, minutes - levy)]
    if levy:
        assert commons_fund is not None
        lines.append((commons_fund, levy))
    return Transaction(_merge(lines))


def demurrage_postings(
    balances: Mapping[str, int],
    rate_basis_points: int,
    threshold_minutes: int,
    commons_fund: str,
) -> tuple[Posting, ...]:
    """One period of *fonte*: what melts from each balance above the threshold, to the fund.

    Each account with ``balance > threshold`` loses ``(balance - threshold) * rate // 10_000``
    (rounded down); the commons fund is credited the sum. The fund's own balance never melts:
    leave out of ``balances`` any other account that should not melt (partner chambers, say).
    Returns ``()`` when nothing melts, else postings ready for ``Transaction(...)`` (sorted by
    account, the fund last).
    """
    rate = _rate(rate_basis_points, "the demurrage rate")
    require_minutes(threshold_minutes, "the demurrage threshold")
    if threshold_minutes < 0:
        raise InvalidTerms("the demurrage threshold is at least 0 h 00: only savings melt")
    lines: list[Posting] = []
    for account in sorted(balances):
        balance = require_minutes(balances[account], f"the balance of {account}")
        if account == commons_fund or balance <= threshold_minutes:
            continue
        melt = (balance - threshold_minutes) * rate // BASIS_POINTS
        if melt:
            lines.append(Posting(account, -melt))
    if not lines:
        return ()
    lines.append(Posting(commons_fund, -sum(p.amount for p in lines)))
    return tuple(lines)
