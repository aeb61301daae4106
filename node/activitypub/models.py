"""Tables of the protocol layer. They know actors and keys, not members, bricks or ledgers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow
from node.process import State, StateGraph

__all__ = [
    "Delivery",
    "DomainBlock",
    "FeaturedObject",
    "Follow",
    "FollowState",
    "FollowStates",
    "HostHealth",
    "LocalActor",
    "RemoteActor",
    "StoredActivity",
    "follow_subject",
]


class LocalActor(Base):
    """An actor hosted on this node: the chamber (``Group``) or a member (``Person``).

    Private keys are sealed with the node secret (``node.secretbox``) and never served.
    """

    __tablename__ = "local_actors"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    actor_type: Mapped[str] = mapped_column(String(16))
    manually_approves_followers: Mapped[bool] = mapped_column(Boolean, default=False)
    rsa_public_pem: Mapped[str] = mapped_column(Text)
    rsa_private_sealed: Mapped[str] = mapped_column(Text)
    ed25519_public_multibase: Mapped[str] = mapped_column(String(64))
    ed25519_private_sealed: Mapped[str] = mapped_column(Text)
    #: ``icon`` and ``image`` (header) of the document, when the owner set them.
    icon_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    image_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RemoteActor(Base):
    """A cached remote actor document, refreshed when it expires or its key fails."""

    __tablename__ = "remote_actors"

    id: Mapped[int] = mapped_column(primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    host: Mapped[str] = mapped_column(String(255), index=True)
    inbox: Mapped[str] = mapped_column(String(2048))
    shared_inbox: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    rsa_key_id: Mapped[str | None] = mapped_column(String(2048), nullable=True, index=True)
    rsa_public_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    fetched_at: Mapped[datetime] = mapped_column(UTCDateTime)
    gone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Follow(Base):
    """``follower_uri`` follows ``followee_uri``; either side may be local or remote."""

    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("follower_uri", "followee_uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    follower_uri: Mapped[str] = mapped_column(String(2048), index=True)
    followee_uri: Mapped[str] = mapped_column(String(2048), index=True)
    follow_activity_id: Mapped[str] = mapped_column(String(2048))
    state: Mapped[str] = mapped_column(String(16))  # FollowState
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FollowStates(StateGraph):
    """A follow waits for the followee's answer; a rejected one may be asked again (an
    Undo, a Reject or an unfollow deletes the row instead)."""

    pending = State(initial=True)
    accepted = State(final=True)
    rejected = State()

    pending.transitions_to(accepted, rejected)
    rejected.transitions_to(pending)


class FollowState:
    PENDING = FollowStates.pending.name
    ACCEPTED = FollowStates.accepted.name
    REJECTED = FollowStates.rejected.name


def follow_subject(follow: Follow) -> str:
    """The process key of a follow: its two actors (its activity id changes when asked again)."""
    return f"{follow.follower_uri} {follow.followee_uri}"


class StoredActivity(Base):
    """Every activity we sent (our outbox) or accepted into an inbox, by its id.

    The unique ``activity_id`` is what makes inbox processing idempotent.
    """

    __tablename__ = "activities"

    id: Mapped[int] = mapped_column(primary_key=True)
    activity_id: Mapped[str] = mapped_column(String(2048), unique=True)
    direction: Mapped[str] = mapped_column(String(8))  # "in" | "out"
    actor_uri: Mapped[str] = mapped_column(String(2048), index=True)
    activity_type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str | None] = mapped_column(String(2048), nullable=True, index=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class DomainBlock(Base):
    """A remote host the administrators blocked: nothing in, nothing out."""

    __tablename__ = "domain_blocks"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class HostHealth(Base):
    """Delivery health of a remote host: consecutive failures pause it instead of hammering."""

    __tablename__ = "host_health"

    host: Mapped[str] = mapped_column(String(255), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str] = mapped_column(Text, default="")


class Delivery(Base):
    """An inbox that received an object we sent (in a ``Create`` or an ``Announce``): its
    ``Update`` and ``Delete`` go to the same inboxes. Shared inboxes stand for their hosts."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("object_id", "inbox"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    object_id: Mapped[str] = mapped_column(String(2048), index=True)
    inbox: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class FeaturedObject(Base):
    """An object a local actor pins on its profile (its ``featured`` collection)."""

    __tablename__ = "featured_objects"
    __table_args__ = (UniqueConstraint("actor_uri", "object_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_uri: Mapped[str] = mapped_column(String(2048), index=True)
    object_id: Mapped[str] = mapped_column(String(2048))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
