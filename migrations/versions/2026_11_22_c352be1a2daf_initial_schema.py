"""Initial schema: customers, products, orders and lines, plans, API clients, audit log.

Revision ID: c352be1a2daf
Revises:
Create Date: 2026-11-22 13:28:34.499912
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "c352be1a2daf"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "api_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column(
            "actor_type", sa.Enum("user", "api_client", "system", name="actor_type"), nullable=False
        ),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=50), nullable=False),
        sa.Column("entity_type", sa.String(length=50), nullable=False),
        sa.Column("entity_id", sa.String(length=255), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_at"), ["at"], unique=False)
        batch_op.create_index("ix_audit_log_entity", ["entity_type", "entity_id"], unique=False)

    op.create_table(
        "customer",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("locale", sa.Enum("ja", "en", name="locale"), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("is_placeholder", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_table(
        "product",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("unit", sa.String(length=50), nullable=True),
        sa.Column("pack_size", sa.Float(), nullable=False),
        sa.Column("is_placeholder", sa.Boolean(), nullable=False),
        sa.Column("default_interval_days", sa.Integer(), nullable=False),
        sa.Column("min_interval_days", sa.Integer(), nullable=False),
        sa.Column("max_interval_days", sa.Integer(), nullable=False),
        sa.Column("lead_time_days", sa.Integer(), nullable=False),
        sa.Column("target_stockout_risk", sa.Float(), nullable=False),
        sa.Column("prompt_expiry_days", sa.Integer(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("lead_time_days >= 0", name="lead_time_not_negative"),
        sa.CheckConstraint(
            "max_interval_days >= min_interval_days", name="interval_bounds_ordered"
        ),
        sa.CheckConstraint("min_interval_days >= 1", name="min_interval_positive"),
        sa.CheckConstraint("pack_size > 0", name="pack_size_positive"),
        sa.CheckConstraint(
            "target_stockout_risk > 0 AND target_stockout_risk < 1", name="risk_is_probability"
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    op.create_table(
        "idempotency_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_client_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.String(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_client_id"],
            ["api_client.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("api_client_id", "key", name="uq_idempotency_client_key"),
    )
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_idempotency_record_created_at"), ["created_at"], unique=False
        )

    op.create_table(
        "orders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column(
            "status",
            sa.Enum("placed", "cancelled", "returned", name="order_status"),
            nullable=False,
        ),
        sa.Column("ordered_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ordered_on", sa.Date(), nullable=False),
        sa.Column("delivered_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("source_updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reorder_id", sa.Integer(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("external_id"),
    )
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_orders_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index(
            "ix_orders_reorder_id",
            ["reorder_id"],
            unique=False,
            sqlite_where=sa.text("reorder_id IS NOT NULL"),
            postgresql_where=sa.text("reorder_id IS NOT NULL"),
        )

    op.create_table(
        "plan",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column(
            "status", sa.Enum("active", "paused", "stopped", name="plan_status"), nullable=False
        ),
        sa.Column("preferred_interval_days", sa.Integer(), nullable=True),
        sa.Column("n_purchases", sa.Integer(), nullable=False),
        sa.Column("total_quantity", sa.Integer(), nullable=False),
        sa.Column("first_ordered_on", sa.Date(), nullable=True),
        sa.Column("last_ordered_on", sa.Date(), nullable=True),
        sa.Column("last_quantity", sa.Integer(), nullable=True),
        sa.Column("rate_per_day", sa.Float(), nullable=True),
        sa.Column("median_on", sa.Date(), nullable=True),
        sa.Column("q10_on", sa.Date(), nullable=True),
        sa.Column("q90_on", sa.Date(), nullable=True),
        sa.Column("p_active", sa.Float(), nullable=True),
        sa.Column("prompt_on", sa.Date(), nullable=True),
        sa.Column("forecast_method", sa.String(length=40), nullable=True),
        sa.Column("n_intervals", sa.Integer(), nullable=True),
        sa.Column("explanation", sa.String(length=500), nullable=True),
        sa.Column("model_version", sa.String(length=40), nullable=True),
        sa.Column("forecast_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customer.id"],
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["product.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("customer_id", "product_id", name="uq_plan_pair"),
    )
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_plan_product_id"), ["product_id"], unique=False)

    op.create_table(
        "order_line",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="quantity_positive"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["product.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("order_id", "product_id", name="uq_order_line_order_product"),
    )


def downgrade() -> None:
    op.drop_table("order_line")
    with op.batch_alter_table("plan", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_plan_product_id"))

    op.drop_table("plan")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_orders_reorder_id",
            sqlite_where=sa.text("reorder_id IS NOT NULL"),
            postgresql_where=sa.text("reorder_id IS NOT NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_orders_customer_id"))

    op.drop_table("orders")
    with op.batch_alter_table("idempotency_record", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_idempotency_record_created_at"))

    op.drop_table("idempotency_record")
    op.drop_table("product")
    op.drop_table("customer")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_entity")
        batch_op.drop_index(batch_op.f("ix_audit_log_at"))

    op.drop_table("audit_log")
    op.drop_table("api_client")
    # PostgreSQL keeps enum types after their tables are gone; drop them so that an upgrade
    # after a downgrade to base starts clean. (A no-op on SQLite.)
    bind = op.get_bind()
    for name in ("plan_status", "order_status", "locale", "actor_type"):
        sa.Enum(name=name).drop(bind, checkfirst=True)
