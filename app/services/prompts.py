"""Prompts: scheduling them from plan forecasts, expiring them, cancelling moot ones.

Dispatching the due ones as emails is ``app.services.dispatch``. Every sweep here is safe to
run in several scheduler processes at once: a unique index allows one open prompt per plan.
"""

from __future__ import annotations

import logging
import secrets
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import col

from app.config import Settings, allowed_hours
from app.db import fetch_raw, placeholders, table_of
from app.models import (
    OPEN_PROMPT_STATUSES,
    ActorType,
    Customer,
    Outbox,
    OutboxKind,
    OutboxStatus,
    Plan,
    PlanStatus,
    Prompt,
    PromptStatus,
)
from app.services.audit import record
from app.services.plans import CHUNK, customer_zones
from app.services.timing import send_at

logger = logging.getLogger(__name__)

MAX_QUANTITY = 999
"""The most a customer can confirm on the prompt page (a case buyer's 150 must fit); a prompt
proposes the last order's quantity, at most this."""

EXPIRED_PAUSE_DAYS = 7
"""After an unanswered prompt expires, the plan is not prompted again for this many days."""
_OPEN = [s.value for s in OPEN_PROMPT_STATUSES]


def can_be_prompted() -> ColumnElement[bool]:
    """A customer the scheduler emails prompts (for a query joining ``customer``): subscribed,
    with an email address."""
    customer = table_of(Customer)
    return customer.c.unsubscribed_at.is_(None) & customer.c.email.is_not(None)


def schedule_prompts(session: Session, settings: Settings, now: datetime, limit: int = 2000) -> int:
    """Create a scheduled prompt for each active plan whose prompt day has (nearly) come.

    A plan gets one when its prompt day (``prompt_on``, but not before ``prompt_not_before``)
    is at most tomorrow in the customer's calendar and it has no open prompt; ``due_at`` is the
    customer's send hour on that day. Returns the number created; concurrent schedulers create
    each prompt once (a unique index allows one open prompt per plan).
    """
    horizon = (now + timedelta(days=2)).date()  # tomorrow in every time zone
    plan, customer = table_of(Plan), table_of(Customer)
    prompt = table_of(Prompt)
    has_open = (
        select(prompt.c.id)
        .where(prompt.c.plan_id == plan.c.id, prompt.c.status.in_(_OPEN))
        .exists()
    )
    rows = session.execute(
        select(
            plan.c.id,
            plan.c.customer_id,
            plan.c.prompt_on,
            plan.c.prompt_not_before,
            plan.c.last_quantity,
            plan.c.last_ordered_on,
            customer.c.timezone,
            customer.c.send_hour,
        )
        .join(customer, customer.c.id == plan.c.customer_id)
        .where(
            plan.c.status == PlanStatus.ACTIVE.value,
            plan.c.prompt_on <= horizon,
            or_(plan.c.prompt_not_before.is_(None), plan.c.prompt_not_before <= horizon),
            can_be_prompted(),
            ~has_open,
        )
        .order_by(plan.c.prompt_on)
        .limit(limit)
    ).all()
    hours = allowed_hours(settings.quiet_hours)
    zones: dict[str, ZoneInfo] = {}
    new: list[dict[str, Any]] = []
    for r in rows:
        zone = zones.setdefault(r.timezone, ZoneInfo(r.timezone))
        day = max(r.prompt_on, r.prompt_not_before or r.prompt_on)
        if day > now.astimezone(zone).date() + timedelta(days=1):
            continue
        hour = r.send_hour if r.send_hour is not None else settings.default_send_hour
        new.append(
            {
                "plan_id": r.id,
                "customer_id": r.customer_id,
                "status": PromptStatus.SCHEDULED.value,
                "due_at": send_at(day, hour, zone, now, hours),
                "nonce": secrets.token_hex(16),
                "quantity": min(r.last_quantity or 1, MAX_QUANTITY),
                "based_on_ordered_on": r.last_ordered_on,
                "created_at": now,
                "updated_at": now,
            }
        )
    if not new:
        return 0
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert(prompt) if dialect == "postgresql" else sqlite.insert(prompt)
    # Counted from RETURNING: a batched executemany's rowcount is not reliable on every driver.
    statement = insert.on_conflict_do_nothing().returning(prompt.c.id)
    created = len(session.execute(statement, new).all())
    logger.info("scheduled %d prompts", created)
    return created


def expire_prompts(session: Session, default_timezone: str, now: datetime) -> int:
    """Expire sent prompts nobody answered in time; their plans rest for a week."""
    rows = session.execute(
        update(Prompt)
        .where(col(Prompt.status) == PromptStatus.SENT, col(Prompt.expires_at) <= now)
        .values(status=PromptStatus.EXPIRED, updated_at=now)
        .returning(col(Prompt.plan_id), col(Prompt.customer_id))
    ).all()
    if rows:
        # The week's rest counts from the customer's own day.
        zones = customer_zones(session, {r.customer_id for r in rows}, default_timezone)
        by_rest: dict[date, list[int]] = {}
        for r in sorted(set(rows)):
            day = now.astimezone(zones[r.customer_id]).date()
            by_rest.setdefault(day + timedelta(days=EXPIRED_PAUSE_DAYS), []).append(r.plan_id)
        for rest_until, plan_ids in by_rest.items():
            for start in range(0, len(plan_ids), CHUNK):
                session.execute(
                    update(Plan)
                    .where(col(Plan.id).in_(plan_ids[start : start + CHUNK]))
                    .values(prompt_not_before=rest_until, updated_at=now)
                )
        logger.info("expired %d unanswered prompts", len(rows))
    return len(rows)


def cancel_superseded(session: Session, customer_ids: set[int], now: datetime) -> int:
    """Cancel open prompts made moot by a newer purchase of the same product.

    Called after a sync has refreshed the plans: a prompt based on an older last purchase
    than its plan's current one is cancelled; the next forecast reschedules the plan.
    """
    wanted = sorted(customer_ids)
    cancelled = 0
    for start in range(0, len(wanted), CHUNK):
        chunk = tuple(wanted[start : start + CHUNK])
        # Fixed fragments and placeholders only.
        sql = (
            "SELECT prompt.id, plan.id FROM prompt JOIN plan ON plan.id = prompt.plan_id"  # noqa: S608
            f" WHERE prompt.customer_id IN ({placeholders(session, len(chunk))})"
            " AND prompt.status IN ('scheduled', 'sending', 'sent')"
            " AND plan.last_ordered_on > COALESCE(prompt.based_on_ordered_on, plan.last_ordered_on)"
        )
        found = fetch_raw(session, sql, chunk)
        if found:
            session.execute(
                update(Prompt)
                .where(col(Prompt.id).in_([r[0] for r in found]), col(Prompt.status).in_(_OPEN))
                .values(status=PromptStatus.CANCELLED, cancel_reason="ordered", updated_at=now)
            )
            # The prompt day was computed before this purchase; re-estimation sets a new one.
            session.execute(
                update(Plan)
                .where(col(Plan.id).in_([r[1] for r in found]))
                .values(prompt_on=None, updated_at=now)
            )
            cancelled += len(found)
    if cancelled:
        logger.info("cancelled %d prompts: the customers ordered anyway", cancelled)
    return cancelled


def cancel_open(
    session: Session, plan_ids: list[int], reason: str, now: datetime, unsent_only: bool = False
) -> int:
    """Cancel the open prompts of ``plan_ids`` (paused, stopped); with ``unsent_only``, only
    those not yet sent (a re-timed plan: the email the customer has stays answerable, and no
    second one follows it)."""
    return sum(
        _cancel(session, col(Prompt.plan_id).in_(plan_ids[start : start + CHUNK]), reason, now,
                unsent_only)
        for start in range(0, len(plan_ids), CHUNK)
    )  # fmt: skip


def cancel_customer_open(
    session: Session, customer_id: int, reason: str, now: datetime, unsent_only: bool = False
) -> int:
    """``cancel_open`` for every plan of one customer (unsubscribed, links revoked, a new time
    zone)."""
    return _cancel(session, col(Prompt.customer_id) == customer_id, reason, now, unsent_only)


def _cancel(
    session: Session, which: ColumnElement[bool], reason: str, now: datetime, unsent_only: bool
) -> int:
    statuses = [PromptStatus.SCHEDULED.value] if unsent_only else _OPEN
    emails = session.execute(
        update(Prompt)
        .where(which, col(Prompt.status).in_(statuses))
        .values(status=PromptStatus.CANCELLED, cancel_reason=reason, updated_at=now)
        .returning(col(Prompt.outbox_id))
    ).scalars().all()  # fmt: skip
    _withdraw_emails(session, sorted({e for e in emails if e is not None}), now)
    return len(emails)


def _withdraw_emails(session: Session, outbox_ids: list[int], now: datetime) -> None:
    """Withdraw the prompt emails among ``outbox_ids`` still waiting to go (SMTP may be
    failing for hours) whose prompts are all closed: an unsubscribed customer gets no more,
    and an old address no email whose links were revoked."""
    outbox, prompt = table_of(Outbox), table_of(Prompt)
    still_open = (
        select(prompt.c.id)
        .where(prompt.c.outbox_id == outbox.c.id, prompt.c.status.in_(_OPEN))
        .exists()
    )
    for start in range(0, len(outbox_ids), CHUNK):
        session.execute(
            update(outbox)
            .where(outbox.c.id.in_(outbox_ids[start : start + CHUNK]),
                   outbox.c.kind == OutboxKind.EMAIL.value,
                   outbox.c.status == OutboxStatus.PENDING.value,
                   ~still_open)
            .values(status=OutboxStatus.CANCELLED.value, updated_at=now)
        )  # fmt: skip


def local_today(zone: str, now: datetime) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


def send_now(
    session: Session,
    settings: Settings,
    now: datetime,
    actor: str,
    customer: Customer | None = None,
) -> int:
    """An operator's override: schedule the prompts whose day has (nearly) come, then make the
    scheduled ones (of ``customer``, or of everyone) due now, whatever their send hour and the
    quiet hours. The weekly limit still holds at dispatch. Returns how many were brought
    forward; audited."""
    while schedule_prompts(session, settings, now) > 0:
        pass
    prompt = table_of(Prompt)
    brought = update(prompt).where(prompt.c.status == PromptStatus.SCHEDULED, prompt.c.due_at > now)
    if customer is not None:
        brought = brought.where(prompt.c.customer_id == customer.id)
    n = int(session.execute(brought.values(due_at=now, updated_at=now)).rowcount)  # type: ignore[attr-defined]
    record(session, now, ActorType.USER, actor, "prompts.send_now",
           "customer" if customer else "shop", customer.external_id if customer else "*",
           None, {"prompts": n})  # fmt: skip
    logger.info("%d scheduled prompts made due now by %s", n, actor)
    return n
