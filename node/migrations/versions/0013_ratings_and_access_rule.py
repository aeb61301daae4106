"""ratings and the clearing-access rule: one review (and so one rating) per author and brick,
keeping the latest of existing duplicates (with the latest rating any of them gave) and
recounting the local bricks' figures; the rule administrators set from /admin

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_reviews = sa.table(
    "brick_reviews",
    sa.column("id", sa.Integer()),
    sa.column("brick_id", sa.Integer()),
    sa.column("author_uri", sa.String()),
    sa.column("rating", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
_bricks = sa.table(
    "bricks",
    sa.column("id", sa.Integer()),
    sa.column("local", sa.Boolean()),
    sa.column("rating_sum", sa.Integer()),
    sa.column("rating_count", sa.Integer()),
)


def _merge_duplicate_reviews() -> None:
    """Keep the newest review of each (brick, author); when it carries no rating, it takes
    the newest rating an older one gave. Local bricks' figures are counted again."""
    connection = op.get_bind()
    rows = connection.execute(
        sa.select(
            _reviews.c.id,
            _reviews.c.brick_id,
            _reviews.c.author_uri,
            _reviews.c.rating,
        ).order_by(_reviews.c.brick_id, _reviews.c.author_uri, _reviews.c.created_at, _reviews.c.id)
    ).all()
    groups: dict[tuple[int, str], list[tuple[int, int | None]]] = {}
    for review_id, brick_id, author_uri, rating in rows:
        groups.setdefault((brick_id, author_uri), []).append((review_id, rating))
    touched: set[int] = set()
    for (brick_id, _author), reviews in groups.items():
        if len(reviews) < 2:
            continue
        touched.add(brick_id)
        keep_id, keep_rating = reviews[-1]
        if keep_rating is None:
            ratings = [rating for _id, rating in reviews if rating is not None]
            if ratings:
                connection.execute(
                    _reviews.update().where(_reviews.c.id == keep_id).values(rating=ratings[-1])
                )
        older = [review_id for review_id, _rating in reviews[:-1]]
        connection.execute(_reviews.delete().where(_reviews.c.id.in_(older)))
    for brick_id in touched:
        total, count = connection.execute(
            sa.select(
                sa.func.coalesce(sa.func.sum(_reviews.c.rating), 0),
                sa.func.count(_reviews.c.rating),
            ).where(_reviews.c.brick_id == brick_id)
        ).one()
        connection.execute(
            _bricks.update()
            .where(_bricks.c.id == brick_id, _bricks.c.local.is_(True))
            .values(rating_sum=int(total), rating_count=int(count))
        )


def upgrade() -> None:
    _merge_duplicate_reviews()
    with op.batch_alter_table("brick_reviews", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            batch_op.f("uq_brick_reviews_brick_id"), ["brick_id", "author_uri"]
        )
    op.create_table(
        "clearing_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("min_bricks", sa.Integer(), nullable=False),
        sa.Column("min_days", sa.Integer(), nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("set_by", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clearing_rules")),
    )


def downgrade() -> None:
    op.drop_table("clearing_rules")
    with op.batch_alter_table("brick_reviews", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_brick_reviews_brick_id"), type_="unique")
