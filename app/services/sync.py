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
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import pk
from app.metrics import ORDERS_SYNCED
from app.models import Customer, Order, OrderLine, OrderStatus, Product
from app.services.audit import record, record_many
from app.services.plans import refresh_plans
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
    customer = session.scalars(
        select(Customer).where(col(Customer.external_id) == data.external_id)
    ).one_or_none()
    return _apply(session, Customer, "customer", customer, data.external_id, values, actor, now)


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
    product = session.scalars(
        select(Product).where(col(Product.external_id) == data.external_id)
    ).one_or_none()
    return _apply(session, Product, "product", product, data.external_id, values, actor, now)


def _apply(
    session: Session,
    model: type[T],
    entity: str,
    row: T | None,
    external_id: str,
    values: dict[str, Any],
    actor: Actor,
    now: datetime,
) -> tuple[UpsertResult, T]:
    if row is None:
        row = model(external_id=external_id, created_at=now, updated_at=now, **values)
        session.add(row)
        session.flush()
        record(
            session,
            now,
            actor.type,
            actor.name,
            "create",
            entity,
            external_id,
            None,
            _jsonable(values),
        )
        return UpsertResult.CREATED, row
    before = {k: getattr(row, k) for k in values}
    if before == values:
        return UpsertResult.UNCHANGED, row
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = now
    session.add(row)
    session.flush()
    changed = {k for k in values if before[k] != values[k]}
    record(
        session, now, actor.type, actor.name, "update", entity, external_id,
        _jsonable({k: before[k] for k in changed}), _jsonable({k: values[k] for k in changed}),
    )  # fmt: skip
    return UpsertResult.UPDATED, row


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
    stored = _load_orders(session, {o.external_id for o in orders})

    outcomes: list[OrderOutcome] = []
    to_insert: dict[str, Snapshot] = {}
    to_update: dict[str, Snapshot] = {}
    versions: dict[str, datetime] = {}
    audit_rows: list[dict[str, Any]] = []
    touched_pairs: set[tuple[int, int]] = set()

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
        audit_rows.append(
            {
                "at": now,
                "actor_type": actor.type,
                "actor": actor.name,
                "action": "create" if result is UpsertResult.CREATED else "update",
                "entity_type": "order",
                "entity_id": order.external_id,
                "before": None if current is None else _snapshot_json(current[0]),
                "after": _snapshot_json(snapshot),
            }
        )

    _write_orders(session, to_insert, to_update, versions, now)
    record_many(session, audit_rows)
    refresh_plans(session, touched_pairs, default_timezone, now)
    for outcome in outcomes:
        ORDERS_SYNCED.labels(result=outcome.result.value).inc()
    return outcomes


def _merge_lines(lines: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    # The same product twice in one order is one purchase of the summed units.
    merged: dict[int, int] = defaultdict(int)
    for product_id, quantity in lines:
        merged[product_id] += quantity
    return tuple(sorted(merged.items()))


def _pairs(snapshot: Snapshot) -> set[tuple[int, int]]:
    return {(snapshot[0], product_id) for product_id, _ in snapshot[5]}


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
            insert(model),
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
    session: Session, model: type[Customer] | type[Product], external_ids: set[str]
) -> dict[str, int]:
    ids: dict[str, int] = {}
    wanted = sorted(external_ids)
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        rows = session.execute(
            select(col(model.external_id), pk(model)).where(col(model.external_id).in_(chunk))
        )
        ids.update({ext: row_id for ext, row_id in rows})
    return ids


def _load_orders(session: Session, external_ids: set[str]) -> dict[str, tuple[Snapshot, datetime]]:
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
    return stored


def _write_orders(
    session: Session,
    to_insert: dict[str, Snapshot],
    to_update: dict[str, Snapshot],
    versions: dict[str, datetime],
    now: datetime,
) -> None:
    line_rows: list[dict[str, Any]] = []
    if to_insert:
        exts = list(to_insert)
        returned = session.execute(
            insert(Order).returning(
                col(Order.id), col(Order.external_id), sort_by_parameter_order=True
            ),
            [
                _order_row(ext, to_insert[ext], versions[ext], now) | {"created_at": now}
                for ext in exts
            ],
        ).all()
        for order_id, ext in returned:
            line_rows.extend(
                {"order_id": order_id, "product_id": p, "quantity": q} for p, q in to_insert[ext][5]
            )
    # Versions advance even when the content did not change, so an older replay stays stale.
    version_only = [ext for ext in versions if ext not in to_insert and ext not in to_update]
    update_exts = list(to_update) + version_only
    if update_exts:
        id_by_ext: dict[str, int] = dict(
            session.execute(
                select(col(Order.external_id), pk(Order)).where(
                    col(Order.external_id).in_(update_exts)
                )
            ).all()
        )
        rows = [
            {"id": id_by_ext[ext], **_order_row(ext, to_update[ext], versions[ext], now)}
            for ext in to_update
        ]
        rows += [{"id": id_by_ext[ext], "source_updated_at": versions[ext]} for ext in version_only]
        if rows:
            session.execute(update(Order), rows)
        changed_ids = [id_by_ext[ext] for ext in to_update]
        for start in range(0, len(changed_ids), CHUNK):
            session.execute(
                delete(OrderLine).where(
                    col(OrderLine.order_id).in_(changed_ids[start : start + CHUNK])
                )
            )
        line_rows.extend(
            {"order_id": id_by_ext[ext], "product_id": p, "quantity": q}
            for ext, snap in to_update.items()
            for p, q in snap[5]
        )
    if line_rows:
        session.execute(insert(OrderLine), line_rows)


def _order_row(ext: str, snap: Snapshot, version: datetime, now: datetime) -> dict[str, Any]:
    customer_id, status, ordered_at, delivered_at, reorder_id, _ = snap
    return {
        "external_id": ext,
        "customer_id": customer_id,
        "status": status,
        "ordered_at": ordered_at,
        "delivered_at": delivered_at,
        "reorder_id": reorder_id,
        "source_updated_at": version,
        "updated_at": now,
    }


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, enum.Enum) else v) for k, v in values.items()}
