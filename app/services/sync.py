"""Upserts of customers, products and orders coming from the shop's EC backend.

Every upsert is keyed on the backend's ``external_id`` and is idempotent: sending the same record
twice reports ``unchanged`` the second time. Orders carry the backend's ``updated_at``; an older
version never overwrites a newer one, so out-of-order delivery is harmless. Orders are written in
bulk (a few statements per batch, not per order) because the backend syncs history in the
hundreds of thousands.
"""

from __future__ import annotations

import enum
import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import (
    add_unless_taken,
    bulk_update_by_id,
    fetch_raw,
    insert_many,
    pk,
    placeholders,
    table_of,
)
from app.metrics import ORDERS_SYNCED
from app.models import Customer, Order, OrderLine, OrderStatus, Plan, Product
from app.services import reorders
from app.services.audit import record, record_many
from app.services.forecasting import reestimate_on_their_days
from app.services.plans import add_purchases, customer_zones, lock_customers, refresh_plans
from app.services.preferences import revoke_links
from app.services.prompts import cancel_customer_open, cancel_open, cancel_superseded
from app.services.types import Actor, CustomerIn, OrderIn, ProductIn

logger = logging.getLogger(__name__)

T = TypeVar("T", Customer, Product)

CHUNK = 500  # bound on IN (...) lists; SQLite allows 32,766 parameters, PostgreSQL 65,535


class UpsertResult(enum.StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class OrderOutcome:
    external_id: str
    result: UpsertResult
    # True when the order was ignored because the stored version is newer.
    stale: bool = False


def upsert_customer(
    session: Session, data: CustomerIn, default_timezone: str, actor: Actor, now: datetime
) -> tuple[UpsertResult, Customer]:
    """Create or update a customer; fills in a placeholder created by an earlier order."""
    values = {
        "email": data.email,
        "name": data.name,
        "locale": data.locale,
        "timezone": data.timezone or default_timezone,
        "is_placeholder": False,
    }
    customer, created = _find_or_create(
        session, Customer, "customer", data.external_id, values, actor, now
    )
    if created:
        return UpsertResult.CREATED, customer
    old_timezone = customer.timezone
    old_email = None if customer.is_placeholder else customer.email
    result = _update(session, "customer", customer, values, actor, now)
    if old_email is not None and old_email != customer.email:
        # Links mailed to the old address must not keep working for whoever reads it now.
        revoke_links(session, customer, actor.type, actor.name, now)
    if old_timezone != customer.timezone:
        _redate_orders(session, customer, now)
    return result, customer


def _redate_orders(session: Session, customer: Customer, now: datetime) -> None:
    """Re-derive the local purchase days of a customer whose time zone changed."""
    zone = ZoneInfo(customer.timezone)
    orders = session.execute(
        select(pk(Order), col(Order.ordered_at)).where(col(Order.customer_id) == customer.id)
    ).all()
    rows = [{"id": oid, "ordered_on": at.astimezone(zone).date()} for oid, at in orders]
    if rows:
        bulk_update_by_id(session, Order, rows)
    product_ids = session.scalars(
        select(col(Plan.product_id)).where(col(Plan.customer_id) == customer.id)
    ).all()
    assert customer.id is not None
    pairs = {(customer.id, p) for p in product_ids}
    refresh_plans(session, pairs, now)
    # The forecasts count days since purchases, now on other dates (and the customer's today).
    reestimate_on_their_days(session, pairs, now, {customer.id: zone})
    # Prompts not yet sent were timed by the old zone's clock (10:00 there may be midnight
    # here): the scheduler times them again.
    cancel_customer_open(session, customer.id, "time zone changed", now, unsent_only=True)


def upsert_product(
    session: Session, data: ProductIn, actor: Actor, now: datetime
) -> tuple[UpsertResult, Product]:
    """Create or update a product's catalogue fields; its ops settings are left alone."""
    values = {
        "name": data.name,
        "unit": data.unit,
        "pack_size": data.pack_size,
        "is_placeholder": False,
    }
    product, created = _find_or_create(
        session, Product, "product", data.external_id, values, actor, now
    )
    if created:
        return UpsertResult.CREATED, product
    return _update(session, "product", product, values, actor, now), product


def _find_or_create(
    session: Session,
    model: type[T],
    entity: str,
    external_id: str,
    values: dict[str, Any],
    actor: Actor,
    now: datetime,
) -> tuple[T, bool]:
    """The stored row of ``external_id`` and False, or a new row of ``values`` and True.

    Requests creating the same record at the same moment (retries, or an order making it a
    placeholder) all find none; the unique external id makes every insert after the first
    wait for the first to commit (on PostgreSQL) and then fail. Such a request takes the
    row the first one stored, as if it had come a moment later.
    """
    row = _find(session, model, external_id)
    if row is not None:
        return row, False
    row = model(external_id=external_id, created_at=now, updated_at=now, **values)
    refused = add_unless_taken(session, row)
    if refused is not None:
        stored = _find(session, model, external_id)
        if stored is None:
            raise refused  # not the race: some other constraint refused the row
        logger.info("%s %s was created by a concurrent request", entity, external_id)
        return stored, False
    record(
        session, now, actor.type, actor.name, "create", entity, external_id, None,
        _jsonable(values),
    )  # fmt: skip
    return row, True


def _find(session: Session, model: type[T], external_id: str) -> T | None:
    return session.scalars(select(model).where(col(model.external_id) == external_id)).one_or_none()


def _update(
    session: Session, entity: str, row: T, values: dict[str, Any], actor: Actor, now: datetime
) -> UpsertResult:
    """Set ``values`` on a stored ``row``; UNCHANGED (and nothing written) when it has them."""
    before = {k: getattr(row, k) for k in values}
    if before == values:
        return UpsertResult.UNCHANGED
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = now
    session.add(row)
    session.flush()
    changed = {k for k in values if before[k] != values[k]}
    record(
        session, now, actor.type, actor.name, "update", entity, row.external_id,
        _jsonable({k: before[k] for k in changed}), _jsonable({k: values[k] for k in changed}),
    )  # fmt: skip
    return UpsertResult.UPDATED


def sync_orders(
    session: Session,
    orders: Sequence[OrderIn],
    default_timezone: str,
    actor: Actor,
    now: datetime,
) -> list[OrderOutcome]:
    """Upsert ``orders`` (validated) in bulk and refresh the plans they touch.

    Returns one outcome per input, in input order. A later item with the same external id as an
    earlier one is applied on top of it. If a concurrent writer inserts the same rows first, the
    batch is re-planned against what that writer stored (up to three times).
    """
    for attempt in range(3):
        try:
            with session.begin_nested():
                return _sync_orders_once(session, orders, default_timezone, actor, now)
        except IntegrityError:
            if attempt == 2:
                raise
            logger.info(
                "order batch raced a concurrent writer; re-planning (attempt %d)", attempt + 2
            )
    raise AssertionError("unreachable")


# A stored order reduced to what the sync compares: customer, status, dates, reorder, lines.
Snapshot: TypeAlias = tuple[
    int, OrderStatus, datetime, datetime | None, int | None, tuple[tuple[int, int], ...]
]


def _sync_orders_once(
    session: Session,
    orders: Sequence[OrderIn],
    default_timezone: str,
    actor: Actor,
    now: datetime,
) -> list[OrderOutcome]:
    customer_ids = _ensure_ids(
        session, Customer, {o.customer_external_id for o in orders},
        {"timezone": default_timezone, "locale": "ja"}, now,
    )  # fmt: skip
    product_ids = _ensure_ids(
        session, Product, {line.product_external_id for o in orders for line in o.lines}, {}, now
    )
    # Plan summaries are read, extended and written back: two requests doing that at once for
    # one customer would each miss the other's orders.
    lock_customers(session, customer_ids.values())
    zones = customer_zones(session, customer_ids.values(), default_timezone)
    stored, order_ids = _load_orders(session, {o.external_id for o in orders})

    outcomes: list[OrderOutcome] = []
    to_insert: dict[str, Snapshot] = {}
    to_update: dict[str, Snapshot] = {}
    versions: dict[str, datetime] = {}
    audit_rows: list[dict[str, Any]] = []
    touched_pairs: set[tuple[int, int]] = set()
    as_stored = dict(stored)

    for order in orders:
        snapshot: Snapshot = (
            customer_ids[order.customer_external_id],
            order.status,
            order.ordered_at,
            order.delivered_at,
            order.reorder_id,
            _merge_lines(
                (product_ids[line.product_external_id], line.quantity) for line in order.lines
            ),
        )
        current = stored.get(order.external_id)
        if current is None:
            result = UpsertResult.CREATED
            to_insert[order.external_id] = snapshot
        else:
            old_snapshot, old_version = current
            if order.updated_at < old_version:
                outcomes.append(OrderOutcome(order.external_id, UpsertResult.UNCHANGED, stale=True))
                continue
            versions[order.external_id] = order.updated_at
            if old_snapshot == snapshot:
                outcomes.append(OrderOutcome(order.external_id, UpsertResult.UNCHANGED))
                continue
            result = UpsertResult.UPDATED
            touched_pairs.update(_pairs(old_snapshot))
            if order.external_id in to_insert:
                to_insert[order.external_id] = snapshot
            else:
                to_update[order.external_id] = snapshot
        stored[order.external_id] = (snapshot, order.updated_at)
        versions[order.external_id] = order.updated_at
        touched_pairs.update(_pairs(snapshot))
        outcomes.append(OrderOutcome(order.external_id, result))
        if current is not None:
            audit_rows.append(
                _audit_row(actor, now, "update", order.external_id, current[0], snapshot)
            )

    # An order moved to another customer re-scores the old customer's plans too.
    zones |= customer_zones(session, {c for c, _ in touched_pairs} - zones.keys(),
                            default_timezone)  # fmt: skip
    # Each order's purchase day in its customer's calendar, computed once for all uses below.
    local_days = {
        ext: snap[2].astimezone(zones[snap[0]]).date()
        for ext, snap in (to_insert | to_update).items()
    }
    _write_orders(session, to_insert, to_update, versions, order_ids, local_days, now)
    record_many(session, audit_rows + _creation_audit(actor, now, to_insert))
    if to_update:
        emptied = refresh_plans(session, touched_pairs, now)
        # Plans whose purchases were all cancelled have no prompt day: one not yet sent goes.
        cancel_open(session, emptied, "no purchases", now, unsent_only=True)
    else:
        # Only new orders: extend the plan summaries with their purchase days.
        add_purchases(session, _new_purchases(to_insert, local_days), now)
    _follow_up(session, to_insert | to_update, _released(as_stored, to_update), now)
    reestimate_on_their_days(session, touched_pairs, now, zones)
    for result, count in Counter(o.result for o in outcomes).items():
        ORDERS_SYNCED.labels(result=result.value).inc(count)
    return outcomes


def _released(
    stored: dict[str, tuple[Snapshot, datetime]], updated: dict[str, Snapshot]
) -> dict[int, str]:
    """Reorders that updated orders named as stored and name no more (reorder id -> order)."""
    return {
        stored[ext][0][4]: ext  # type: ignore[misc]
        for ext, snap in updated.items()
        if ext in stored and stored[ext][0][4] not in (None, snap[4])
    }


def _follow_up(
    session: Session, written: dict[str, Snapshot], released: dict[int, str], now: datetime
) -> None:
    """What synced orders end: prompts they make moot, the reorders they fulfil, and those
    whose order was cancelled. ``released``: reorders an order named before and names no
    more (reorder id -> order); one it had fulfilled is waiting for its order again."""
    cancel_superseded(session, {snap[0] for snap in written.values()}, now)
    if released:
        reorders.release(session, released, now)
    # The reorders they name (reorder id -> order): a placed or returned order (delivered)
    # fulfils its reorder, a cancelled one cancels it, whatever versions came before (a
    # batch may carry an order's whole history at once).
    fulfilled: dict[int, str] = {}
    cancelled: dict[int, str] = {}
    for ext, snap in written.items():
        if snap[4] is not None:
            (cancelled if snap[1] is OrderStatus.CANCELLED else fulfilled)[snap[4]] = ext
    if fulfilled:
        reorders.fulfil(session, fulfilled, now)
    if cancelled:
        reorders.unfulfil(session, cancelled, now)


def _creation_audit(
    actor: Actor, now: datetime, to_insert: dict[str, Snapshot]
) -> list[dict[str, Any]]:
    """A new order is fully described by its own row; one audit row names them all."""
    created = list(to_insert)
    if not created:
        return []
    if len(created) == 1:
        return [_audit_row(actor, now, "create", created[0], None, to_insert[created[0]])]
    summary = _audit_row(actor, now, "create", f"{len(created)} orders", None, None)
    return [summary | {"after": {"external_ids": created}}]


def _new_purchases(
    to_insert: dict[str, Snapshot], local_days: dict[str, date]
) -> dict[tuple[int, int], dict[date, int]]:
    """Units per pair and local day in the new placed orders."""
    days: dict[tuple[int, int], dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for ext, (customer_id, status, _, _, _, lines) in to_insert.items():
        if status is OrderStatus.PLACED:
            day = local_days[ext]
            for product_id, quantity in lines:
                days[(customer_id, product_id)][day] += quantity
    return days


def _merge_lines(lines: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    # The same product twice in one order is one purchase of the summed units.
    merged: dict[int, int] = defaultdict(int)
    for product_id, quantity in lines:
        merged[product_id] += quantity
    return tuple(sorted(merged.items()))


def _pairs(snapshot: Snapshot) -> set[tuple[int, int]]:
    return {(snapshot[0], product_id) for product_id, _ in snapshot[5]}


def _audit_row(
    actor: Actor,
    now: datetime,
    action: str,
    entity_id: str,
    before: Snapshot | None,
    after: Snapshot | None,
) -> dict[str, Any]:
    return {
        "at": now,
        "actor_type": actor.type,
        "actor": actor.name,
        "action": action,
        "entity_type": "order",
        "entity_id": entity_id,
        "before": None if before is None else _snapshot_json(before),
        "after": None if after is None else _snapshot_json(after),
    }


def _snapshot_json(snapshot: Snapshot) -> dict[str, Any]:
    customer_id, status, ordered_at, delivered_at, reorder_id, lines = snapshot
    return {
        "customer_id": customer_id,
        "status": status.value,
        "ordered_at": ordered_at.isoformat(),
        "delivered_at": delivered_at.isoformat() if delivered_at else None,
        "reorder_id": reorder_id,
        "lines": [[product_id, quantity] for product_id, quantity in lines],
    }


def _ensure_ids(
    session: Session,
    model: type[Customer] | type[Product],
    external_ids: set[str],
    placeholder_values: dict[str, Any],
    now: datetime,
) -> dict[str, int]:
    """Map external ids to row ids, creating placeholders for the unknown ones."""
    ids = _select_ids(session, model, external_ids)
    missing = sorted(external_ids - ids.keys())
    if missing:
        session.execute(
            table_of(model).insert(),
            [
                {
                    "external_id": ext,
                    "is_placeholder": True,
                    "created_at": now,
                    "updated_at": now,
                    **placeholder_values,
                }
                for ext in missing
            ],
        )
        ids.update(_select_ids(session, model, set(missing)))
        logger.info("created %d placeholder %s row(s)", len(missing), model.__tablename__)
    return ids


def _select_ids(
    session: Session, model: type[Customer] | type[Product] | type[Order], external_ids: set[str]
) -> dict[str, int]:
    # Plain driver rows: this runs for every batch, over a thousand ids at a time.
    ids: dict[str, int] = {}
    wanted = sorted(external_ids)
    table = table_of(model).name
    for start in range(0, len(wanted), CHUNK):
        chunk = tuple(wanted[start : start + CHUNK])
        marks = placeholders(session, len(chunk))
        sql = f"SELECT external_id, id FROM {table} WHERE external_id IN ({marks})"  # noqa: S608
        ids.update(dict(fetch_raw(session, sql, chunk)))
    return ids


def _load_orders(
    session: Session, external_ids: set[str]
) -> tuple[dict[str, tuple[Snapshot, datetime]], dict[str, int]]:
    """The stored orders among ``external_ids``: (snapshot, version) and row id by external id."""
    wanted = sorted(external_ids)
    headers: dict[int, tuple[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for row in session.execute(
            select(
                col(Order.id), col(Order.external_id), col(Order.customer_id), col(Order.status),
                col(Order.ordered_at), col(Order.delivered_at), col(Order.reorder_id),
                col(Order.source_updated_at),
            ).where(col(Order.external_id).in_(chunk))
        ):  # fmt: skip
            headers[row.id] = (row.external_id, row)
    lines: dict[int, list[tuple[int, int]]] = defaultdict(list)
    order_ids = sorted(headers)
    for start in range(0, len(order_ids), CHUNK):
        chunk_ids = order_ids[start : start + CHUNK]
        for order_id, product_id, quantity in session.execute(
            select(
                col(OrderLine.order_id), col(OrderLine.product_id), col(OrderLine.quantity)
            ).where(col(OrderLine.order_id).in_(chunk_ids))
        ):
            lines[order_id].append((product_id, quantity))
    stored: dict[str, tuple[Snapshot, datetime]] = {}
    for order_id, (ext, row) in headers.items():
        snapshot: Snapshot = (
            row.customer_id,
            row.status,
            row.ordered_at,
            row.delivered_at,
            row.reorder_id,
            tuple(sorted(lines[order_id])),
        )
        stored[ext] = (snapshot, row.source_updated_at)
    return stored, {ext: order_id for order_id, (ext, _) in headers.items()}


def _write_orders(
    session: Session,
    to_insert: dict[str, Snapshot],
    to_update: dict[str, Snapshot],
    versions: dict[str, datetime],
    order_ids: dict[str, int],
    local_days: dict[str, date],
    now: datetime,
) -> None:
    """Insert the new orders, update the changed ones (``order_ids``: the stored rows' ids)."""
    line_rows: list[dict[str, Any]] = []
    if to_insert:
        insert_many(
            session,
            Order,
            [
                _order_row(ext, snap, versions[ext], local_days[ext], now) | {"created_at": now}
                for ext, snap in to_insert.items()
            ],
        )
        new_ids = _select_ids(session, Order, set(to_insert))
        line_rows.extend(
            {"order_id": new_ids[ext], "product_id": p, "quantity": q}
            for ext, snap in to_insert.items()
            for p, q in snap[5]
        )
    # Versions advance even when the content did not change, so an older replay stays stale.
    version_only = [ext for ext in versions if ext not in to_insert and ext not in to_update]
    update_exts = list(to_update) + version_only
    if update_exts:
        rows = [
            {
                "id": order_ids[ext],
                **_order_row(ext, to_update[ext], versions[ext], local_days[ext], now),
            }
            for ext in to_update
        ]
        rows += [{"id": order_ids[ext], "source_updated_at": versions[ext]} for ext in version_only]
        if rows:
            bulk_update_by_id(session, Order, rows)
        changed_ids = [order_ids[ext] for ext in to_update]
        for start in range(0, len(changed_ids), CHUNK):
            session.execute(
                delete(OrderLine).where(
                    col(OrderLine.order_id).in_(changed_ids[start : start + CHUNK])
                )
            )
        line_rows.extend(
            {"order_id": order_ids[ext], "product_id": p, "quantity": q}
            for ext, snap in to_update.items()
            for p, q in snap[5]
        )
    if line_rows:
        insert_many(session, OrderLine, line_rows)


def _order_row(
    ext: str, snap: Snapshot, version: datetime, local_day: date, now: datetime
) -> dict[str, Any]:
    customer_id, status, ordered_at, delivered_at, reorder_id, _ = snap
    return {
        "external_id": ext,
        "customer_id": customer_id,
        "status": status,
        "ordered_at": ordered_at,
        "ordered_on": local_day,
        "delivered_at": delivered_at,
        "reorder_id": reorder_id,
        "source_updated_at": version,
        "updated_at": now,
    }


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in values.items()}
