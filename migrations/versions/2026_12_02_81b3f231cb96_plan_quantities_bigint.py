"""Plan quantities are BIGINT: a pair's total units above 2^31 - 1 failed on PostgreSQL.

An order may carry ~5 x 10^8 units, so a few of them overflowed ``plan.total_quantity`` (and
one day's could overflow ``last_quantity``): every later sync of the pair failed, and with it
the whole batch. SQLite's integers were 64-bit already; its table is rebuilt for the type.

Revision ID: 81b3f231cb96
Revises: b4e8f2a6c913
Create Date: 2026-12-02 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "81b3f231cb96"
down_revision: str | None = "b4e8f2a6c913"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plan") as batch:
        batch.alter_column(
            "total_quantity", existing_type=sa.Integer(), type_=sa.BigInteger(), nullable=False
        )
        batch.alter_column(
            "last_quantity", existing_type=sa.Integer(), type_=sa.BigInteger(), nullable=True
        )


def downgrade() -> None:
    # Fails on PostgreSQL while a plan holds more than an INTEGER does: nothing is cut short.
    with op.batch_alter_table("plan") as batch:
        batch.alter_column(
            "last_quantity", existing_type=sa.BigInteger(), type_=sa.Integer(), nullable=True
        )
        batch.alter_column(
            "total_quantity", existing_type=sa.BigInteger(), type_=sa.Integer(), nullable=False
        )
