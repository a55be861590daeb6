"""Customers' answers to prompts, and their own plan settings: the service behind the links.

Every answer is evidence for the forecaster (a skip: still had stock that day; a snooze of n
days: at least n more days; a confirm: ran out about now) and reschedules the plan. Acting twice
gives the first result again: each answer is a guarded ``UPDATE ... WHERE status = 'sent'``, so
two clicks racing each other cannot both act, and a reorder is unique per prompt.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import col

from app.config import Settings, allowed_hours
from app.db import Prepared, table_of
from app.models import (
    ActorType,
    Customer,
    OutboxKind,
    Plan,
    PlanStatus,
    Product,
    Prompt,
    PromptStatus,
    Reorder,
    ReorderStatus,
)
from app.services import outbox
from app.services.audit import record
from app.services.forecasting import reestimate, request_rescore
from app.services.plans import lock_customers
from app.services.reorders import reorder_event_data
from app.services.timing import learned_send_hour
from app.services.webhooks import event_body

logger = logging.getLogger(__name__)

SNOOZE_CHOICES = (3, 7, 14)
SKIP_REST_DAYS = 7
"""After "skip this time", the plan is not prompted again for at least this many days."""
RECENT_ANSWERS = 20
"""A customer's send hour is learned from this many of their latest answers."""


class Action(enum.StrEnum):
    CONFIRM = "confirm"
    SKIP = "skip"
    SNOOZE = "snooze"
    STOP = "stop"
    UNDO = "undo"


_ANSWERED = {
    Action.CONFIRM: PromptStatus.CONFIRMED,
    Action.SKIP: PromptStatus.SKIPPED,
    Action.SNOOZE: PromptStatus.SNOOZED,
    Action.STOP: PromptStatus.STOPPED,
}


@dataclass
class PromptView:
    """A prompt with everything its page shows."""

    prompt: Prompt
    plan: Plan
    product: Product
    customer: Customer
    reorder: Reorder | None

    def can_undo(self, now: datetime) -> bool:
        r = self.reorder
        return r is not None and r.status is ReorderStatus.PENDING and now < r.handoff_at

    def handed_off(self, now: datetime) -> bool:
        """Whether the confirm stands for good: its reorder has passed its undo window (or the
        shop has it already) and has not been cancelled."""
        r = self.reorder
        return r is not None and r.status is not ReorderStatus.CANCELLED and not self.can_undo(now)


# The statements of every link page and answer, built once: constructing a statement costs
# more than SQLite takes to run it, and these run for every click in every email. The writes
# run on the driver's cursor (``Prepared``), for the same reason.
_FIND_PROMPT = (
    select(Prompt, Plan, Product, Customer, Reorder)
    .join(Plan, col(Plan.id) == col(Prompt.plan_id))
    .join(Product, col(Product.id) == col(Plan.product_id))
    .join(Customer, col(Customer.id) == col(Prompt.customer_id))
    .outerjoin(Reorder, col(Reorder.prompt_id) == col(Prompt.id))
    .where(col(Prompt.id) == bindparam("prompt_id"))
)
_FIND_PROMPT_FRESH = _FIND_PROMPT.execution_options(populate_existing=True)
_prompt, _plan, _customer = table_of(Prompt), table_of(Plan), table_of(Customer)
_ANSWER_PROMPT = Prepared(
    update(_prompt)
    .where(_prompt.c.id == bindparam("prompt_id"), _prompt.c.status == PromptStatus.SENT)
    .values({name: bindparam(name) for name in (
        "status", "answered_at", "answered_on", "answered_quantity", "snooze_days", "updated_at")})
)  # fmt: skip
# Only the columns an answer decides: the plan's forecast may have been re-scored since it
# was read (an order synced meanwhile), and that must stand.
_REST_PLAN = Prepared(
    update(_plan)
    .where(_plan.c.id == bindparam("plan_id"))
    .values(prompt_not_before=bindparam("prompt_not_before"), updated_at=bindparam("updated_at"))
)
_STOP_PLAN = Prepared(
    update(_plan)
    .where(_plan.c.id == bindparam("plan_id"))
    .values(status=PlanStatus.STOPPED, prompt_on=None, updated_at=bindparam("updated_at"))
)
_reorder = table_of(Reorder)
_INSERT_REORDER = Prepared(
    insert(_reorder)
    .values({c.name: bindparam(c.name) for c in _reorder.columns if c.name != "id"})
    .returning(_reorder.c.id)
)
_WITHDRAW_REORDER = Prepared(
    delete(_reorder).where(
        _reorder.c.id == bindparam("reorder_id"),
        _reorder.c.status == ReorderStatus.PENDING,
        _reorder.c.handoff_at > bindparam("now"),
    )
)
_REOPEN_PROMPT = Prepared(
    update(_prompt)
    .where(_prompt.c.id == bindparam("prompt_id"), _prompt.c.status == PromptStatus.CONFIRMED)
    .values(status=PromptStatus.SENT, answered_at=None, answered_on=None,
            answered_quantity=None, updated_at=bindparam("updated_at"))
)  # fmt: skip
_latest_answers = (
    select(_prompt.c.customer_id, _prompt.c.answered_at,
           func.row_number().over(partition_by=_prompt.c.customer_id,
                                  order_by=_prompt.c.answered_at.desc()).label("nth"))
    .where(_prompt.c.customer_id.in_(bindparam("customer_ids", expanding=True)),
           _prompt.c.answered_at.is_not(None))
    .subquery()
)  # fmt: skip
_ANSWER_TIMES = select(_latest_answers.c.customer_id, _latest_answers.c.answered_at).where(
    _latest_answers.c.nth <= RECENT_ANSWERS
)
_CUSTOMER_SEND_HOURS = select(_customer.c.id, _customer.c.send_hour).where(
    _customer.c.id.in_(bindparam("customer_ids", expanding=True))
)
_SET_SEND_HOUR = (
    update(_customer)
    .where(_customer.c.id == bindparam("customer_id"))
    .values(send_hour=bindparam("send_hour"))
)


def find_prompt(session: Session, prompt_id: int, fresh: bool = False) -> PromptView | None:
    """The prompt with its plan, product, customer and reorder (one query: every link page
    starts here). ``fresh`` re-reads rows the session has loaded already."""
    query = _FIND_PROMPT_FRESH if fresh else _FIND_PROMPT
    row = session.execute(query, {"prompt_id": prompt_id}).first()
    return None if row is None else PromptView(*row)


def answer(
    session: Session,
    settings: Settings,
    view: PromptView,
    action: Action,
    now: datetime,
    quantity: int | None = None,
    snooze_days: int | None = None,
) -> PromptView:
    """Apply the customer's ``action`` to a sent prompt; returns the prompt as it now stands.

    A prompt that is no longer ``sent`` (answered already, expired, cancelled; perhaps since
    ``view`` was read) is returned as it is now: the page shows what happened first. UNDO
    withdraws a confirm whose reorder is still inside its undo window and opens the prompt
    again. The plan's rest (or snooze) holds its next prompt back at once; its forecast is
    re-scored with the new evidence by the scheduler (``request_rescore``), which also learns
    the customer's send hour from the answer's time (``learn_send_hours``).

    Writes are plain statements on the driver's cursor (``Prepared``) on rows already read
    (no reload, no unit-of-work flush): on SQLite every answer holds the one write lock while
    it writes, so the less it does in between the better.
    """
    if action is Action.UNDO:
        return _undo(session, view, now)
    prompt, plan, product, customer = view.prompt, view.plan, view.product, view.customer
    today = now.astimezone(ZoneInfo(customer.timezone)).date()
    answered: dict[str, Any] = {
        "status": _ANSWERED[action],
        "answered_at": now,
        "answered_on": today,
        "answered_quantity": (quantity or prompt.quantity) if action is Action.CONFIRM else None,
        "snooze_days": snooze_days if action is Action.SNOOZE else None,
        "updated_at": now,
    }
    if not _ANSWER_PROMPT.execute(session, answered | {"prompt_id": prompt.id}):
        return _as_it_is_now(session, view)
    _loaded(prompt, answered)
    # The re-score request before the plan's row: the sweep holds requests, then plans; the
    # same order here keeps the two from deadlocking (PostgreSQL).
    assert plan.id is not None
    request_rescore(session, plan.id, now)
    before = {"status": plan.status.value, "prompt_not_before": _iso(plan.prompt_not_before)}
    if action is Action.STOP:
        _STOP_PLAN.execute(session, {"plan_id": plan.id, "updated_at": now})
        _loaded(plan, {"status": PlanStatus.STOPPED, "prompt_on": None, "updated_at": now})
    else:
        if action is Action.CONFIRM:
            view.reorder = _confirm(session, settings, view, now)
            rest_days = max(product.min_interval_days, 1)
        else:
            rest_days = (
                SKIP_REST_DAYS if action is Action.SKIP else snooze_days or SNOOZE_CHOICES[0]
            )
        rest = {"prompt_not_before": today + timedelta(days=rest_days), "updated_at": now}
        _REST_PLAN.execute(session, rest | {"plan_id": plan.id})
        _loaded(plan, rest)
    record(session, now, ActorType.CUSTOMER, customer.external_id, f"prompt.{action.value}",
           "plan", str(plan.id), before,
           {"status": plan.status.value, "prompt_not_before": _iso(plan.prompt_not_before),
            "prompt_id": prompt.id, "quantity": prompt.answered_quantity,
            "snooze_days": prompt.snooze_days})  # fmt: skip
    logger.info("prompt %s answered %s by customer %s", prompt.id, action.value, customer.id)
    return view


def _as_it_is_now(session: Session, view: PromptView) -> PromptView:
    """``view`` read again inside the writing transaction (what another request did since)."""
    return find_prompt(session, view.prompt.id or 0, fresh=True) or view


def _loaded(record: Any, values: dict[str, Any]) -> None:
    """Show ``values``, just written with a statement, on the loaded ``record`` (no reload)."""
    for name, value in values.items():
        set_committed_value(record, name, value)


def _confirm(session: Session, settings: Settings, view: PromptView, now: datetime) -> Reorder:
    prompt = view.prompt
    reorder = Reorder(
        prompt_id=prompt.id,  # type: ignore[arg-type]
        plan_id=view.plan.id,  # type: ignore[arg-type]
        customer_id=view.customer.id,  # type: ignore[arg-type]
        product_id=view.product.id,  # type: ignore[arg-type]
        quantity=prompt.answered_quantity or prompt.quantity,
        status=ReorderStatus.PENDING,
        confirmed_at=now,
        handoff_at=now + timedelta(minutes=settings.undo_minutes),
        created_at=now,
        updated_at=now,
    )
    # A plain insert of the new row (no unit-of-work flush); the page shows it as built.
    values = {c.name: getattr(reorder, c.name) for c in _reorder.columns if c.name != "id"}
    reorder.id = _INSERT_REORDER.scalar(session, values)
    if settings.webhook_url:
        _enqueue_event(session, settings, "reorder.confirmed", view, reorder, now,
                       available_at=reorder.handoff_at)  # fmt: skip
    return reorder


def _enqueue_event(
    session: Session,
    settings: Settings,
    event_type: str,
    view: PromptView,
    reorder: Reorder,
    now: datetime,
    available_at: datetime | None = None,
) -> None:
    body = event_body(event_type, reorder_event_data(view.customer, view.product, reorder), now)
    outbox.enqueue(
        session, OutboxKind.WEBHOOK, f"msg_{event_type}_{reorder.id}", event_type,
        settings.webhook_url or "", body, now, available_at=available_at,
        customer_id=view.customer.id,
    )  # fmt: skip


def _undo(session: Session, view: PromptView, now: datetime) -> PromptView:
    # Read again, now inside the writing transaction: the page read without the lock, and the
    # reorder may have been cancelled, fulfilled or undone since.
    view = _as_it_is_now(session, view)
    reorder = view.reorder
    if reorder is None or not view.can_undo(now):
        return view
    # Never handed off, so no trace is owed to the backend: the reorder goes (the audit log
    # keeps the record) and a new confirm makes a new one. Guarded: only while still pending
    # and inside its window.
    if not _WITHDRAW_REORDER.execute(session, {"reorder_id": reorder.id, "now": now}):
        return _as_it_is_now(session, view)
    # Still inside the undo window, so its webhook (due at hand-off) has not been claimed.
    outbox.withdraw(session, f"msg_reorder.confirmed_{reorder.id}", now)
    session.expunge(reorder)
    reopened = {"status": PromptStatus.SENT, "answered_at": None, "answered_on": None,
                "answered_quantity": None, "updated_at": now}  # fmt: skip
    _REOPEN_PROMPT.execute(session, {"prompt_id": view.prompt.id, "updated_at": now})
    _loaded(view.prompt, reopened)
    plan = view.plan
    assert plan.id is not None
    request_rescore(session, plan.id, now)  # the send hour is learned again without it
    unrest = {"prompt_not_before": None, "updated_at": now}
    _REST_PLAN.execute(session, unrest | {"plan_id": plan.id})
    _loaded(plan, unrest)
    record(session, now, ActorType.CUSTOMER, view.customer.external_id, "prompt.undo", "plan",
           str(plan.id), {"reorder_id": reorder.id, "status": "pending"},
           {"reorder_id": reorder.id, "status": "withdrawn"})  # fmt: skip
    # The confirm is no longer evidence: the forecast it moved goes back at once, so the page
    # (and the next prompt) never show a run-out reckoned from a delivery that is not coming.
    # Rare enough to score here, where answers leave it to the sweep.
    today = now.astimezone(ZoneInfo(view.customer.timezone)).date()
    reestimate(session, {(plan.customer_id, plan.product_id)}, today, now)
    session.refresh(plan)
    view.reorder = None
    return view


def learn_send_hours(session: Session, settings: Settings, zones: Mapping[int, str]) -> int:
    """Set the send hour of each customer in ``zones`` (id: time zone) to the local hour they
    usually answer at, from their latest answers (``timing.learned_send_hour``), or back to
    the default when too few answers are left (one was undone); returns how many changed.
    Run by the scheduler after answers, with their re-scores."""
    if not zones:
        return 0
    lock_customers(session, zones)  # in id order, as an order sync does
    ids = {"customer_ids": sorted(zones)}
    current = {r.id: r.send_hour for r in session.execute(_CUSTOMER_SEND_HOURS, ids)}
    hours: dict[int, list[int]] = {customer_id: [] for customer_id in current}
    for r in session.execute(_ANSWER_TIMES, ids):
        hours[r.customer_id].append(r.answered_at.astimezone(ZoneInfo(zones[r.customer_id])).hour)
    allowed = allowed_hours(settings.quiet_hours)
    changed = []
    for customer_id, answered in hours.items():
        hour = learned_send_hour(answered, allowed)
        if hour != current[customer_id]:
            changed.append({"customer_id": customer_id, "send_hour": hour})
    if changed:
        session.execute(_SET_SEND_HOUR, changed)
    return len(changed)


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None
