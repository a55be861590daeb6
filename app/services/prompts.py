"""Prompts: scheduling them from plan forecasts, dispatching due ones as emails, expiring them.

Every sweep here is safe to run in several scheduler processes at once. Prompt rows are claimed
with a guarded ``UPDATE ... RETURNING`` that sets ``status = 'sending'`` with a lease (on
PostgreSQL choosing rows with ``FOR UPDATE SKIP LOCKED``); a claim whose lease ran out (its
scheduler died) is claimed again. The email is written to the outbox in the same transaction
that marks the prompts sent, and only if this worker still holds the claim.
"""

from __future__ import annotations

import logging
import secrets
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import col

from app.config import Settings, allowed_hours
from app.db import fetch_raw, placeholders, table_of
from app.links.tokens import Purpose
from app.links.urls import link
from app.mail.render import Envelope, PromptItem, prompt_message, reason_sentence
from app.models import (
    OPEN_PROMPT_STATUSES,
    ActorType,
    Customer,
    OutboxKind,
    Plan,
    PlanStatus,
    Product,
    Prompt,
    PromptStatus,
)
from app.services import outbox
from app.services.audit import record
from app.services.plans import CHUNK, lock_customers
from app.services.timing import send_at

logger = logging.getLogger(__name__)

GROUP_WINDOW = timedelta(days=3)
"""A customer's prompts due within this window of the first go out together in one email."""
WEEK = timedelta(days=7)
EXPIRED_PAUSE_DAYS = 7
"""After an unanswered prompt expires, the plan is not prompted again for this many days."""
_OPEN = [s.value for s in OPEN_PROMPT_STATUSES]


@dataclass(frozen=True)
class DispatchResult:
    emails: int = 0
    prompts: int = 0
    postponed: int = 0
    cancelled: int = 0


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
            customer.c.unsubscribed_at.is_(None),
            customer.c.email.is_not(None),
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
                "quantity": r.last_quantity or 1,
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


def claim_due_prompts(
    session: Session, worker: str, now: datetime, limit: int, lease: timedelta
) -> list[int]:
    """Claim up to ``limit`` due prompts (or ones whose claim's lease ran out).

    Returns the customer ids they belong to, each once.
    """
    prompt = table_of(Prompt)
    due = (
        select(prompt.c.id)
        .where(
            or_(
                and_(prompt.c.status == PromptStatus.SCHEDULED.value, prompt.c.due_at <= now),
                and_(prompt.c.status == PromptStatus.SENDING.value, prompt.c.lease_until < now),
            )
        )
        .order_by(prompt.c.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = session.execute(
        update(prompt)
        .where(prompt.c.id.in_(due.scalar_subquery()))
        .values(
            status=PromptStatus.SENDING.value,
            claimed_by=worker,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(prompt.c.customer_id)
    ).all()
    return sorted({r.customer_id for r in rows})


def send_claimed(
    session: Session,
    settings: Settings,
    worker: str,
    customer_ids: list[int],
    now: datetime,
    lease: timedelta,
) -> DispatchResult:
    """Email each customer their claimed prompts (and any others due soon) in one message.

    Honours the weekly limit: over it, the prompts go back to scheduled for when the oldest
    email of the week leaves the window. Nothing is written for prompts whose claim this
    worker no longer holds.

    Commits the claims and these decisions before it renders the emails, so that no
    transaction is open meanwhile (on SQLite rendering a batch inside one held the write lock
    for a tenth of a second, and every delivery and answer waited). The weekly limit is then
    checked again, under the customers' locks, before the prompts are marked sent with their
    emails in the caller's transaction.
    """
    if not customer_ids:
        return DispatchResult()
    ready, postponed, cancelled = _sort_claimed(session, settings, worker, customer_ids, now,
                                                lease)  # fmt: skip
    session.commit()
    host = urlsplit(settings.base_url).hostname or "localhost"
    outgoing = []
    for items in ready:
        message_id = f"prompt-{items[0]['id']}.{items[0]['nonce']}@{host}"
        outgoing.append(_Outgoing(items, message_id, _build(settings, items, message_id, now)))
    if not outgoing:
        return DispatchResult(0, 0, postponed, cancelled)
    # Another dispatcher may have emailed one of these customers since the decisions.
    lock_customers(session, [o.items[0]["customer_id"] for o in outgoing])
    recent = _recent_emails(session, [o.items[0]["customer_id"] for o in outgoing], now)
    allowed = []
    for o in outgoing:
        sent_times = recent.get(o.items[0]["customer_id"], [])
        if len(sent_times) >= settings.max_prompts_per_week:
            postponed += _postpone(session, worker, o.ids, now, sent_times)
        else:
            allowed.append(o)
    try:
        with session.begin_nested():
            _send_all(session, worker, allowed, now)
        sent = allowed
    except _LostClaim:
        # Rare (this worker's lease ran out mid-batch): go customer by customer.
        sent = [o for o in allowed if _send_alone(session, worker, o, now)]
    return DispatchResult(len(sent), sum(len(o.items) for o in sent), postponed, cancelled)


def _sort_claimed(
    session: Session,
    settings: Settings,
    worker: str,
    customer_ids: list[int],
    now: datetime,
    lease: timedelta,
) -> tuple[list[list[dict[str, Any]]], int, int]:
    """Claim the customers' other prompts due soon, cancel those of customers who no longer
    take email and postpone those over the weekly limit; returns each remaining customer's
    prompts, and how many were postponed and cancelled."""
    prompt = table_of(Prompt)
    # Two dispatchers handling the same customer take turns, so the weekly count is exact.
    lock_customers(session, customer_ids)
    # Pull in the customer's other prompts due soon: one email instead of several.
    session.execute(
        update(prompt)
        .where(
            prompt.c.customer_id.in_(customer_ids),
            prompt.c.status == PromptStatus.SCHEDULED.value,
            prompt.c.due_at <= now + GROUP_WINDOW,
        )
        .values(status=PromptStatus.SENDING.value, claimed_by=worker, lease_until=now + lease)
    )
    claimed = _load_claimed(session, worker, customer_ids)
    recent = _recent_emails(session, customer_ids, now)
    postponed = cancelled = 0
    ready = []
    for customer_id, items in claimed.items():
        customer = items[0]
        ids = [row["id"] for row in items]
        if customer["unsubscribed_at"] is not None or not customer["email"]:
            cancelled += _finish(session, worker, ids, now, status=PromptStatus.CANCELLED,
                                 cancel_reason="unsubscribed")  # fmt: skip
        elif len(recent.get(customer_id, [])) >= settings.max_prompts_per_week:
            postponed += _postpone(session, worker, ids, now, recent[customer_id])
        else:
            ready.append(items)
    return ready, postponed, cancelled


def _postpone(
    session: Session, worker: str, ids: list[int], now: datetime, sent_times: list[datetime]
) -> int:
    """Back to scheduled, for when the oldest email of the week leaves the window."""
    return _finish(session, worker, ids, now, status=PromptStatus.SCHEDULED,
                   due_at=min(sent_times) + WEEK, claimed_by=None)  # fmt: skip


@dataclass(frozen=True)
class _Outgoing:
    """One customer's email: their claimed prompts and the rendered message."""

    items: list[dict[str, Any]]
    message_id: str
    payload: str

    @property
    def ids(self) -> list[int]:
        return [item["id"] for item in self.items]


def _send_all(session: Session, worker: str, outgoing: list[_Outgoing], now: datetime) -> None:
    """Mark every prompt of ``outgoing`` sent and write the emails to the outbox, in a few
    statements for the whole batch; raises _LostClaim if any prompt's claim was lost."""
    if not outgoing:
        return
    ids = [i for o in outgoing for i in o.ids]
    held = 0
    for start in range(0, len(ids), CHUNK):
        held += _finish(session, worker, ids[start : start + CHUNK], now,
                        status=PromptStatus.SENT, sent_at=now, lease_until=None)  # fmt: skip
    if held != len(ids):
        raise _LostClaim
    outbox_ids = outbox.enqueue_many(
        session,
        [outbox.NewMessage(OutboxKind.EMAIL, o.message_id, "prompt", o.items[0]["email"],
                           o.payload, o.items[0]["customer_id"]) for o in outgoing],
        now,
    )  # fmt: skip
    prompt = table_of(Prompt)
    session.execute(
        update(prompt)
        .where(prompt.c.id == bindparam("prompt_id"))
        .values(outbox_id=bindparam("new_outbox_id"), expires_at=bindparam("new_expires_at")),
        [
            {"prompt_id": item["id"], "new_outbox_id": outbox_id,
             "new_expires_at": now + timedelta(days=item["prompt_expiry_days"])}
            for o, outbox_id in zip(outgoing, outbox_ids, strict=True)
            for item in o.items
        ],
    )  # fmt: skip


def _send_alone(session: Session, worker: str, one: _Outgoing, now: datetime) -> bool:
    try:
        with session.begin_nested():
            _send_all(session, worker, [one], now)
    except _LostClaim:
        logger.warning("dispatcher %s lost its claim on prompts %s", worker, one.ids)
        return False
    return True


def dispatch_due_prompts(
    session: Session,
    settings: Settings,
    worker: str,
    now: datetime,
    limit: int = 200,
    lease: timedelta = timedelta(minutes=5),
) -> DispatchResult:
    """One claim-and-send round (the caller commits the claim and the sending separately)."""
    customer_ids = claim_due_prompts(session, worker, now, limit, lease)
    session.commit()
    return send_claimed(session, settings, worker, customer_ids, now, lease)


class _LostClaim(Exception):
    """Another dispatcher took over these prompts (this one's lease ran out)."""


def _finish(session: Session, worker: str, ids: list[int], now: datetime, **values: Any) -> int:
    """Move this worker's claimed prompts ``ids`` on; returns how many it still held."""
    prompt = table_of(Prompt)
    values = {k: v.value if isinstance(v, PromptStatus) else v for k, v in values.items()}
    result = session.execute(
        update(prompt)
        .where(
            prompt.c.id.in_(ids),
            prompt.c.status == PromptStatus.SENDING.value,
            prompt.c.claimed_by == worker,
        )
        .values(updated_at=now, **values)
    )
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


def _load_claimed(
    session: Session, worker: str, customer_ids: list[int]
) -> dict[int, list[dict[str, Any]]]:
    prompt, plan, product, customer = (
        table_of(Prompt), table_of(Plan), table_of(Product), table_of(Customer),
    )  # fmt: skip
    rows = session.execute(
        select(
            prompt.c.id,
            prompt.c.nonce,
            prompt.c.quantity,
            prompt.c.customer_id,
            plan.c.median_on,
            plan.c.explanation,
            plan.c.explanation_data,
            product.c.name.label("product_name"),
            product.c.external_id.label("product_ext"),
            product.c.unit,
            product.c.prompt_expiry_days,
            customer.c.email,
            customer.c.name.label("customer_name"),
            customer.c.locale,
            customer.c.link_version,
            customer.c.unsubscribed_at,
        )
        .join(plan, plan.c.id == prompt.c.plan_id)
        .join(product, product.c.id == plan.c.product_id)
        .join(customer, customer.c.id == prompt.c.customer_id)
        .where(
            prompt.c.customer_id.in_(customer_ids),
            prompt.c.status == PromptStatus.SENDING.value,
            prompt.c.claimed_by == worker,
        )
        .order_by(prompt.c.customer_id, prompt.c.id)
    ).all()
    by_customer: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_customer[r.customer_id].append(dict(r._mapping))
    return by_customer


def _recent_emails(
    session: Session, customer_ids: list[int], now: datetime
) -> dict[int, list[datetime]]:
    """When each customer was last emailed prompts, within the past week (one time per email)."""
    rows = session.execute(
        select(col(Prompt.customer_id), func.min(col(Prompt.sent_at)))
        .where(
            col(Prompt.customer_id).in_(customer_ids),
            col(Prompt.sent_at) > now - WEEK,
            col(Prompt.outbox_id).is_not(None),
        )
        .group_by(col(Prompt.customer_id), col(Prompt.outbox_id))
    ).all()
    found: dict[int, list[datetime]] = defaultdict(list)
    for customer_id, sent_at in rows:
        if sent_at is not None:
            found[customer_id].append(sent_at)
    return found


def _build(settings: Settings, items: list[dict[str, Any]], message_id: str, now: datetime) -> str:
    first = items[0]
    locale = first["locale"].value if hasattr(first["locale"], "value") else first["locale"]
    from flask_babel import force_locale

    with force_locale(locale):
        prompt_items = [
            PromptItem(
                product_name=item["product_name"] or item["product_ext"],
                unit=item["unit"],
                quantity=item["quantity"],
                runout_on=item["median_on"],
                reason=reason_sentence(item["explanation_data"], item["explanation"]),
                action_url=link(settings, Purpose.PROMPT, item["id"], item["nonce"], now),
            )
            for item in items
        ]
        customer_id = first["customer_id"]
        return prompt_message(
            Envelope(settings.mail_from, first["email"], message_id, now),
            locale,
            first["customer_name"],
            prompt_items,
            manage_url=link(settings, Purpose.MANAGE, customer_id, first["link_version"], now),
            unsubscribe_url=link(
                settings, Purpose.UNSUBSCRIBE, customer_id, first["link_version"], now
            ),
        )


def expire_prompts(session: Session, default_timezone: str, now: datetime) -> int:
    """Expire sent prompts nobody answered in time; their plans rest for a week."""
    rows = session.execute(
        update(Prompt)
        .where(col(Prompt.status) == PromptStatus.SENT, col(Prompt.expires_at) <= now)
        .values(status=PromptStatus.EXPIRED, updated_at=now)
        .returning(col(Prompt.plan_id))
    ).all()
    if rows:
        rest_until = now.astimezone(ZoneInfo(default_timezone)).date() + timedelta(
            days=EXPIRED_PAUSE_DAYS
        )
        plan_ids = sorted({r.plan_id for r in rows})
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


def cancel_open(session: Session, plan_ids: list[int], reason: str, now: datetime) -> int:
    """Cancel the open prompts of ``plan_ids`` (paused, stopped, unsubscribed)."""
    if not plan_ids:
        return 0
    result = session.execute(
        update(Prompt)
        .where(col(Prompt.plan_id).in_(plan_ids), col(Prompt.status).in_(_OPEN))
        .values(status=PromptStatus.CANCELLED, cancel_reason=reason, updated_at=now)
    )
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


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
