"""Tables of the protocol layer. They know actors and keys, not members, bricks or ledgers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from node.db import Base, UTCDateTime, utcnow

__all__ = ["LocalActor"]


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
