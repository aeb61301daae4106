"""Members of the chamber and their API tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.activitypub.models import LocalActor
from node.db import Base, UTCDateTime, utcnow
from node.process import State, StateGraph

__all__ = [
    "AccountToken",
    "AccountTokenPurpose",
    "ApiToken",
    "AuditEntry",
    "Charter",
    "ClearingOverride",
    "ClearingRuleRecord",
    "LoginThrottle",
    "Member",
    "MemberRole",
    "MemberStates",
    "MemberStatus",
    "Notification",
    "TokenState",
    "member_subject",
]


class MemberStates(StateGraph):
    """A member's standing: a registration waits for the administrators (or the operator
    creates an approved member); a refused one may still be approved, a suspended one
    reinstated. Membership has no end here (a member who leaves is deleted)."""

    recurs = True
    attribute = "status"

    pending = State(initial=True)
    approved = State(initial=True)
    refused = State()
    suspended = State()

    pending.transitions_to(approved, refused)
    refused.transitions_to(approved)
    approved.transitions_to(suspended)
    suspended.transitions_to(approved)


class MemberStatus:
    PENDING = MemberStates.pending.name
    APPROVED = MemberStates.approved.name
    REFUSED = MemberStates.refused.name
    SUSPENDED = MemberStates.suspended.name
    ALL = (PENDING, APPROVED, REFUSED, SUSPENDED)
    NEW = (PENDING, APPROVED)
    """What a member may be created as."""


def member_subject(member: Member) -> str:
    """The process key of a member's standing: the username (as in the audit log)."""
    return member.username


class MemberRole:
    MEMBER = "member"
    ADMIN = "admin"
    ALL = (MEMBER, ADMIN)


class Member(Base):
    __tablename__ = "members"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(30), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    bio: Mapped[str] = mapped_column(Text, default="")
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.PENDING, index=True)
    role: Mapped[str] = mapped_column(String(16), default=MemberRole.MEMBER)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("local_actors.id"), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_active_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: The charter version accepted at registration (``Charter.version``).
    charter_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: Why the member was refused or suspended, shown to them.
    status_reason: Mapped[str] = mapped_column(Text, default="")
    avatar_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    #: An administrator's decision on clearing access (``ClearingOverride``), None: the rule.
    clearing_override: Mapped[str | None] = mapped_column(String(8), nullable=True)
    clearing_override_reason: Mapped[str] = mapped_column(Text, default="")
    #: The member's address; mail goes to it only once verified (except the verification).
    email: Mapped[str | None] = mapped_column(String(320), nullable=True, index=True)
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Notification types the member gets no email for (``node.members.notifications``).
    email_off: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Whether the member appears in the chamber's directory (off until they choose it).
    directory_listed: Mapped[bool] = mapped_column(Boolean, default=False)

    actor: Mapped[LocalActor] = relationship(lazy="joined")

    @property
    def is_admin(self) -> bool:
        return self.role == MemberRole.ADMIN


class TokenState:
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ApiToken(Base):
    """A named bearer token for the JSON API. Only its SHA-256 is stored. A revoked token
    stays listed (with ``revoked_at``) and never works again; its name is free again."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        # One name per member among the tokens not revoked (a partial unique index).
        Index(
            "uq_api_tokens_member_id_name_unrevoked",
            "member_id",
            "name",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: None: never expires.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return TokenState.REVOKED
        if self.expires_at is not None and self.expires_at <= now:
            return TokenState.EXPIRED
        return TokenState.ACTIVE


class ClearingOverride:
    GRANTED = "granted"
    REVOKED = "revoked"
    ALL = (GRANTED, REVOKED)


class ClearingRuleRecord(Base):
    """The clearing-access rule as an administrator set it from /admin; the newest row is in
    force (none: the ``clearing_min_*`` settings)."""

    __tablename__ = "clearing_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    min_bricks: Mapped[int] = mapped_column(Integer)
    min_days: Mapped[int] = mapped_column(Integer)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    set_by: Mapped[str] = mapped_column(String(64), default="")


class Charter(Base):
    """One version of the chamber's charter; the highest version is in force."""

    __tablename__ = "charters"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")


class AuditEntry(Base):
    """An administrative action: who, when, what (action + target) and why."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    #: The administrator's username, or ``operator`` for the server's command line.
    by: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(2048), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class LoginThrottle(Base):
    """Sign-in attempts counted under one key (``pair:``, ``addr:`` or ``user:``), for the
    rules of ``node.members.throttle``; rows whose window is over are removed as we go."""

    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    not_before: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccountTokenPurpose:
    RESET = "reset"
    VERIFY = "verify"
    ALL = (RESET, VERIFY)


class AccountToken(Base):
    """A single-use link sent to a member (password reset, address check). Only the token's
    SHA-256 is stored; ``used_at`` is set when it is consumed."""

    __tablename__ = "account_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    #: The address being verified (purpose ``verify``).
    email: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Notification(Base):
    """Something a member should know: a type and its parameters (rendered in the reader's
    language when shown), a link, and whether it was read."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_member_read", "member_id", "read_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    url: Mapped[str] = mapped_column(String(2048), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
