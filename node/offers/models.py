"""Tables of offers and needs: this chamber's and those received from the archipelago.

Tags are kept as ``tags`` (a list) and ``tags_text`` (`` tag1 tag2 ``, spaces around each)
so that one ``LIKE '% tag %'`` filters by tag on both databases.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow
from node.process import State, StateGraph

__all__ = ["Offer", "OfferKind", "OfferState", "OfferStates"]


class OfferKind:
    OFFER = "offer"  # "je propose": the author provides
    NEED = "need"  # "je cherche": the author benefits

    ALL = (OFFER, NEED)


class OfferStates(StateGraph):
    """An offer or need is open until its author closes it (its ``uri`` is the subject)."""

    open = State(initial=True)
    closed = State(final=True)

    open.transitions_to(closed)


class OfferState:
    OPEN = OfferStates.open.name
    CLOSED = OfferStates.closed.name


class Offer(Base):
    """An offer or a need. ``uri`` is its ActivityPub id (a FEP-0837 ``Proposal``); ``key``
    its local handle in URLs (``/offers/<key>``) for local and remote ones alike."""

    __tablename__ = "offers"
    __table_args__ = (
        Index("ix_offers_state_local_id", "state", "local", "id"),
        Index("ix_offers_host_id", "host", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(32), unique=True)
    uri: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    local: Mapped[bool] = mapped_column(Boolean, default=True)
    kind: Mapped[str] = mapped_column(String(8))  # OfferKind
    state: Mapped[str] = mapped_column(String(8), default=OfferState.OPEN)  # OfferState
    title: Mapped[str] = mapped_column(String(200))
    #: the description as typed (local) or as plain text (remote)
    description: Mapped[str] = mapped_column(Text, default="")
    #: sanitized HTML of the description
    description_html: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    tags_text: Mapped[str] = mapped_column(Text, default="")
    #: title, description and tags in lower case (Python's, which SQLite's lower() is not
    #: for accented letters): what a search by word reads
    search_text: Mapped[str] = mapped_column(Text, default="")
    minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: URLs of the bricks the offer rests on
    bricks: Mapped[list[str]] = mapped_column(JSON, default=list)
    author_uri: Mapped[str] = mapped_column(String(2048), index=True)
    author_name: Mapped[str] = mapped_column(String(200))
    author_url: Mapped[str] = mapped_column(String(2048))
    member_id: Mapped[int | None] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), nullable=True, index=True
    )
    #: host of the chamber the offer comes from (only that origin may change it)
    host: Mapped[str] = mapped_column(String(255))
    chamber_uri: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    chamber_name: Mapped[str] = mapped_column(String(255), default="")
    published_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    @property
    def is_open(self) -> bool:
        return self.state == OfferState.OPEN
