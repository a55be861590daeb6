"""Forecast outcomes: each synced purchase beside the forecast made before it; plans remember
the last purchase their forecast was based on. Covering indexes for the admin dashboard.

Revision ID: b0435937b328
Revises: 5aabc9e7d30a
Create Date: 2026-11-22 22:42:34.996653
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "b0435937b328"
down_revision: str | None = "5aabc9e7d30a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forecast_outcome",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("predicted_on", sa.Date(), nullable=False),
        sa.Column("low_on", sa.Date(), nullable=False),
        sa.Column("high_on", sa.Date(), nullable=False),
        sa.Column("actual_on", sa.Date(), nullable=False),
        sa.Column("recorded_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plan.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["product.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("forecast_outcome", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_forecast_outcome_actual_on"), ["actual_on"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_forecast_outcome_plan_id"), ["plan_id"], unique=False)

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("forecast_last_on", sa.Date(), nullable=True))

    # Covering indexes for the admin dashboard's counts (and the scheduler's prompt dates).
    op.drop_index("ix_plan_prompt_on", table_name="plan")
    op.create_index("ix_plan_prompt_on", "plan", ["prompt_on", "status"])
    op.create_index("ix_plan_product_first_ordered_on", "plan",
                    ["product_id", "first_ordered_on", "n_purchases"])  # fmt: skip
    op.create_index("ix_prompt_sent_at_status", "prompt", ["sent_at", "status"])


def downgrade() -> None:
    op.drop_index("ix_prompt_sent_at_status", table_name="prompt")
    op.drop_index("ix_plan_product_first_ordered_on", table_name="plan")
    op.drop_index("ix_plan_prompt_on", table_name="plan")
    op.create_index("ix_plan_prompt_on", "plan", ["prompt_on"])

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_column("forecast_last_on")

    with op.batch_alter_table("forecast_outcome", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forecast_outcome_plan_id"))
        batch_op.drop_index(batch_op.f("ix_forecast_outcome_actual_on"))

    op.drop_table("forecast_outcome")
