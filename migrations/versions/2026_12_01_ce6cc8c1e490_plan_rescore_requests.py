"""Plan re-score requests: plans whose forecast is owed a re-score after a customer's answer.

Revision ID: ce6cc8c1e490
Revises: b0435937b328
Create Date: 2026-12-01 21:02:18.725676
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "ce6cc8c1e490"
down_revision: str | None = "b0435937b328"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "plan_rescore",
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("requested_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plan.id"]),
        sa.PrimaryKeyConstraint("plan_id"),
    )


def downgrade() -> None:
    op.drop_table("plan_rescore")
