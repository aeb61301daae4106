"""process engine: every move of a process recorded; jobs linked to the process they drive

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 00:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "process_moves",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("graph", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=600), nullable=False),
        sa.Column("before", sa.String(length=32), nullable=True),
        sa.Column("after", sa.String(length=32), nullable=False),
        sa.Column("by", sa.String(length=2048), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_moves")),
    )
    op.create_index("ix_process_moves_subject", "process_moves", ["graph", "subject"])
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("process_key", sa.String(length=300), nullable=True))
    # Periodic cycles already pending become keyed by their kind (one each, the oldest).
    op.execute(
        "UPDATE jobs SET process_key = kind WHERE state = 'pending' AND kind IN "
        "('clearing.expire', 'clearing.demurrage', 'clearing.reconcile') AND id IN "
        "(SELECT MIN(id) FROM jobs WHERE state = 'pending' GROUP BY kind)"
    )
    op.create_index(
        "uq_jobs_pending_process",
        "jobs",
        ["process_key"],
        unique=True,
        postgresql_where=sa.text("state = 'pending'"),
        sqlite_where=sa.text("state = 'pending'"),
    )


def downgrade() -> None:
    op.drop_index("uq_jobs_pending_process", table_name="jobs")
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_column("process_key")
    op.drop_index("ix_process_moves_subject", table_name="process_moves")
    op.drop_table("process_moves")
