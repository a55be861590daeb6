"""Reorders from the EC backend's side: the pull feed, acknowledgements, fulfilment, cancelling."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.config import Settings
from app.db import pk
from app.models import (
    ActorType,
    Customer,
    Order,
    OutboxKind,
    Plan,
    Product,
    Prompt,
    Reorder,
    ReorderStatus,
)
from app.services import outbox
from app.services.audit import record
from app.services.forecasting import request_rescore
from app.services.types import OrderIn
from app.services.webhooks import event_body

logger = logging.getLogger(__name__)

CHUNK = 500  # bound on IN (...) lists

_OPEN = (ReorderStatus.PENDING, ReorderStatus.ACKNOWLEDGED)
"""A reorder the backend is to deliver, no order having done it yet."""

CHANGE_SETTLE = timedelta(minutes=1)
"""How old a reorder's change must be before the changes feed lists it (``changes``)."""


@dataclass(frozen=True)
class ReorderItem:
    reorder: Reorder
    customer: Customer
    product: Product


class ReorderNotFound(LookupError):
    pass


class ReorderConflict(ValueError):
    """The reorder is in a state that does not allow the request (e.g. ack of a cancelled one)."""


def reorder_event_data(customer: Customer, product: Product, reorder: Reorder) -> dict[str, object]:
    """What the backend learns about a reorder (webhook data and pull-feed item)."""
    return {
        "reorder_id": reorder.id,
        "status": reorder.status.value,
        "customer_external_id": customer.external_id,
        "product_external_id": product.external_id,
        "quantity": reorder.quantity,
        "confirmed_at": reorder.confirmed_at.isoformat(),
    }


def feed(
    session: Session, status: ReorderStatus, now: datetime, after_id: int, limit: int
) -> list[ReorderItem]:
    """Reorders in ``status`` once their undo window has passed (as ``get_item``: one
    cancelled inside it was never the backend's), by id."""
    query = (
        select(Reorder, Customer, Product)
        .join(Customer, col(Customer.id) == col(Reorder.customer_id))
        .join(Product, col(Product.id) == col(Reorder.product_id))
        .where(col(Reorder.status) == status, pk(Reorder) > after_id,
               col(Reorder.handoff_at) <= now)
        .order_by(pk(Reorder))
        .limit(limit)
    )  # fmt: skip
    return [ReorderItem(r, c, p) for r, c, p in session.execute(query).all()]


def changes(
    session: Session,
    status: ReorderStatus,
    now: datetime,
    since: datetime,
    after_id: int,
    limit: int,
) -> list[ReorderItem]:
    """Reorders that reached ``status`` (not pending) at or after ``since``, by that time and
    id; of those changed exactly at ``since``, only ids above ``after_id`` (the cursor: the
    last item's ``updated_at`` and id).

    A change is listed once ``CHANGE_SETTLE`` old: a change's time is taken when its request
    begins, and a request that began before another may commit after it; listing it only
    later keeps a cursor that has moved past its time from skipping it."""
    assert status is not ReorderStatus.PENDING
    changed = col(Reorder.updated_at)
    query = (
        select(Reorder, Customer, Product)
        .join(Customer, col(Customer.id) == col(Reorder.customer_id))
        .join(Product, col(Product.id) == col(Reorder.product_id))
        .where(
            col(Reorder.status) == status,
            # Changed once the backend could see it: not a confirm withdrawn in its undo window.
            col(Reorder.handoff_at) <= changed,
            changed <= now - CHANGE_SETTLE,
            or_(changed > since, and_(changed == since, pk(Reorder) > after_id)),
        )
        .order_by(changed, pk(Reorder))
        .limit(limit)
    )
    return [ReorderItem(r, c, p) for r, c, p in session.execute(query).all()]


def get_item(session: Session, reorder_id: int, now: datetime) -> ReorderItem:
    """A reorder the backend may see. Raises ReorderNotFound (also while it can be undone)."""
    reorder = session.get(Reorder, reorder_id)
    if reorder is None or reorder.handoff_at > now:
        raise ReorderNotFound(f"no reorder {reorder_id}")
    return ReorderItem(
        reorder,
        session.get_one(Customer, reorder.customer_id),
        session.get_one(Product, reorder.product_id),
    )


def acknowledge(session: Session, reorder_id: int, actor: str, now: datetime) -> ReorderItem:
    """The backend has taken the reorder. Safe to repeat; a fulfilled one stays fulfilled.

    Raises ReorderNotFound, or ReorderConflict for a cancelled reorder.
    """
    item = get_item(session, reorder_id, now)
    reorder = item.reorder
    if reorder.status is ReorderStatus.CANCELLED:
        raise ReorderConflict(f"reorder {reorder_id} was cancelled")
    if reorder.status is ReorderStatus.PENDING:
        reorder.status = ReorderStatus.ACKNOWLEDGED
        reorder.acknowledged_at = now
        reorder.updated_at = now
        record(session, now, ActorType.API_CLIENT, actor, "ack", "reorder", str(reorder_id),
               {"status": "pending"}, {"status": "acknowledged"})  # fmt: skip
        session.flush()
    return item


def reference_problems(
    session: Session, orders: Sequence[OrderIn], now: datetime
) -> dict[int, str]:
    """Why an order cannot fulfil the reorder it names, by the order's position in ``orders``.

    The reorder must exist and have been handed off (the backend never sees one still in its
    undo window), be for the order's customer, and be for a product among the order's lines.
    A cancelled or already fulfilled reorder is no problem: the order is a purchase all the
    same (the backend shipped it anyway, or split it), and the reorder stays as it is. The
    order that fulfilled it may change its lines (a substitution), keeping the reference.
    """
    wanted = sorted({o.reorder_id for o in orders if o.reorder_id is not None})
    if not wanted:
        return {}
    known: dict[int, tuple[datetime, str, str, str | None]] = {}
    for start in range(0, len(wanted), CHUNK):
        rows = session.execute(
            select(pk(Reorder), col(Reorder.handoff_at), col(Customer.external_id),
                   col(Product.external_id), col(Order.external_id))
            .join(Customer, col(Customer.id) == col(Reorder.customer_id))
            .join(Product, col(Product.id) == col(Reorder.product_id))
            .outerjoin(Order, pk(Order) == col(Reorder.fulfilled_order_id))
            .where(pk(Reorder).in_(wanted[start : start + CHUNK]))
        )  # fmt: skip
        known.update({r[0]: (r[1], r[2], r[3], r[4]) for r in rows})
    problems: dict[int, str] = {}
    for index, order in enumerate(orders):
        if order.reorder_id is None:
            continue
        found = known.get(order.reorder_id)
        if found is None or found[0] > now:
            problems[index] = f"no reorder {order.reorder_id}"
        elif found[1] != order.customer_external_id:
            problems[index] = (
                f"reorder {order.reorder_id} is for customer {found[1]!r}, "
                f"not {order.customer_external_id!r}"
            )
        elif found[3] != order.external_id and found[2] not in {
            line.product_external_id for line in order.lines
        }:
            problems[index] = (
                f"reorder {order.reorder_id} is for product {found[2]!r}, which is not among "
                "this order's lines"
            )
    return problems


def fulfil(session: Session, fulfilled_by: dict[int, str], now: datetime) -> int:
    """Mark reorders fulfilled by synced orders, placed or returned (reorder id -> the
    order's external id)."""
    done = 0
    for reorder_id, order_ext in sorted(fulfilled_by.items()):
        order_id = session.scalar(select(pk(Order)).where(col(Order.external_id) == order_ext))
        result = session.execute(
            update(Reorder)
            .where(
                pk(Reorder) == reorder_id,
                col(Reorder.status).in_(_OPEN),
            )
            .values(
                status=ReorderStatus.FULFILLED,
                fulfilled_at=now,
                fulfilled_order_id=order_id,
                updated_at=now,
            )
        )
        done += result.rowcount  # type: ignore[attr-defined]
    if done:
        logger.info("%d reorders fulfilled by synced orders", done)
    return done


def unfulfil(session: Session, cancelled_by: dict[int, str], now: datetime) -> int:
    """Reorders whose order the backend cancelled (reorder id -> the order's external id):
    nothing is coming, so the reorder is cancelled, as the customer's page and the feed then
    say: one that order had fulfilled, or one not fulfilled yet (the order arrived already
    cancelled, or placed and cancelled in one batch). A reorder another order fulfilled stays
    fulfilled, and so does one whose order was returned (it was delivered)."""
    cancelled: list[int] = []
    for reorder_id, order_ext in sorted(cancelled_by.items()):
        order_id = session.scalar(select(pk(Order)).where(col(Order.external_id) == order_ext))
        result = session.execute(
            update(Reorder)
            .where(
                pk(Reorder) == reorder_id,
                or_(
                    and_(col(Reorder.status) == ReorderStatus.FULFILLED,
                         col(Reorder.fulfilled_order_id) == order_id),
                    col(Reorder.status).in_(_OPEN),
                ),
            )
            .values(status=ReorderStatus.CANCELLED, cancelled_at=now, updated_at=now)
        )  # fmt: skip
        if result.rowcount:  # type: ignore[attr-defined]
            cancelled.append(reorder_id)
    if cancelled:
        logger.info("%d reorders cancelled with their orders", len(cancelled))
        _nothing_came(session, cancelled, now)
    return len(cancelled)


def release(session: Session, released_by: dict[int, str], now: datetime) -> int:
    """Reorders an order no longer names (reorder id -> the order's external id): one that
    order had fulfilled waits for its order again (acknowledged: the backend has it)."""
    done = 0
    for reorder_id, order_ext in sorted(released_by.items()):
        order_id = session.scalar(select(pk(Order)).where(col(Order.external_id) == order_ext))
        result = session.execute(
            update(Reorder)
            .where(pk(Reorder) == reorder_id, col(Reorder.status) == ReorderStatus.FULFILLED,
                   col(Reorder.fulfilled_order_id) == order_id)
            .values(status=ReorderStatus.ACKNOWLEDGED, fulfilled_at=None,
                    fulfilled_order_id=None, updated_at=now,
                    acknowledged_at=func.coalesce(col(Reorder.acknowledged_at), now))
        )  # fmt: skip
        done += result.rowcount  # type: ignore[attr-defined]
    if done:
        logger.info("%d reorders released by the orders that had fulfilled them", done)
    return done


def cancel(
    session: Session, settings: Settings, reorder_id: int, actor: str, now: datetime
) -> Reorder:
    """Ops cancel a reorder the backend has not fulfilled; the backend hears of it by webhook
    (``reorder.cancelled``) and in the feed. Raises ReorderNotFound or ReorderConflict."""
    reorder = session.get(Reorder, reorder_id, with_for_update=True)
    if reorder is None:
        raise ReorderNotFound(f"no reorder {reorder_id}")
    if reorder.status in (ReorderStatus.FULFILLED, ReorderStatus.CANCELLED):
        raise ReorderConflict(f"reorder {reorder_id} is already {reorder.status.value}")
    before = {"status": reorder.status.value}
    reorder.status = ReorderStatus.CANCELLED
    reorder.cancelled_at = now
    reorder.updated_at = now
    handed_off = reorder.handoff_at <= now
    outbox.withdraw(session, f"msg_reorder.confirmed_{reorder.id}", now)
    if settings.webhook_url and handed_off:
        body = event_body(
            "reorder.cancelled",
            reorder_event_data(
                session.get_one(Customer, reorder.customer_id),
                session.get_one(Product, reorder.product_id),
                reorder,
            ),
            now,
        )
        outbox.enqueue(session, OutboxKind.WEBHOOK, f"msg_reorder.cancelled_{reorder.id}",
                       "reorder.cancelled", settings.webhook_url, body, now,
                       customer_id=reorder.customer_id)  # fmt: skip
    record(session, now, ActorType.USER, actor, "cancel", "reorder", str(reorder_id), before,
           {"status": "cancelled"})  # fmt: skip
    session.flush()
    _nothing_came(session, [reorder_id], now)
    return reorder


def _nothing_came(session: Session, reorder_ids: Sequence[int], now: datetime) -> None:
    """The confirms of cancelled reorders brought the customer nothing: each plan is re-scored
    without its confirm as a refill (``load_history``), and the rest the confirm set is
    lifted unless a later answer set its own, so the customer is asked again in time."""
    for reorder_id in reorder_ids:
        plan_id, answered_at = session.execute(
            select(col(Reorder.plan_id), col(Prompt.answered_at))
            .join(Prompt, pk(Prompt) == col(Reorder.prompt_id))
            .where(pk(Reorder) == reorder_id)
        ).one()
        request_rescore(session, plan_id, now)
        answered_since = session.scalar(
            select(func.count()).select_from(Prompt)
            .where(col(Prompt.plan_id) == plan_id, col(Prompt.answered_at) > answered_at)
        )  # fmt: skip
        if not answered_since:
            session.execute(
                update(Plan).where(pk(Plan) == plan_id)
                .values(prompt_not_before=None, updated_at=now)
            )  # fmt: skip
