"""Tables of the commons bank: bricks (local and federated), their authors, tags, versions,
reviews (local reviews, fediverse replies) and likes.

Full-text search objects (the SQLite FTS5 table ``bricks_fts`` and its triggers, the
PostgreSQL ``bricks.search_vector`` column and its GIN index) are created by migration
``0004`` and are deliberately not part of ``Base.metadata`` (see ``node.migrate``
``include_object``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from node.db import Base, UTCDateTime, utcnow

__all__ = ["Brick", "BrickAuthor", "BrickLike", "BrickReview", "BrickTag", "BrickVersion"]


class Brick(Base):
    """One contribution to the commons. ``uri`` is its ActivityPub id; ``key`` its local
    handle in URLs (``/bricks/<key>``) for local and remote bricks alike."""

    __tablename__ = "bricks"
    __table_args__ = (
        Index("ix_bricks_local_id", "local", "id"),
        Index("ix_bricks_category_id", "category", "id"),
        Index("ix_bricks_host_id", "host", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    #: host of the chamber the brick comes from (only that origin may update or delete it)
    host: Mapped[str] = mapped_column(String(255))
    chamber_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    title: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    body_markdown: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    #: plain text of the body, what full-text search indexes
    body_text: Mapped[str] = mapped_column(Text, default="")
    tags_text: Mapped[str] = mapped_column(Text, default="")
    #: [{"href", "name"}] links given by the authors
    links: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    #: [{"href", "name", "mediaType", "size", "sha256"?}] attached files
    files: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    licence: Mapped[str] = mapped_column(String(255))
    version: Mapped[int] = mapped_column(Integer, default=1)
    rating_sum: Mapped[int] = mapped_column(Integer, default=0)
    rating_count: Mapped[int] = mapped_column(Integer, default=0)
    like_count: Mapped[int] = mapped_column(Integer, default=0)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    authors: Mapped[list[BrickAuthor]] = relationship(
        order_by="BrickAuthor.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )
    tags: Mapped[list[BrickTag]] = relationship(
        order_by="BrickTag.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
        lazy="selectin",
    )

    @property
    def rating_average(self) -> float | None:
        return round(self.rating_sum / self.rating_count, 2) if self.rating_count else None

    @property
    def tag_names(self) -> list[str]:
        return [t.name for t in self.tags]


class BrickAuthor(Base):
    """An author: a local member (``member_id``) or a remote actor (``actor_uri`` only)."""

    __tablename__ = "brick_authors"
    __table_args__ = (UniqueConstraint("brick_id", "actor_uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    brick_id: Mapped[int] = mapped_column(ForeignKey("bricks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    actor_uri: Mapped[str] = mapped_column(String(2048), index=True)
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    profile_url: Mapped[str] = mapped_column(String(2048))


class BrickTag(Base):
    __tablename__ = "brick_tags"
    __table_args__ = (
        UniqueConstraint("brick_id", "name"),
        Index("ix_brick_tags_name_brick", "name", "brick_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    brick_id: Mapped[int] = mapped_column(ForeignKey("bricks.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)
    name: Mapped[str] = mapped_column(String(64))


class BrickVersion(Base):
    """Every edit of a local brick: who changed what, with a snapshot of the fields."""

    __tablename__ = "brick_versions"
    __table_args__ = (UniqueConstraint("brick_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    brick_id: Mapped[int] = mapped_column(ForeignKey("bricks.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    editor_uri: Mapped[str] = mapped_column(String(2048))
    editor_name: Mapped[str] = mapped_column(String(200))
    changed: Mapped[list[str]] = mapped_column(JSON, default=list)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BrickReview(Base):
    """A comment on a brick, with an optional rating (1 to 5) and "I used this brick"; one
    per author (local member or remote actor) and brick.

    Local reviews are ours (``uri`` under ``/bricks/<key>/reviews/<key>``); replies from the
    fediverse (a ``Note`` with ``inReplyTo`` the brick) are stored with their own id.
    """

    __tablename__ = "brick_reviews"
    #: One review, so one rating, per author and brick: reviewing again replaces it.
    __table_args__ = (UniqueConstraint("brick_id", "author_uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    brick_id: Mapped[int] = mapped_column(ForeignKey("bricks.id", ondelete="CASCADE"), index=True)
    author_uri: Mapped[str] = mapped_column(String(2048), index=True)
    author_name: Mapped[str] = mapped_column(String(200))
    author_url: Mapped[str] = mapped_column(String(2048))
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="SET NULL"), nullable=True
    )
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    rating: Mapped[int | None] = mapped_column(Integer, nullable=True)
    used: Mapped[bool] = mapped_column(Boolean, default=False)
    comment_html: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BrickLike(Base):
    __tablename__ = "brick_likes"
    __table_args__ = (UniqueConstraint("brick_id", "actor_uri"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    brick_id: Mapped[int] = mapped_column(ForeignKey("bricks.id", ondelete="CASCADE"))
    actor_uri: Mapped[str] = mapped_column(String(2048))
    activity_id: Mapped[str] = mapped_column(String(2048))
