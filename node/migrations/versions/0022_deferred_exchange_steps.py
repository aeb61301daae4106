"""deferred exchange steps: the declaring side's amendment, withdrawal or expiry received
while the other chamber's copy was settling, applied once the settlement is decided

Revision ID: 0022
Revises: 0019
Create Date: 2026-12-06 03:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clearing_deferred_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exchange_id", sa.Integer(), nullable=False),
        sa.Column("activity_pk", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_pk"],
            ["activities.id"],
            name=op.f("fk_clearing_deferred_steps_activity_pk_activities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["exchange_id"],
            ["clearing_exchanges.id"],
            name=op.f("fk_clearing_deferred_steps_exchange_id_clearing_exchanges"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_deferred_steps")),
        sa.UniqueConstraint("activity_pk", name=op.f("uq_clearing_deferred_steps_activity_pk")),
    )
    op.create_index(
        op.f("ix_clearing_deferred_steps_exchange_id"),
        "clearing_deferred_steps",
        ["exchange_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(
        op.f("ix_clearing_deferred_steps_exchange_id"), table_name="clearing_deferred_steps"
    )
    op.drop_table("clearing_deferred_steps")
