"""partner reciprocity: when this chamber learnt that a partner has added it too

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing partnerships start unconfirmed: the next reconciliation run asks each partner
    # again (an ``Offer`` of a ``Partnership``), and its answer confirms them.
    with op.batch_alter_table("clearing_partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confirmed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("clearing_partners", schema=None) as batch_op:
        batch_op.drop_column("confirmed_at")
