"""Tables and enums. No queries and no I/O here: services own state changes.

Naming: ``*_at`` columns are aware UTC datetimes, ``*_on`` columns are dates in the customer's
own calendar, ``external_id`` is the EC backend's id for a record.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Column, Index, UniqueConstraint, text
from sqlalchemy import Enum as SAEnum
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime

EXTERNAL_ID_MAX = 255


def _enum(enum_cls: type[enum.Enum], name: str) -> Any:
    # Stored as the enum *values* (lower-case strings), with a CHECK on SQLite and a native
    # type on PostgreSQL, so the database refuses a status the code does not know.
    return SAEnum(
        enum_cls,
        name=name,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def _utc(nullable: bool = False, index: bool = False) -> Any:
    return Field(sa_type=UTCDateTime, nullable=nullable, index=index)


class Locale(enum.StrEnum):
    JA = "ja"
    EN = "en"


class OrderStatus(enum.StrEnum):
    PLACED = "placed"
    CANCELLED = "cancelled"
    RETURNED = "returned"


class PlanStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"


class ActorType(enum.StrEnum):
    USER = "user"
    API_CLIENT = "api_client"
    SYSTEM = "system"


class Customer(SQLModel, table=True):
    __tablename__ = "customer"

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=EXTERNAL_ID_MAX, unique=True)
    email: str | None = Field(default=None, max_length=320)
    name: str | None = Field(default=None, max_length=200)
    locale: Locale = Field(default=Locale.JA, sa_type=_enum(Locale, "locale"))
    timezone: str = Field(max_length=64)
    # Created because an order named this customer before the customer itself was synced.
    is_placeholder: bool = False
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class Product(SQLModel, table=True):
    __tablename__ = "product"
    __table_args__ = (
        CheckConstraint("pack_size > 0", name="pack_size_positive"),
        CheckConstraint("min_interval_days >= 1", name="min_interval_positive"),
        CheckConstraint("max_interval_days >= min_interval_days", name="interval_bounds_ordered"),
        CheckConstraint("lead_time_days >= 0", name="lead_time_not_negative"),
        CheckConstraint(
            "target_stockout_risk > 0 AND target_stockout_risk < 1", name="risk_is_probability"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=EXTERNAL_ID_MAX, unique=True)
    name: str | None = Field(default=None, max_length=300)
    unit: str | None = Field(default=None, max_length=50)
    pack_size: float = 1.0
    is_placeholder: bool = False
    # Ops settings (tuned on the admin pages). The defaults suit a monthly consumable.
    default_interval_days: int = 30
    min_interval_days: int = 7
    max_interval_days: int = 180
    lead_time_days: int = 3
    target_stockout_risk: float = 0.1
    prompt_expiry_days: int = 7
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class Order(SQLModel, table=True):
    __tablename__ = "orders"  # "order" is a reserved word in SQL
    __table_args__ = (
        # Partial: most orders fulfil no reorder, and a full index would cost every bulk sync.
        Index(
            "ix_orders_reorder_id",
            "reorder_id",
            sqlite_where=text("reorder_id IS NOT NULL"),
            postgresql_where=text("reorder_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    external_id: str = Field(max_length=EXTERNAL_ID_MAX, unique=True)
    customer_id: int = Field(foreign_key="customer.id", index=True)
    status: OrderStatus = Field(sa_type=_enum(OrderStatus, "order_status"))
    ordered_at: datetime = _utc()
    # The purchase day in the customer's own time zone: consumption is counted in their days.
    ordered_on: date
    delivered_at: datetime | None = _utc(nullable=True)
    # The backend's own version stamp: an older one never overwrites a newer one.
    source_updated_at: datetime = _utc()
    # Our reorder that this order fulfils, as the backend echoes it back.
    reorder_id: int | None = None
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class OrderLine(SQLModel, table=True):
    __tablename__ = "order_line"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity_positive"),
        UniqueConstraint("order_id", "product_id", name="uq_order_line_order_product"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: int = Field(foreign_key="orders.id", ondelete="CASCADE")
    product_id: int = Field(foreign_key="product.id")
    quantity: int


class Plan(SQLModel, table=True):
    """One customer × one product that Kaidoki looks after, with its current estimate."""

    __tablename__ = "plan"
    __table_args__ = (UniqueConstraint("customer_id", "product_id", name="uq_plan_pair"),)

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    product_id: int = Field(foreign_key="product.id", index=True)
    status: PlanStatus = Field(default=PlanStatus.ACTIVE, sa_type=_enum(PlanStatus, "plan_status"))
    # The customer's or ops' fixed interval, overriding the estimate when set.
    preferred_interval_days: int | None = None
    # Consumption history summary: distinct purchase days and units of placed orders.
    n_purchases: int = 0
    total_quantity: int = 0
    first_ordered_on: date | None = None
    last_ordered_on: date | None = None
    last_quantity: int | None = None
    # The current forecast (filled by the forecaster).
    rate_per_day: float | None = None
    median_on: date | None = None
    q10_on: date | None = None
    q90_on: date | None = None
    p_active: float | None = None
    prompt_on: date | None = None
    forecast_method: str | None = Field(default=None, max_length=40)
    n_intervals: int | None = None
    explanation: str | None = Field(default=None, max_length=500)
    # The numbers behind the explanation, so that emails can say it in the customer's language.
    explanation_data: dict[str, Any] | None = Field(
        default=None, sa_column=Column(JSON, nullable=True)
    )
    p_within_horizon: float | None = None
    model_version: str | None = Field(default=None, max_length=40)
    forecast_at: datetime | None = _utc(nullable=True)
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class ApiClient(SQLModel, table=True):
    """A caller of the REST API. Only a SHA-256 hash of its key is kept."""

    __tablename__ = "api_client"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100, unique=True)
    key_prefix: str = Field(max_length=16)
    key_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _utc()
    revoked_at: datetime | None = _utc(nullable=True)
    last_used_at: datetime | None = _utc(nullable=True)


class IdempotencyRecord(SQLModel, table=True):
    """The first response to a POST carrying an ``Idempotency-Key``, replayed on retries."""

    __tablename__ = "idempotency_record"
    __table_args__ = (UniqueConstraint("api_client_id", "key", name="uq_idempotency_client_key"),)

    id: int | None = Field(default=None, primary_key=True)
    api_client_id: int = Field(foreign_key="api_client.id")
    key: str = Field(max_length=255)
    method: str = Field(max_length=10)
    path: str = Field(max_length=500)
    request_sha256: str = Field(max_length=64)
    response_status: int
    response_body: str
    created_at: datetime = _utc(index=True)


class AuditLog(SQLModel, table=True):
    """Who changed what, when, with the values before and after."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity_type", "entity_id"),)

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _utc(index=True)
    actor_type: ActorType = Field(sa_type=_enum(ActorType, "actor_type"))
    actor: str = Field(max_length=320)
    action: str = Field(max_length=50)
    entity_type: str = Field(max_length=50)
    entity_id: str = Field(max_length=EXTERNAL_ID_MAX)
    before: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    after: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class ForecastModel(SQLModel, table=True):
    """Fitted population parameters; the newest row is the one in use."""

    __tablename__ = "forecast_model"

    id: int | None = Field(default=None, primary_key=True)
    model_version: str = Field(max_length=40)
    # The fit used only purchases dated before this day.
    trained_until_on: date
    n_pairs: int
    params: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    fitted_at: datetime = _utc(index=True)
