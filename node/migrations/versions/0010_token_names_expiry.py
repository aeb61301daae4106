"""API tokens: a name (unique per member among tokens not revoked), an expiry, a revocation

Existing tokens keep working: each is named after its label (``cli``...), or
``<label>-<id>`` / ``token-<id>`` when that name is empty or already taken by the member.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_UNREVOKED = sa.text("revoked_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))

    connection = op.get_bind()
    tokens = sa.table(
        "api_tokens",
        sa.column("id", sa.Integer),
        sa.column("member_id", sa.Integer),
        sa.column("label", sa.String),
        sa.column("name", sa.String),
    )
    taken: set[tuple[int, str]] = set()
    rows = connection.execute(
        sa.select(tokens.c.id, tokens.c.member_id, tokens.c.label).order_by(tokens.c.id)
    ).all()
    for token_id, member_id, label in rows:
        label = (label or "").strip()[:80]
        name = (
            label if label and (member_id, label) not in taken else f"{label or 'token'}-{token_id}"
        )
        taken.add((member_id, name))
        connection.execute(sa.update(tokens).where(tokens.c.id == token_id).values(name=name))

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("name", existing_type=sa.String(length=100), nullable=False)
        batch_op.drop_column("label")
    op.create_index(
        "uq_api_tokens_member_id_name_unrevoked",
        "api_tokens",
        ["member_id", "name"],
        unique=True,
        sqlite_where=_UNREVOKED,
        postgresql_where=_UNREVOKED,
    )


def downgrade() -> None:
    op.drop_index("uq_api_tokens_member_id_name_unrevoked", table_name="api_tokens")
    # Revoked tokens stop being revoked once the column is gone: delete them first.
    op.execute("DELETE FROM api_tokens WHERE revoked_at IS NOT NULL")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("label", sa.String(length=100), nullable=False, server_default="")
        )
    op.execute("UPDATE api_tokens SET label = name")
    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.alter_column("label", existing_type=sa.String(length=100), server_default=None)
        batch_op.drop_column("revoked_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("name")
