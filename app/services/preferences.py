"""What customers change on their own plans page: pause, resume, stop, a fixed interval, and
unsubscribing from every reminder."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.models import (
    OPEN_PROMPT_STATUSES,
    ActorType,
    Customer,
    NextPrompt,
    Plan,
    PlanStatus,
    Product,
    Prompt,
)
from app.services.audit import record
from app.services.forecasting import reestimate
from app.services.prompts import cancel_customer_open, cancel_open

MIN_PREFERRED_DAYS = 1
MAX_PREFERRED_DAYS = 365


class IntervalOutOfRange(ValueError):
    """A fixed interval outside the product's own interval range (ops settings)."""

    def __init__(self, product: Product, days: int, low: int, high: int) -> None:
        self.low, self.high = low, high
        super().__init__(
            f"interval {days} days is outside {self.low}-{self.high} days for product "
            f"{product.external_id}"
        )


def interval_range(product: Product) -> tuple[int, int]:
    """The fixed intervals a customer (or ops) may choose for ``product``: its min and max
    interval, within 1..365 days."""
    low = max(MIN_PREFERRED_DAYS, product.min_interval_days)
    return low, max(low, min(MAX_PREFERRED_DAYS, product.max_interval_days))


class CustomerPlan(NamedTuple):
    plan: Plan
    product: Product
    coming: NextPrompt  # when the customer hears from the plan next


def customer_plans(session: Session, customer: Customer, now: datetime) -> list[CustomerPlan]:
    """The customer's plans of products they bought, each with its next prompt as of ``now``
    in the customer's calendar (``Plan.next_prompt``)."""
    rows = session.execute(
        select(Plan, Product)
        .join(Product, col(Product.id) == col(Plan.product_id))
        .where(col(Plan.customer_id) == customer.id, col(Plan.n_purchases) > 0)
        .order_by(col(Product.name), col(Product.id))
    ).all()
    open_prompts = {
        prompt.plan_id: prompt
        for prompt in session.scalars(
            select(Prompt).where(
                col(Prompt.customer_id) == customer.id,
                col(Prompt.status).in_(OPEN_PROMPT_STATUSES),
            )
        )
    }
    zone = ZoneInfo(customer.timezone)
    return [
        CustomerPlan(plan, product, plan.next_prompt(open_prompts.get(plan.id or 0), now, zone))
        for plan, product in rows
    ]


def change_plan(
    session: Session,
    customer: Customer,
    plan: Plan,
    now: datetime,
    status: PlanStatus | None = None,
    preferred_interval_days: int | bool | None = False,
    actor: tuple[ActorType, str] | None = None,
) -> bool:
    """Set a plan's status and/or fixed interval (``False``: leave the interval as it is);
    returns whether anything changed.

    Pausing or stopping cancels the plan's open prompt; a new interval only a prompt not yet
    sent (the email the customer has stays answerable). Every change re-schedules the plan; a
    change that changes nothing does nothing.
    A rest the customer's last answer set (``prompt_not_before``: a confirm, a skip, a snooze)
    still holds: a new interval or a resume must not bring a prompt the day after a reorder.
    Raises IntervalOutOfRange for an interval outside the product's range
    (``interval_range``). ``actor`` (audit log): the customer unless given (operations staff
    change plans from the admin pages).
    """
    before = {"status": plan.status.value, "preferred_interval_days": plan.preferred_interval_days}
    if preferred_interval_days is not False:
        days = None if preferred_interval_days is None else int(preferred_interval_days)
        if days is not None:
            product = session.get(Product, plan.product_id)
            assert product is not None
            low, high = interval_range(product)
            if not low <= days <= high:
                raise IntervalOutOfRange(product, days, low, high)
        plan.preferred_interval_days = days
    if status is not None:
        plan.status = status
    after = {"status": plan.status.value, "preferred_interval_days": plan.preferred_interval_days}
    if after == before:
        # Nothing to change (a second tab, a resume of an active plan, an unchanged interval
        # saved): the open prompt stays answerable, and there is nothing to audit.
        return False
    plan.updated_at = now
    if plan.status is not PlanStatus.ACTIVE:
        plan.prompt_on = None
        cancel_open(session, [plan.id], f"plan {plan.status.value}", now)  # type: ignore[list-item]
    else:
        cancel_open(session, [plan.id], "plan changed", now, unsent_only=True)  # type: ignore[list-item]
    actor_type, actor_name = actor or (ActorType.CUSTOMER, customer.external_id)
    record(session, now, actor_type, actor_name, "plan.change", "plan", str(plan.id), before,
           after)  # fmt: skip
    session.flush()
    today = now.astimezone(ZoneInfo(customer.timezone)).date()
    reestimate(session, {(plan.customer_id, plan.product_id)}, today, now)
    return True


def set_subscribed(session: Session, customer: Customer, subscribed: bool, now: datetime) -> None:
    """Unsubscribe from every reminder (cancelling open prompts), or come back."""
    if subscribed == (customer.unsubscribed_at is None):
        return
    customer.unsubscribed_at = None if subscribed else now
    customer.updated_at = now
    if not subscribed:
        assert customer.id is not None
        cancel_customer_open(session, customer.id, "unsubscribed", now)
    record(session, now, ActorType.CUSTOMER, customer.external_id,
           "subscribe" if subscribed else "unsubscribe", "customer", customer.external_id,
           None, {"subscribed": subscribed})  # fmt: skip
    session.flush()


def revoke_links(
    session: Session, customer: Customer, actor_type: ActorType, actor: str, now: datetime
) -> None:
    """Invalidate every link sent so far (a forwarded email, a changed address): plans-page and
    unsubscribe links carry the old version; open prompts are cancelled, so their links take
    no answer, and each plan is prompted again, at the current address, with new links."""
    customer.link_version += 1
    customer.updated_at = now
    assert customer.id is not None
    cancel_customer_open(session, customer.id, "links revoked", now)
    # Prompt links carry their prompt's nonce: a new one supersedes every link sent so far
    # (an answered prompt's page offers an undo and a plans-page link).
    session.execute(
        update(Prompt).where(col(Prompt.customer_id) == customer.id)
        .values(nonce=secrets.token_hex(16), updated_at=now)
    )  # fmt: skip
    record(session, now, actor_type, actor, "links.revoke", "customer", customer.external_id,
           {"link_version": customer.link_version - 1},
           {"link_version": customer.link_version})  # fmt: skip
    session.flush()
