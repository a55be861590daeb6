"""Prompt render failures: counted, so each failed attempt to render a prompt's email waits
longer before the next.

Revision ID: a7c3d9e1f250
Revises: ce6cc8c1e490
Create Date: 2026-12-02 08:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c3d9e1f250"
down_revision: str | None = "ce6cc8c1e490"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("prompt") as batch:
        batch.add_column(
            sa.Column("render_failures", sa.Integer(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("prompt") as batch:
        batch.drop_column("render_failures")
