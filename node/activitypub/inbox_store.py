"""Storing a received activity: one statement that is also the last word on who may send.

``store_received`` runs ``INSERT … SELECT … WHERE <the sender's host is not blocked> AND
<the recipient exists> ON CONFLICT (activity_id) DO NOTHING RETURNING id`` in the caller's
transaction: the checks the inbox made from its caches (``node.activitypub.caches``) are
made again by the database, atomically with the insert, so that a block or an account
removed by another process is never missed. When nothing was inserted, ``why_not_stored``
says why (a duplicate, a blocked host, no such recipient): a rare path, one more query.
The statement is built once per dialect and reused with new parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from typing import cast as cast_type

from sqlalchemy import ColumnElement, Table, bindparam, cast, exists, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import make_transient_to_detached

from node.activitypub.caches import block_candidates
from node.activitypub.models import DomainBlock, LocalActor, StoredActivity

__all__ = ["Received", "store_received", "why_not_stored"]

_COLUMNS = (
    "activity_id",
    "direction",
    "actor_uri",
    "activity_type",
    "object_id",
    "public",
    "document",
    "created_at",
)
_statements: dict[tuple[str, bool], Any] = {}


@dataclass(frozen=True)
class Received:
    """An activity about to be stored, and who it was sent to."""

    activity: dict[str, Any]
    actor_uri: str
    object_id: str | None
    public: bool
    received_at: datetime
    recipient_username: str | None


def _statement(dialect: str, with_recipient: bool) -> Any:
    key = (dialect, with_recipient)
    statement = _statements.get(key)
    if statement is not None:
        return statement
    table = cast_type(Table, StoredActivity.__table__)
    values: list[ColumnElement[Any]] = []
    for name in _COLUMNS:
        column_type = table.c[name].type
        param = bindparam(name, type_=column_type)
        # PostgreSQL types the parameters of a SELECT list only when told; SQLite's CAST
        # would change the values (CAST(… AS JSON) is NUMERIC affinity there).
        values.append(cast(param, column_type) if dialect == "postgresql" else param)
    condition: ColumnElement[bool] = ~exists().where(
        DomainBlock.host.in_([bindparam("authority"), bindparam("hostname")])
    )
    if with_recipient:
        condition = condition & exists().where(LocalActor.username == bindparam("recipient"))
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = (
        insert(table)
        .from_select(list(_COLUMNS), select(*values).where(condition, true()))
        .on_conflict_do_nothing(index_elements=["activity_id"])
        .returning(table.c.id)
    )
    _statements[key] = statement
    return statement


async def store_received(connection: AsyncConnection, received: Received) -> StoredActivity | None:
    """Insert the activity unless it is a duplicate, its sender's host is blocked or its
    recipient does not exist; the stored row (detached: a session adopts it when a handler
    links to it), or None."""
    activity = received.activity
    authority, hostname = block_candidates(received.actor_uri)
    parameters: dict[str, Any] = {
        "activity_id": activity["id"],
        "direction": "in",
        "actor_uri": received.actor_uri,
        "activity_type": activity["type"],
        "object_id": received.object_id,
        "public": received.public,
        "document": activity,
        "created_at": received.received_at,
        "authority": authority,
        "hostname": hostname,
    }
    if received.recipient_username is not None:
        parameters["recipient"] = received.recipient_username
    dialect = connection.dialect.name
    statement = _statement(dialect, received.recipient_username is not None)
    pk = (await connection.execute(statement, parameters)).scalar_one_or_none()
    if pk is None:
        return None
    stored = StoredActivity(
        id=pk,
        activity_id=activity["id"],
        direction="in",
        actor_uri=received.actor_uri,
        activity_type=activity["type"],
        object_id=received.object_id,
        public=received.public,
        document=activity,
        created_at=received.received_at,
    )
    make_transient_to_detached(stored)  # the row exists: no session needs to read it back
    return stored


async def why_not_stored(connection: AsyncConnection, received: Received) -> str:
    """``"duplicate"``, ``"blockedDomain"`` or ``"noRecipient"``: why ``store_received``
    inserted nothing."""
    duplicate = await connection.execute(
        select(StoredActivity.id).where(StoredActivity.activity_id == received.activity["id"])
    )
    if duplicate.first() is not None:
        return "duplicate"
    blocked = await connection.execute(
        select(DomainBlock.host).where(DomainBlock.host.in_(block_candidates(received.actor_uri)))
    )
    if blocked.first() is not None:
        return "blockedDomain"
    return "noRecipient"
