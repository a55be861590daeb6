"""Reorder ids are never reused: AUTOINCREMENT on SQLite (PostgreSQL's sequence never reuses).

An undone reorder's row is deleted; SQLite then gave its id to the next reorder, whose
webhook collided with the undone one's cancelled outbox row (same dedupe key) and failed every
later confirm. The sequence starts past every reorder id the outbox has named.

Revision ID: b4e8f2a6c913
Revises: a7c3d9e1f250
Create Date: 2026-12-02 14:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "b4e8f2a6c913"
down_revision: str | None = "a7c3d9e1f250"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PREFIXES = ("msg_reorder.confirmed_", "msg_reorder.cancelled_")


def _highest_named_id(bind: sa.Connection) -> int:
    highest = bind.scalar(sa.text("SELECT COALESCE(MAX(id), 0) FROM reorder")) or 0
    for prefix in PREFIXES:
        keys = bind.execute(
            sa.text("SELECT dedupe_key FROM outbox WHERE dedupe_key LIKE :p"), {"p": prefix + "%"}
        ).scalars()
        for key in keys:
            tail = key[len(prefix) :]
            if tail.isdigit():
                highest = max(highest, int(tail))
    return int(highest)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    highest = _highest_named_id(bind)
    with op.batch_alter_table(
        "reorder", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ):
        pass
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'reorder'"))
    bind.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('reorder', :seq)"),
        {"seq": highest},
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table(
        "reorder", recreate="always", table_kwargs={"sqlite_autoincrement": False}
    ):
        pass
