"""Forecast models (fitted population parameters) and the explanation data of plan forecasts.

Revision ID: cef9ab2af473
Revises: c352be1a2daf
Create Date: 2026-11-22 13:29:39.832225
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "cef9ab2af473"
down_revision: str | None = "c352be1a2daf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forecast_model",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version", sa.String(length=40), nullable=False),
        sa.Column("trained_until_on", sa.Date(), nullable=False),
        sa.Column("n_pairs", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("fitted_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("forecast_model", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_forecast_model_fitted_at"), ["fitted_at"], unique=False
        )

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("explanation_data", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("p_within_horizon", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_column("p_within_horizon")
        batch_op.drop_column("explanation_data")

    with op.batch_alter_table("forecast_model", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_forecast_model_fitted_at"))

    op.drop_table("forecast_model")
