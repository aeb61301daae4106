"""Tables of the clearing house: accounts, transactions and their entries, exchanges, events.

Accounts keep a stored ``balance``, changed only by the service in the same transaction that
writes the entries (one per posting, with ``balance_after``), so the history of an account
replays to its balance and the balances of a ledger sum to zero (étanchéité).

Exchange parties are actor URIs, so that an exchange with a member of another chamber fits the
same row (issue 7); ``*_member_id`` is set when the party is a member of this node.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow

__all__ = [
    "COMMONS_FUND_KEY",
    "ClearingAccount",
    "ClearingEntry",
    "ClearingEvent",
    "ClearingTransaction",
    "DeferredStep",
    "Exchange",
    "TransactionKind",
    "member_account_key",
    "partner_account_key",
]

COMMONS_FUND_KEY = "commons"


def member_account_key(member_id: int) -> str:
    return f"member:{member_id}"


def partner_account_key(chamber_actor_uri: str) -> str:
    return f"chamber:{chamber_actor_uri}"


class ClearingAccount(Base):
    """One account of the chamber's ledger: a member, the commons fund, or a partner chamber.

    ``floor``/``ceiling`` are an administrator's overrides; NULL means the chamber default.
    """

    __tablename__ = "clearing_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(2100), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # ledger.AccountKind
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="RESTRICT"), nullable=True, unique=True
    )
    partner_actor_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    floor: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ceiling: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TransactionKind:
    EXCHANGE = "exchange"
    DEMURRAGE = "demurrage"
    ROUND = "round"
    ALL = (EXCHANGE, DEMURRAGE, ROUND)


class ClearingTransaction(Base):
    """One balanced transaction; ``period`` makes a periodic one (demurrage) happen once.

    ``reference`` names what both chambers post for a trade between them (a settlement's or a
    clearing round's URI): reconciliation matches the two ledgers' mirror entries by it.
    """

    __tablename__ = "clearing_transactions"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    exchange_id: Mapped[int | None] = mapped_column(
        ForeignKey("clearing_exchanges.id", ondelete="RESTRICT"), nullable=True, unique=True
    )
    period: Mapped[str | None] = mapped_column(String(64), nullable=True, unique=True)
    reference: Mapped[str | None] = mapped_column(String(2048), nullable=True, unique=True)
    memo: Mapped[str] = mapped_column(Text, default="")
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ClearingEntry(Base):
    """One posting of a transaction to one account, and the account's balance after it."""

    __tablename__ = "clearing_entries"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        Index("ix_clearing_entries_account", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("clearing_transactions.id", ondelete="RESTRICT"), index=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("clearing_accounts.id", ondelete="RESTRICT"))
    amount: Mapped[int] = mapped_column(Integer)
    balance_after: Mapped[int] = mapped_column(Integer)
    posted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Exchange(Base):
    """A declared exchange: "provider did this for beneficiary, worth ``minutes``"."""

    __tablename__ = "clearing_exchanges"
    __table_args__ = (
        CheckConstraint("minutes > 0", name="positive"),
        UniqueConstraint("initiator_member_id", "idempotency_key"),
        Index("ix_clearing_exchanges_state_expires", "state", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    provider_uri: Mapped[str] = mapped_column(String(2048))
    beneficiary_uri: Mapped[str] = mapped_column(String(2048))
    provider_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    beneficiary_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    initiator: Mapped[str] = mapped_column(String(16))  # states.Role
    initiator_member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="RESTRICT"), nullable=True
    )
    minutes: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    performed_on: Mapped[date] = mapped_column(Date)
    bricks: Mapped[list[str]] = mapped_column(JSON, default=list)
    state: Mapped[str] = mapped_column(String(16))  # states.ExchangeState
    comment: Mapped[str] = mapped_column(Text, default="")
    version: Mapped[int] = mapped_column(Integer, default=1)
    #: The activity (Offer or Update) that the counterparty answers now.
    proposal_activity_id: Mapped[str] = mapped_column(String(2048), default="")
    idempotency_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    request_fingerprint: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    posted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The offer or need (its ActivityPub id, ``node.offers``) this exchange answers.
    offer_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)

    @property
    def initiator_uri(self) -> str:
        """The actor of the member who declared it (``initiator`` is their role)."""
        return self.provider_uri if self.initiator == "provider" else self.beneficiary_uri


class ClearingEvent(Base):
    """One state change of an exchange and the signed activity that says it (``activities``)."""

    __tablename__ = "clearing_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    exchange_id: Mapped[int] = mapped_column(
        ForeignKey("clearing_exchanges.id", ondelete="RESTRICT"), index=True
    )
    event: Mapped[str] = mapped_column(String(16))  # "declare" or a states.ExchangeEvent
    state_after: Mapped[str] = mapped_column(String(16))
    actor_uri: Mapped[str] = mapped_column(String(2048))
    activity_id: Mapped[str] = mapped_column(String(2048), unique=True)
    activity_pk: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="RESTRICT"), unique=True
    )
    comment: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class DeferredStep(Base):
    """A step of the declaring side received while our copy was settling (an amendment, a
    withdrawal, an expiry): kept until the settlement's decision, then applied or dropped
    (`node.clearing.exchanges.copies`)."""

    __tablename__ = "clearing_deferred_steps"

    id: Mapped[int] = mapped_column(primary_key=True)
    exchange_id: Mapped[int] = mapped_column(
        ForeignKey("clearing_exchanges.id", ondelete="CASCADE"), index=True
    )
    activity_pk: Mapped[int] = mapped_column(
        ForeignKey("activities.id", ondelete="CASCADE"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
