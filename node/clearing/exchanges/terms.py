"""What the clearing house's services share: the chamber's terms, the errors they raise and
the small views they return (`node.clearing.exchanges.house` re-exports them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from node.clearing.ledger.models import (
    ClearingAccount,
)
from node.clearing.ledger.rules import AccountKind, Limits
from node.clearing.units import MAX_BRICKS, MAX_DESCRIPTION, MAX_MINUTES, ClearingError
from node.config import Settings

__all__ = [
    "DEMURRAGE_JOB",
    "EXPIRE_JOB",
    "MAX_BRICKS",
    "MAX_DESCRIPTION",
    "MAX_MINUTES",
    "AccountView",
    "ChamberUnreachable",
    "ClearingTerms",
    "CrossChamberUnavailable",
    "ExchangeNotFound",
    "IdempotencyConflict",
    "InvalidExchange",
    "NoPartnership",
    "NotAParty",
    "RemoteParty",
    "Summary",
]

EXPIRE_JOB = "clearing.expire"
DEMURRAGE_JOB = "clearing.demurrage"


class ExchangeNotFound(ClearingError):
    pass


class NotAParty(ClearingError):
    """The member is neither the provider nor the beneficiary of this exchange."""


class ChamberUnreachable(ClearingError):
    """The other member's chamber cannot be reached now: the same request may succeed later
    (HTTP 503 with ``Retry-After``), unlike a handle that does not exist (422)."""

    retry_after = 60

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class CrossChamberUnavailable(ClearingError):
    """The party is on another chamber: `ClearingHouse.resolve_counterparty` resolves it."""

    def __init__(self, who: str) -> None:
        self.who = who
        super().__init__(f"{who} is on another chamber")


@dataclass(frozen=True)
class RemoteParty:
    """A member of a partner chamber, as this node knows them."""

    actor_uri: str
    inbox: str
    chamber_uri: str
    name: str = ""


class InvalidExchange(ClearingError):
    """A field of a declaration is wrong; ``field`` names it."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class NoPartnership(InvalidExchange):
    """The other member's chamber is not a partner both ways: not ours (``ours`` False), or it
    has not added us (yet)."""

    def __init__(self, host: str, *, ours: bool) -> None:
        self.host = host
        self.ours = ours
        if ours:
            message = (
                f"{host} has not added this chamber as a partner (yet): its members and ours "
                "can trade once both chambers have added each other"
            )
        else:
            message = (
                f"{host} is not a partner chamber of this chamber: "
                "its administrators and ours must first open credit lines to each other"
            )
        super().__init__("counterparty", message)


class IdempotencyConflict(ClearingError):
    def __init__(self) -> None:
        super().__init__(
            "this Idempotency-Key was already used for a different declaration: "
            "use a new key for a new exchange"
        )


@dataclass(frozen=True)
class ClearingTerms:
    """The chamber's rules for its ledger (from the settings)."""

    default_floor: int = -20 * 60
    default_ceiling: int | None = None
    levy_basis_points: int = 0
    demurrage_basis_points: int = 0
    demurrage_threshold: int = 0
    demurrage_period: timedelta = timedelta(days=30)
    declaration_expiry: timedelta = timedelta(days=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClearingTerms:
        ceiling = settings.clearing_default_ceiling_minutes
        return cls(
            default_floor=settings.clearing_default_floor_minutes,
            default_ceiling=None if ceiling < 0 else ceiling,
            levy_basis_points=settings.clearing_levy_basis_points,
            demurrage_basis_points=settings.clearing_demurrage_basis_points,
            demurrage_threshold=settings.clearing_demurrage_threshold_minutes,
            demurrage_period=timedelta(days=settings.clearing_demurrage_period_days),
            declaration_expiry=timedelta(days=settings.clearing_declaration_expiry_days),
        )

    def limits_of(self, account: ClearingAccount) -> Limits:
        kind = AccountKind(account.kind)
        if kind == AccountKind.MEMBER:
            floor, ceiling = self.default_floor, self.default_ceiling
        else:
            floor, ceiling = 0, None
        return Limits(
            floor=account.floor if account.floor is not None else floor,
            ceiling=account.ceiling if account.ceiling is not None else ceiling,
            kind=kind,
        )


@dataclass(frozen=True)
class AccountView:
    account: ClearingAccount | None
    balance: int
    limits: Limits


@dataclass(frozen=True)
class Summary:
    accounts: int
    sum_minutes: int
    exchanges_posted: int
    volume_minutes: int
