"""What the admin pages read (no writes here: changes go through ``app.services``)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, String, case, cast, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.models import (
    OPEN_PROMPT_STATUSES,
    AuditLog,
    Customer,
    ForecastOutcome,
    NextPrompt,
    Order,
    OrderLine,
    OrderStatus,
    Outbox,
    OutboxStatus,
    Plan,
    PlanRescore,
    PlanStatus,
    Product,
    Prompt,
    PromptStatus,
)
from app.services.prompts import can_be_prompted

PAGE_SIZE = 50


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    pages: int
    total: int


def paginate(session: Session, query: Select[Any], page: int) -> Page:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(-(-total // PAGE_SIZE), 1)
    page = min(max(page, 1), pages)
    items = list(session.scalars(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return Page(items, page, pages, total)


@dataclass(frozen=True)
class AnswerRates:
    """Prompts sent in the last ``days`` days by what became of them: the outcomes add up to
    ``sent``."""

    days: int
    confirmed: int
    skipped: int
    snoozed: int
    stopped: int
    expired: int
    cancelled: int  # after sending: the customer ordered anyway, unsubscribed, or was stopped
    awaiting: int  # sent, not answered yet (nor expired)

    @property
    def sent(self) -> int:
        return (self.confirmed + self.skipped + self.snoozed + self.stopped + self.expired
                + self.cancelled + self.awaiting)  # fmt: skip

    def rate(self, count: int) -> str:
        return f"{100 * count / self.sent:.0f} %" if self.sent else "–"


def answer_rates(session: Session, now: datetime, days: int) -> AnswerRates:
    """Prompts sent in the last ``days`` days and what became of them."""
    # Grouped by an expression, not the column: otherwise SQLite walks the whole status index
    # to group, instead of the sent_at range of the covering (sent_at, status) index.
    status = cast(col(Prompt.status), String)
    rows = session.execute(
        select(status, func.count())
        .where(col(Prompt.sent_at) >= now - timedelta(days=days))
        .group_by(status)
    ).all()
    counts = {PromptStatus(value): n for value, n in rows}
    return AnswerRates(
        days,
        counts.get(PromptStatus.CONFIRMED, 0),
        counts.get(PromptStatus.SKIPPED, 0),
        counts.get(PromptStatus.SNOOZED, 0),
        counts.get(PromptStatus.STOPPED, 0),
        counts.get(PromptStatus.EXPIRED, 0),
        counts.get(PromptStatus.CANCELLED, 0),
        # Only a sent prompt has a sent_at (an undone answer reopens it as sent).
        sum(counts.get(s, 0) for s in OPEN_PROMPT_STATUSES),
    )


@dataclass(frozen=True)
class ActivePlans:
    promptable: int
    unreachable: int  # active, but their customer unsubscribed or has no email address


def active_plans(session: Session) -> ActivePlans:
    """Active plans, apart by whether their customer can be prompted at all."""
    promptable = case((can_be_prompted(), 1), else_=0)
    row = session.execute(
        select(func.count(), func.sum(promptable))
        .select_from(Plan)
        .join(Customer, col(Customer.id) == col(Plan.customer_id))
        .where(col(Plan.status) == PlanStatus.ACTIVE)
    ).one()
    total, reachable = int(row[0]), int(row[1] or 0)
    return ActivePlans(reachable, total - reachable)


def prompts_per_day(session: Session, today: date, days: int = 30) -> list[int]:
    """Active plans by the day of their next prompt (``Plan.next_prompt``) for the next
    ``days`` days, overdue ones today; a plan whose prompt is out already is not due again,
    nor one whose customer cannot be prompted (unsubscribed, or no email address)."""
    end = today + timedelta(days=days)
    rest = col(Plan.prompt_not_before)
    day = case((rest > col(Plan.prompt_on), rest), else_=col(Plan.prompt_on))
    asked = (
        select(col(Prompt.id))
        .where(
            col(Prompt.plan_id) == col(Plan.id),
            col(Prompt.status).in_([PromptStatus.SENDING, PromptStatus.SENT]),
        )
        .exists()
    )
    rows = session.execute(
        select(day, func.count())
        .select_from(Plan)
        .join(Customer, col(Customer.id) == col(Plan.customer_id))
        .where(
            col(Plan.status) == PlanStatus.ACTIVE,
            col(Plan.prompt_on) < end,
            ~asked,
            can_be_prompted(),
        )
        .group_by(day)
    ).all()
    counts = [0] * days
    for on, n in rows:
        if on is not None and (on - today).days < days:
            counts[max((on - today).days, 0)] += n
    return counts


def rescores_waiting(session: Session) -> int:
    """Plans answered since the scheduler's last re-score sweep (a growing number means the
    scheduler is not running)."""
    return session.scalar(select(func.count()).select_from(PlanRescore)) or 0


def unrenderable_prompts(session: Session) -> int:
    """Scheduled prompts whose email failed to render at least once (the scheduler's log has
    why): a bug or bad stored data, retried with a growing wait. Read through the (status,
    due_at) index: scheduled prompts are those due within about two days."""
    query = select(func.count()).where(
        col(Prompt.status) == PromptStatus.SCHEDULED, col(Prompt.render_failures) > 0
    )
    return session.scalar(query) or 0


def deliveries(status: OutboxStatus | None, kind: str | None) -> Select[Any]:
    query = select(Outbox).order_by(col(Outbox.id).desc())
    if status is not None:
        query = query.where(col(Outbox.status) == status)
    if kind:
        query = query.where(col(Outbox.kind) == kind)
    return query


def audit_entries(actor: str | None, entity_type: str | None, action: str | None) -> Select[Any]:
    query = select(AuditLog).order_by(col(AuditLog.id).desc())
    if actor:
        query = query.where(col(AuditLog.actor).contains(actor, autoescape=True))
    if entity_type:
        query = query.where(col(AuditLog.entity_type) == entity_type)
    if action:
        query = query.where(col(AuditLog.action) == action)
    return query


def customers(search: str | None) -> Select[Any]:
    """Customers whose email, name or external id contains every word of ``search``
    (case-insensitive; words split at any white space, the full-width space of a Japanese
    keyboard too, so "渡辺　美咲" finds "渡辺 美咲" and "渡辺美咲" alike)."""
    query = select(Customer).order_by(col(Customer.id))
    for word in (search or "").lower().split():
        # autoescape: a "%" or "_" typed in the search box is that character, not a wildcard.
        query = query.where(
            func.lower(col(Customer.email)).contains(word, autoescape=True)
            | func.lower(col(Customer.name)).contains(word, autoescape=True)
            | func.lower(col(Customer.external_id)).contains(word, autoescape=True)
        )
    return query


@dataclass(frozen=True)
class PlanHistory:
    """One plan on the customer page: its forecast, purchases, prompts with answers (newest
    first), and when the customer hears from it next."""

    plan: Plan
    product: Product
    purchases: list[tuple[date, int]]
    prompts: list[Prompt]
    coming: NextPrompt


def customer_plans(session: Session, customer: Customer, now: datetime) -> list[PlanHistory]:
    """The customer's plans; their next prompts as of ``now`` in the customer's calendar."""
    plans = session.execute(
        select(Plan, Product)
        .join(Product, col(Product.id) == col(Plan.product_id))
        .where(col(Plan.customer_id) == customer.id)
        .order_by(col(Product.external_id))
    ).all()
    purchases: dict[int, list[tuple[date, int]]] = {}
    rows = session.execute(
        select(col(OrderLine.product_id), col(Order.ordered_on), func.sum(OrderLine.quantity))
        .join(Order, col(Order.id) == col(OrderLine.order_id))
        .where(col(Order.customer_id) == customer.id, col(Order.status) == OrderStatus.PLACED)
        .group_by(col(OrderLine.product_id), col(Order.ordered_on))
        .order_by(col(Order.ordered_on))
    )
    for product_id, day, quantity in rows:
        purchases.setdefault(product_id, []).append((day, int(quantity)))
    prompts: dict[int, list[Prompt]] = {}
    for prompt in session.scalars(
        select(Prompt).where(col(Prompt.customer_id) == customer.id).order_by(col(Prompt.id).desc())
    ):
        prompts.setdefault(prompt.plan_id, []).append(prompt)
    zone = ZoneInfo(customer.timezone)

    def history(plan: Plan, product: Product) -> PlanHistory:
        asked = prompts.get(plan.id or 0, [])
        open_prompt = next((p for p in asked if p.status in OPEN_PROMPT_STATUSES), None)
        return PlanHistory(plan, product, purchases.get(product.id or 0, []), asked,
                           plan.next_prompt(open_prompt, now, zone))  # fmt: skip

    return [history(plan, product) for plan, product in plans]


@dataclass(frozen=True)
class Accuracy:
    """Forecasts against the purchases that followed them, over recent days."""

    days: int
    n: int
    median_abs_error_days: float | None
    mean_error_days: float | None  # positive: purchases came later than predicted
    within_interval: float | None  # share inside the 80 % interval (calibrated: ~0.8)


def forecast_accuracy(session: Session, today: date, days: int = 90) -> Accuracy:
    rows = session.execute(
        select(
            col(ForecastOutcome.predicted_on),
            col(ForecastOutcome.low_on),
            col(ForecastOutcome.high_on),
            col(ForecastOutcome.actual_on),
        ).where(col(ForecastOutcome.actual_on) >= today - timedelta(days=days))
    ).all()
    if not rows:
        return Accuracy(days, 0, None, None, None)
    errors = sorted((actual - predicted).days for predicted, _, _, actual in rows)
    inside = sum(low <= actual <= high for _, low, high, actual in rows)
    return Accuracy(
        days,
        len(rows),
        float(statistics.median(abs(e) for e in errors)),
        statistics.fmean(errors),
        inside / len(rows),
    )


@dataclass(frozen=True)
class Conversion:
    product: str
    first_buyers: int
    came_back: int

    @property
    def rate(self) -> str:
        return f"{100 * self.came_back / self.first_buyers:.0f} %" if self.first_buyers else "–"


def first_to_second(session: Session, today: date, after_days: int = 90) -> list[Conversion]:
    """Per product: customers whose first purchase is at least ``after_days`` old, and how
    many of them bought it a second time."""
    rows = session.execute(
        select(
            col(Product.external_id),
            func.count(),
            func.sum(case((col(Plan.n_purchases) >= 2, 1), else_=0)),
        )
        .join(Product, col(Product.id) == col(Plan.product_id))
        .where(col(Plan.first_ordered_on) <= today - timedelta(days=after_days))
        .group_by(col(Product.external_id))
        .order_by(col(Product.external_id))
    ).all()
    return [Conversion(product, int(n), int(back or 0)) for product, n, back in rows]
