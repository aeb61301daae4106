"""offers and needs (FEP-0837 proposals), the directory's opt-in, the offer an exchange answers

Revision ID: 0019
Revises: 0016
Create Date: 2026-12-06 01:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=32), nullable=False),
        sa.Column("uri", sa.String(length=2048), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("description_html", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("tags_text", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("minutes", sa.Integer(), nullable=True),
        sa.Column("bricks", sa.JSON(), nullable=False),
        sa.Column("author_uri", sa.String(length=2048), nullable=False),
        sa.Column("author_name", sa.String(length=200), nullable=False),
        sa.Column("author_url", sa.String(length=2048), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("chamber_uri", sa.String(length=2048), nullable=True),
        sa.Column("chamber_name", sa.String(length=255), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_offers_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
        sa.UniqueConstraint("key", name=op.f("uq_offers_key")),
        sa.UniqueConstraint("uri", name=op.f("uq_offers_uri")),
    )
    op.create_index("ix_offers_state_local_id", "offers", ["state", "local", "id"])
    op.create_index("ix_offers_host_id", "offers", ["host", "id"])
    op.create_index(op.f("ix_offers_author_uri"), "offers", ["author_uri"])
    op.create_index(op.f("ix_offers_member_id"), "offers", ["member_id"])
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("directory_listed", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("clearing_exchanges", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offer_uri", sa.String(length=2048), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clearing_exchanges", schema=None) as batch_op:
        batch_op.drop_column("offer_uri")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_column("directory_listed")
    op.drop_index(op.f("ix_offers_member_id"), table_name="offers")
    op.drop_index(op.f("ix_offers_author_uri"), table_name="offers")
    op.drop_index("ix_offers_host_id", table_name="offers")
    op.drop_index("ix_offers_state_local_id", table_name="offers")
    op.drop_table("offers")
