"""Plans: one per customer × product that has been ordered, kept in step with the orders."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import pk
from app.models import Customer, Order, OrderLine, OrderStatus, Plan

CHUNK = 500

Pair: TypeAlias = tuple[int, int]  # (customer id, product id)


@dataclass(frozen=True)
class Purchase:
    """One purchase day of a pair in the customer's own calendar, with the units bought."""

    on: date
    quantity: int


def load_histories(
    session: Session, pairs: Iterable[Pair], default_timezone: str
) -> dict[Pair, list[Purchase]]:
    """Purchase days of each pair from its placed orders, oldest first.

    Lines of the same pair on the same local day are one purchase with the summed units;
    cancelled and returned orders are not consumption and are left out.
    """
    wanted = set(pairs)
    customer_ids = sorted({c for c, _ in wanted})
    zones = _customer_zones(session, customer_ids, default_timezone)
    units: dict[Pair, dict[date, int]] = defaultdict(lambda: defaultdict(int))
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        rows = session.execute(
            select(
                col(Order.customer_id),
                col(OrderLine.product_id),
                col(Order.ordered_at),
                col(OrderLine.quantity),
            )
            .join(Order, col(Order.id) == col(OrderLine.order_id))
            .where(col(Order.customer_id).in_(chunk), col(Order.status) == OrderStatus.PLACED)
        )
        for customer_id, product_id, ordered_at, quantity in rows:
            pair = (customer_id, product_id)
            if pair in wanted:
                local_day = ordered_at.astimezone(zones[customer_id]).date()
                units[pair][local_day] += quantity
    return {
        pair: [Purchase(day, qty) for day, qty in sorted(units[pair].items())] for pair in wanted
    }


def refresh_plans(
    session: Session, pairs: Iterable[Pair], default_timezone: str, now: datetime
) -> None:
    """Create the missing plans of ``pairs`` and bring their history summary up to date.

    A pair whose orders were all cancelled keeps its plan (its settings and answers stay), with
    an empty history.
    """
    wanted = set(pairs)
    if not wanted:
        return
    histories = load_histories(session, wanted, default_timezone)
    existing = _plan_ids(session, wanted)
    new_rows: list[dict[str, Any]] = []
    changed_rows: list[dict[str, Any]] = []
    for pair, history in histories.items():
        summary = _summary(history) | {"updated_at": now}
        if pair in existing:
            changed_rows.append({"id": existing[pair], **summary})
        elif history:
            new_rows.append(
                {"customer_id": pair[0], "product_id": pair[1], "created_at": now, **summary}
            )
    if new_rows:
        session.execute(insert(Plan), new_rows)
    if changed_rows:
        session.execute(update(Plan), changed_rows)


def _summary(history: list[Purchase]) -> dict[str, Any]:
    if not history:
        return {
            "n_purchases": 0,
            "total_quantity": 0,
            "first_ordered_on": None,
            "last_ordered_on": None,
            "last_quantity": None,
        }
    return {
        "n_purchases": len(history),
        "total_quantity": sum(p.quantity for p in history),
        "first_ordered_on": history[0].on,
        "last_ordered_on": history[-1].on,
        "last_quantity": history[-1].quantity,
    }


def _plan_ids(session: Session, pairs: set[Pair]) -> dict[Pair, int]:
    customer_ids = sorted({c for c, _ in pairs})
    found: dict[Pair, int] = {}
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        for plan_id, customer_id, product_id in session.execute(
            select(pk(Plan), col(Plan.customer_id), col(Plan.product_id)).where(
                col(Plan.customer_id).in_(chunk)
            )
        ):
            if (customer_id, product_id) in pairs:
                found[(customer_id, product_id)] = plan_id
    return found


def _customer_zones(
    session: Session, customer_ids: list[int], default_timezone: str
) -> dict[int, ZoneInfo]:
    zones: dict[int, ZoneInfo] = {}
    cache: dict[str, ZoneInfo] = {}
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        for customer_id, tz in session.execute(
            select(pk(Customer), col(Customer.timezone)).where(pk(Customer).in_(chunk))
        ):
            name = tz or default_timezone
            zones[customer_id] = cache.setdefault(name, ZoneInfo(name))
    return zones
