"""Prompts, reorders, the outbox and the demo mailbox; customer send hours and link versions.

Also adds 'customer' to the actor_type enum (answers given through email links are audited).

Revision ID: d9cc5306ff83
Revises: cef9ab2af473
Create Date: 2026-11-22 15:18:56.431932
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "d9cc5306ff83"
down_revision: str | None = "cef9ab2af473"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


NEW_ENUMS = ("outbox_kind", "outbox_status", "prompt_status", "reorder_status")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE actor_type ADD VALUE IF NOT EXISTS 'customer'")
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.Enum("email", "webhook", name="outbox_kind"), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "sending", "delivered", "dead", "cancelled", name="outbox_status"),
            nullable=False,
        ),
        sa.Column("event_type", sa.String(length=50), nullable=False),
        sa.Column("recipient", sa.String(length=500), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("delivered_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(
            "ix_outbox_status_available_at", ["status", "available_at"], unique=False
        )

    op.create_table(
        "mailbox_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("outbox_id", sa.Integer(), nullable=False),
        sa.Column("recipient", sa.String(length=500), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("raw", sa.String(), nullable=False),
        sa.Column("received_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("outbox_id"),
    )
    with op.batch_alter_table("mailbox_message", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_mailbox_message_received_at"), ["received_at"], unique=False
        )

    op.create_table(
        "prompt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "scheduled",
                "sending",
                "sent",
                "confirmed",
                "skipped",
                "snoozed",
                "stopped",
                "expired",
                "cancelled",
                name="prompt_status",
            ),
            nullable=False,
        ),
        sa.Column("due_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("nonce", sa.String(length=32), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("based_on_ordered_on", sa.Date(), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("lease_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outbox_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("answered_on", sa.Date(), nullable=True),
        sa.Column("answered_quantity", sa.Integer(), nullable=True),
        sa.Column("snooze_days", sa.Integer(), nullable=True),
        sa.Column("cancel_reason", sa.String(length=50), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plan.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.create_index(
            "ix_prompt_customer_sent_at", ["customer_id", "sent_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_prompt_outbox_id"), ["outbox_id"], unique=False)
        batch_op.create_index("ix_prompt_status_due_at", ["status", "due_at"], unique=False)
        batch_op.create_index(
            "uq_prompt_open_plan",
            ["plan_id"],
            unique=True,
            sqlite_where=sa.text("status IN ('scheduled', 'sending', 'sent')"),
            postgresql_where=sa.text("status IN ('scheduled', 'sending', 'sent')"),
        )

    op.create_table(
        "reorder",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("prompt_id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("pending", "acknowledged", "fulfilled", "cancelled", name="reorder_status"),
            nullable=False,
        ),
        sa.Column("confirmed_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("handoff_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("acknowledged_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fulfilled_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("fulfilled_order_id", sa.Integer(), nullable=True),
        sa.Column("cancelled_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity > 0", name="reorder_quantity_positive"),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["fulfilled_order_id"],
            ["orders.id"],
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["plan.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["product.id"],
        ),
        sa.ForeignKeyConstraint(
            ["prompt_id"],
            ["prompt.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("prompt_id"),
    )
    with op.batch_alter_table("reorder", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reorder_plan_id"), ["plan_id"], unique=False)
        batch_op.create_index(
            "ix_reorder_status_handoff_at", ["status", "handoff_at"], unique=False
        )

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.add_column(sa.Column("send_hour", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("unsubscribed_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("link_version", sa.Integer(), server_default="0", nullable=False)
        )

    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.add_column(sa.Column("prompt_not_before", sa.Date(), nullable=True))
        batch_op.create_index("ix_plan_prompt_on", ["prompt_on"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_index("ix_plan_prompt_on")
        batch_op.drop_column("prompt_not_before")

    with op.batch_alter_table("customer", schema=None) as batch_op:
        batch_op.drop_column("link_version")
        batch_op.drop_column("unsubscribed_at")
        batch_op.drop_column("send_hour")

    with op.batch_alter_table("reorder", schema=None) as batch_op:
        batch_op.drop_index("ix_reorder_status_handoff_at")
        batch_op.drop_index(batch_op.f("ix_reorder_plan_id"))

    op.drop_table("reorder")
    with op.batch_alter_table("prompt", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_prompt_open_plan",
            sqlite_where=sa.text("status IN ('scheduled', 'sending', 'sent')"),
            postgresql_where=sa.text("status IN ('scheduled', 'sending', 'sent')"),
        )
        batch_op.drop_index("ix_prompt_status_due_at")
        batch_op.drop_index(batch_op.f("ix_prompt_outbox_id"))
        batch_op.drop_index("ix_prompt_customer_sent_at")

    op.drop_table("prompt")
    with op.batch_alter_table("mailbox_message", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mailbox_message_received_at"))

    op.drop_table("mailbox_message")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_status_available_at")
        batch_op.drop_index(batch_op.f("ix_outbox_customer_id"))

    op.drop_table("outbox")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # PostgreSQL keeps enum types after their tables are gone. The 'customer' actor type
        # stays (a value cannot be removed from an enum); the initial revision drops the type.
        for name in NEW_ENUMS:
            sa.Enum(name=name).drop(bind, checkfirst=True)
