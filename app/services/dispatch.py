"""Dispatching due prompts as emails: claim, group per customer, render, write the outbox.

Every sweep here is safe to run in several scheduler processes at once. Prompt rows are claimed
with a guarded ``UPDATE ... RETURNING`` that sets ``status = 'sending'`` with a lease (on
PostgreSQL choosing rows with ``FOR UPDATE SKIP LOCKED``); a claim whose lease ran out (its
scheduler died) is claimed again. The email is written to the outbox in the same transaction
that marks the prompts sent, and only if this worker still holds the claim.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.config import Settings, allowed_hours
from app.db import table_of
from app.links.tokens import Purpose
from app.links.urls import link
from app.mail.addresses import message_id_domain
from app.mail.render import Envelope, PromptItem, prompt_message, reason_sentence
from app.models import (
    Customer,
    OutboxKind,
    Plan,
    Product,
    Prompt,
    PromptStatus,
)
from app.services import outbox
from app.services.plans import CHUNK, lock_customers
from app.services.timing import send_after

logger = logging.getLogger(__name__)

GROUP_WINDOW = timedelta(days=3)
"""A customer's prompts due within this window of the first go out together in one email."""
WEEK = timedelta(days=7)
RENDER_RETRY = timedelta(hours=1)
RENDER_RETRY_MAX = timedelta(days=1)


def render_retry(failures: int) -> timedelta:
    """Wait after a prompt's ``failures``-th failed render: 1 h, 2 h, 4 h, ... capped at a day
    (a lasting fault is logged about daily, not hourly; a systemic one sends once it is mended,
    not at a give-up)."""
    return outbox.backoff(failures, RENDER_RETRY, RENDER_RETRY_MAX)


@dataclass(frozen=True)
class DispatchResult:
    emails: int = 0
    prompts: int = 0
    postponed: int = 0
    cancelled: int = 0
    # Prompts whose email could not be rendered (a bug or bad stored data; logged): they are
    # tried again after ``render_retry``, without holding up the other customers' emails.
    failed: int = 0


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
    host = message_id_domain(settings.base_url)
    outgoing = []
    unrendered = []
    for items in ready:
        message_id = f"prompt-{items[0]['id']}.{items[0]['nonce']}@{host}"
        try:
            payload = _build(settings, items, message_id, now)
        except Exception:
            failures = 1 + max(item["render_failures"] for item in items)
            logger.exception("could not render the prompt email for customer %s (prompts %s, "
                             "attempt %d); trying again in %s", items[0]["customer_id"],
                             [item["id"] for item in items], failures,
                             render_retry(failures))  # fmt: skip
            unrendered.append((items, failures))
            continue
        outgoing.append(_Outgoing(items, message_id, payload))
    if not outgoing and not unrendered:
        return DispatchResult(0, 0, postponed, cancelled)
    # Since the decisions, another dispatcher may have emailed one of these customers, or a
    # sync changed one's address (revoking the links) or language.
    ids = [o.customer_id for o in outgoing]
    lock_customers(session, ids + [items[0]["customer_id"] for items, _ in unrendered])
    failed = sum(
        _held_back(session, settings, worker, items, failures, now)
        for items, failures in unrendered
    )
    recent = _recent_emails(session, ids, now)
    current = _load_claimed(session, worker, ids)
    allowed = []
    for o in outgoing:
        sent_times = recent.get(o.customer_id, [])
        if len(sent_times) >= settings.max_prompts_per_week:
            postponed += _postpone(session, settings, worker, o.items, now, sent_times)
        elif _rendered_for(current.get(o.customer_id) or o.items) != _rendered_for(o.items):
            # Back to the queue, due as they were: the next round renders them afresh.
            postponed += _finish(session, worker, o.ids, now, status=PromptStatus.SCHEDULED,
                                 claimed_by=None)  # fmt: skip
        else:
            allowed.append(o)
    try:
        with session.begin_nested():
            _send_all(session, worker, allowed, now)
        sent = allowed
    except _LostClaim:
        # Rare (this worker's lease ran out mid-batch): go customer by customer.
        sent = [o for o in allowed if _send_alone(session, worker, o, now)]
    return DispatchResult(len(sent), sum(len(o.items) for o in sent), postponed, cancelled,
                          failed)  # fmt: skip


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
            postponed += _postpone(session, settings, worker, items, now, recent[customer_id])
        else:
            ready.append(items)
    return ready, postponed, cancelled


def _rendered_for(items: list[dict[str, Any]]) -> tuple[Any, ...]:
    """What of the customer an email was rendered with."""
    first = items[0]
    return tuple(first[k] for k in ("email", "customer_name", "locale", "link_version",
                                    "unsubscribed_at"))  # fmt: skip


def _held_back(
    session: Session,
    settings: Settings,
    worker: str,
    items: list[dict[str, Any]],
    failures: int,
    now: datetime,
) -> int:
    """A customer's prompts whose email failed to render for the ``failures``-th time: back to
    scheduled, each failure counted, due again after ``render_retry`` (outside quiet hours)."""
    prompt = table_of(Prompt)
    due = _next_send(settings, items[0], now + render_retry(failures))
    return _finish(session, worker, [item["id"] for item in items], now,
                   status=PromptStatus.SCHEDULED, due_at=due, claimed_by=None,
                   render_failures=prompt.c.render_failures + 1)  # fmt: skip


def _postpone(
    session: Session,
    settings: Settings,
    worker: str,
    items: list[dict[str, Any]],
    now: datetime,
    sent_times: list[datetime],
) -> int:
    """Back to scheduled, due when the oldest email of the week leaves the window, at the
    customer's send hour (or the next hour outside the quiet hours)."""
    ids = [item["id"] for item in items]
    return _finish(session, worker, ids, now, status=PromptStatus.SCHEDULED,
                   due_at=_next_send(settings, items[0], min(sent_times) + WEEK),
                   claimed_by=None)  # fmt: skip


def _next_send(settings: Settings, customer: dict[str, Any], earliest: datetime) -> datetime:
    hour = settings.default_send_hour if customer["send_hour"] is None else customer["send_hour"]
    allowed = allowed_hours(settings.quiet_hours)
    return send_after(earliest, hour, ZoneInfo(customer["timezone"]), allowed)


@dataclass(frozen=True)
class _Outgoing:
    """One customer's email: their claimed prompts and the rendered message."""

    items: list[dict[str, Any]]
    message_id: str
    payload: str

    @property
    def ids(self) -> list[int]:
        return [item["id"] for item in self.items]

    @property
    def customer_id(self) -> int:
        return int(self.items[0]["customer_id"])


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
                           o.payload, o.customer_id) for o in outgoing],
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
            prompt.c.render_failures,
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
            customer.c.timezone,
            customer.c.send_hour,
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
