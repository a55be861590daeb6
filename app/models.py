"""Tables and enums. No queries and no I/O here: services own state changes.

Naming: ``*_at`` columns are aware UTC datetimes, ``*_on`` columns are dates in the customer's
own calendar, ``external_id`` is the EC backend's id for a record.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, BigInteger, CheckConstraint, Column, Index, UniqueConstraint, text
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


class PromptStatus(enum.StrEnum):
    """scheduled -> sending -> sent -> confirmed / skipped / snoozed / stopped / expired; any
    open state -> cancelled (the customer ordered anyway, unsubscribed, or the plan stopped)."""

    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CONFIRMED = "confirmed"
    SKIPPED = "skipped"
    SNOOZED = "snoozed"
    STOPPED = "stopped"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


OPEN_PROMPT_STATUSES = (PromptStatus.SCHEDULED, PromptStatus.SENDING, PromptStatus.SENT)
# The condition of the partial index on open prompts, as literal text: a query that repeats it
# word for word can look a plan's open prompt up through that index (SQLite proves a partial
# index usable only from the same terms, not from bound parameters).
OPEN_PROMPT_CONDITION = "status IN ('scheduled', 'sending', 'sent')"


class ReorderStatus(enum.StrEnum):
    PENDING = "pending"  # confirmed; visible to the backend once its undo window has passed
    ACKNOWLEDGED = "acknowledged"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"


class OutboxKind(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    DEAD = "dead"
    CANCELLED = "cancelled"


class ActorType(enum.StrEnum):
    USER = "user"
    API_CLIENT = "api_client"
    SYSTEM = "system"
    CUSTOMER = "customer"  # through the signed links in their emails


class AdminRole(enum.StrEnum):
    """Viewers read every admin page; operators also change settings and retry deliveries."""

    VIEWER = "viewer"
    OPERATOR = "operator"


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
    # Local hour at which prompts go out; learned from when the customer answers.
    send_hour: int | None = None
    unsubscribed_at: datetime | None = _utc(nullable=True)
    # Part of every manage / unsubscribe link: raising it revokes all of them at once.
    link_version: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
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
    __table_args__ = (
        UniqueConstraint("customer_id", "product_id", name="uq_plan_pair"),
        # The scheduler's question "which plans are due for a prompt?".
        # Covering for the scheduler and the dashboard: prompt dates of active plans.
        Index("ix_plan_prompt_on", "prompt_on", "status"),
        # Covering for first-to-second purchase conversion by product (admin dashboard).
        Index("ix_plan_product_first_ordered_on", "product_id", "first_ordered_on", "n_purchases"),
    )

    id: int | None = Field(default=None, primary_key=True)
    customer_id: int = Field(foreign_key="customer.id")
    product_id: int = Field(foreign_key="product.id", index=True)
    status: PlanStatus = Field(default=PlanStatus.ACTIVE, sa_type=_enum(PlanStatus, "plan_status"))
    # The customer's or ops' fixed interval, overriding the estimate when set.
    preferred_interval_days: int | None = None
    # Consumption history summary: distinct purchase days and units of placed orders. The
    # units are BIGINT: an order may carry ~5 x 10^8 (``app.api.schemas``), a few orders more
    # than an INTEGER holds, and so can one day's.
    n_purchases: int = 0
    total_quantity: int = Field(default=0, sa_type=BigInteger)
    first_ordered_on: date | None = None
    last_ordered_on: date | None = None
    last_quantity: int | None = Field(default=None, sa_type=BigInteger)
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
    # No prompt before this day (after a skip, snooze or an unanswered prompt).
    prompt_not_before: date | None = None
    # The last purchase the stored forecast was based on: a later one is its outcome.
    forecast_last_on: date | None = None
    model_version: str | None = Field(default=None, max_length=40)
    forecast_at: datetime | None = _utc(nullable=True)
    created_at: datetime = _utc()
    updated_at: datetime = _utc()

    def next_prompt(self, open_prompt: Prompt | None, now: datetime, zone: ZoneInfo) -> NextPrompt:
        """When this plan's customer hears from it next, given its open prompt (if any), the
        moment ``now`` and the customer's time zone ``zone``.

        A prompt sent (or being sent) and not answered yet awaits the answer; a scheduled one
        comes on the day it is due; else the forecast day, or the end of the rest an answer
        set when that is later. Never before the customer's today: an overdue day is today.
        No day for a plan that is not active or has no prompt day.
        """
        if self.status is not PlanStatus.ACTIVE:
            return NextPrompt(None, awaiting_answer=False)
        today = now.astimezone(zone).date()
        if open_prompt is not None and open_prompt.status is not PromptStatus.SCHEDULED:
            return NextPrompt(None, awaiting_answer=True)
        if open_prompt is not None:
            return NextPrompt(max(open_prompt.due_at.astimezone(zone).date(), today), False)
        if self.prompt_on is None:
            return NextPrompt(None, awaiting_answer=False)
        return NextPrompt(max(self.prompt_on, self.prompt_not_before or today, today), False)


class NextPrompt(NamedTuple):
    """When a plan's customer hears from it next (``Plan.next_prompt``)."""

    on: date | None  # the day, in the customer's calendar; None: awaiting an answer, or none
    awaiting_answer: bool  # a prompt is out and not answered yet


class Prompt(SQLModel, table=True):
    """One question to a customer about one plan: "running low on X? send more?"."""

    __tablename__ = "prompt"
    __table_args__ = (
        # At most one open prompt per plan, so concurrent schedulers cannot create two.
        Index(
            "uq_prompt_open_plan",
            "plan_id",
            unique=True,
            sqlite_where=text(OPEN_PROMPT_CONDITION),
            postgresql_where=text(OPEN_PROMPT_CONDITION),
        ),
        Index("ix_prompt_status_due_at", "status", "due_at"),
        Index("ix_prompt_customer_sent_at", "customer_id", "sent_at"),
        Index("ix_prompt_sent_at_status", "sent_at", "status"),  # answer rates (dashboard)
    )

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id")
    customer_id: int = Field(foreign_key="customer.id")
    status: PromptStatus = Field(sa_type=_enum(PromptStatus, "prompt_status"))
    due_at: datetime = _utc()
    # Part of every link to this prompt: replacing it revokes the links.
    nonce: str = Field(max_length=32)
    quantity: int
    # The last purchase the prompt was based on: a newer one makes it moot.
    based_on_ordered_on: date | None = None
    # A dispatcher's claim: other dispatchers leave the row alone until the lease runs out.
    claimed_by: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _utc(nullable=True)
    outbox_id: int | None = Field(default=None, foreign_key="outbox.id", index=True)
    sent_at: datetime | None = _utc(nullable=True)
    expires_at: datetime | None = _utc(nullable=True)
    answered_at: datetime | None = _utc(nullable=True)
    # The answer's day in the customer's calendar: the forecaster's evidence.
    answered_on: date | None = None
    answered_quantity: int | None = None
    snooze_days: int | None = None
    cancel_reason: str | None = Field(default=None, max_length=50)
    # Failed attempts to render its email (a bug or bad stored data): each one waits longer.
    render_failures: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class Reorder(SQLModel, table=True):
    """A confirmed prompt, handed to the EC backend once its undo window has passed."""

    __tablename__ = "reorder"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="reorder_quantity_positive"),
        Index("ix_reorder_status_handoff_at", "status", "handoff_at"),
        # An undone reorder's row goes; its id must never come back (SQLite would reuse the
        # highest), as the webhook's id and the outbox's dedupe key are made from it.
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    prompt_id: int = Field(foreign_key="prompt.id", unique=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    customer_id: int = Field(foreign_key="customer.id")
    product_id: int = Field(foreign_key="product.id")
    quantity: int
    status: ReorderStatus = Field(sa_type=_enum(ReorderStatus, "reorder_status"))
    confirmed_at: datetime = _utc()
    handoff_at: datetime = _utc()
    acknowledged_at: datetime | None = _utc(nullable=True)
    fulfilled_at: datetime | None = _utc(nullable=True)
    fulfilled_order_id: int | None = Field(default=None, foreign_key="orders.id")
    cancelled_at: datetime | None = _utc(nullable=True)
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class Outbox(SQLModel, table=True):
    """A message to deliver (an email or a webhook), written with the change that caused it."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_available_at", "status", "available_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: OutboxKind = Field(sa_type=_enum(OutboxKind, "outbox_kind"))
    # Stable across retries and restarts: the email's Message-ID, the webhook's webhook-id.
    dedupe_key: str = Field(max_length=200, unique=True)
    status: OutboxStatus = Field(sa_type=_enum(OutboxStatus, "outbox_status"))
    event_type: str = Field(max_length=50)
    recipient: str = Field(max_length=500)
    customer_id: int | None = Field(default=None, foreign_key="customer.id", index=True)
    payload: str  # the whole MIME message, or the webhook's JSON body
    attempts: int = 0
    available_at: datetime = _utc()
    claimed_by: str | None = Field(default=None, max_length=100)
    lease_until: datetime | None = _utc(nullable=True)
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = _utc(nullable=True)
    # Written; the retry window counts from it (moved to when the message was due at its
    # first failure, and to the moment of a replay: outbox.mark_failed, outbox.replay).
    created_at: datetime = _utc()
    updated_at: datetime = _utc()


class MailboxMessage(SQLModel, table=True):
    """An email kept in the database instead of sent (no SMTP configured: the demo)."""

    __tablename__ = "mailbox_message"

    id: int | None = Field(default=None, primary_key=True)
    outbox_id: int = Field(foreign_key="outbox.id", unique=True)
    recipient: str = Field(max_length=500)
    subject: str = Field(max_length=500)
    raw: str
    received_at: datetime = _utc(index=True)


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


class AdminUser(SQLModel, table=True):
    """A member of the operations staff who signs in to the admin pages."""

    __tablename__ = "admin_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    password_hash: str = Field(max_length=200)  # Argon2id, in its own PHC string format
    role: AdminRole = Field(sa_type=_enum(AdminRole, "admin_role"))
    is_active: bool = True
    created_at: datetime = _utc()
    last_login_at: datetime | None = _utc(nullable=True)


class LoginAttempt(SQLModel, table=True):
    """One try to sign in, kept to slow down password guessing (per email and per address)."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        Index("ix_login_attempt_email_at", "email", "at"),
        Index("ix_login_attempt_ip_at", "ip", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320)
    ip: str = Field(max_length=45)
    succeeded: bool
    at: datetime = _utc()


class ForecastOutcome(SQLModel, table=True):
    """A forecast checked against what happened: the next purchase the plan predicted, and
    the day it came (recorded when the order is synced). The dashboard's live accuracy."""

    __tablename__ = "forecast_outcome"

    id: int | None = Field(default=None, primary_key=True)
    plan_id: int = Field(foreign_key="plan.id", index=True)
    product_id: int = Field(foreign_key="product.id")
    predicted_on: date  # the median next-purchase day
    low_on: date  # the 80 % interval
    high_on: date
    actual_on: date = Field(index=True)
    recorded_at: datetime = _utc()


class PlanRescore(SQLModel, table=True):
    """A plan whose forecast is owed a re-score: a customer answered one of its prompts.

    Answers are recorded at once (the plan's rest or snooze holds its next prompt back) and
    re-scored in bulk by the scheduler a few seconds later: one score for many answers costs
    a fiftieth of scoring each inside its customer's request.
    """

    __tablename__ = "plan_rescore"

    plan_id: int = Field(foreign_key="plan.id", primary_key=True)
    requested_at: datetime = _utc()
