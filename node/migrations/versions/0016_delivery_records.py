"""delivery records: where each object we sent went (for its Update and Delete);
objects an actor features (pinned); the chamber's icon

Revision ID: 0016
Revises: 0014
Create Date: 2026-12-08 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("object_id", sa.String(length=2048), nullable=False),
        sa.Column("inbox", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
        sa.UniqueConstraint("object_id", "inbox", name=op.f("uq_deliveries_object_id")),
    )
    op.create_index(op.f("ix_deliveries_object_id"), "deliveries", ["object_id"], unique=False)
    op.create_table(
        "featured_objects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("actor_uri", sa.String(length=2048), nullable=False),
        sa.Column("object_id", sa.String(length=2048), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_featured_objects")),
        sa.UniqueConstraint("actor_uri", "object_id", name=op.f("uq_featured_objects_actor_uri")),
    )
    op.create_index(
        op.f("ix_featured_objects_actor_uri"), "featured_objects", ["actor_uri"], unique=False
    )
    # Plain ALTER TABLE, no batch copy: on SQLite a batch recreates local_actors, and dropping
    # the old copy trips the foreign keys of members (and would cascade deletes).
    op.add_column("local_actors", sa.Column("icon_url", sa.String(length=2048), nullable=True))
    op.add_column("local_actors", sa.Column("image_url", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    # ALTER TABLE ... DROP COLUMN: SQLite >= 3.35 and PostgreSQL, no table copy.
    op.execute("ALTER TABLE local_actors DROP COLUMN image_url")
    op.execute("ALTER TABLE local_actors DROP COLUMN icon_url")
    op.drop_index(op.f("ix_featured_objects_actor_uri"), table_name="featured_objects")
    op.drop_table("featured_objects")
    op.drop_index(op.f("ix_deliveries_object_id"), table_name="deliveries")
    op.drop_table("deliveries")
