"""Members of the chamber and their API tokens."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.activitypub.models import LocalActor
from node.db import Base, UTCDateTime, utcnow

__all__ = ["ApiToken", "Member", "MemberRole", "MemberStatus"]


class MemberStatus:
    PENDING = "pending"
    APPROVED = "approved"
    REFUSED = "refused"
    SUSPENDED = "suspended"
    ALL = (PENDING, APPROVED, REFUSED, SUSPENDED)


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

    actor: Mapped[LocalActor] = relationship(lazy="joined")

    @property
    def is_admin(self) -> bool:
        return self.role == MemberRole.ADMIN


class ApiToken(Base):
    """A bearer token for the JSON API. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
