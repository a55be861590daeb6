"""Plans: one per customer × product that has been ordered, kept in step with the orders."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo

from sqlalchemy import case, func, literal, select, true
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import (
    UTCDateTime,
    bulk_update_by_id,
    fetch_raw,
    insert_many,
    pk,
    placeholder,
    table_of,
)
from app.models import Customer, Order, OrderLine, OrderStatus, Plan, PlanStatus

CHUNK = 500

Pair: TypeAlias = tuple[int, int]  # (customer id, product id)

SUMMARY_FIELDS = (
    "n_purchases",
    "total_quantity",
    "first_ordered_on",
    "last_ordered_on",
    "last_quantity",
)
NO_FORECAST: dict[str, Any] = dict.fromkeys((
    "rate_per_day", "median_on", "q10_on", "q90_on", "p_active", "prompt_on", "forecast_method",
    "n_intervals", "explanation", "explanation_data", "p_within_horizon", "forecast_last_on",
))  # fmt: skip
"""A plan's forecast columns when it has none (no purchase to forecast from)."""
EMPTY_SUMMARY: dict[str, Any] = dict.fromkeys(SUMMARY_FIELDS) | {
    "n_purchases": 0,
    "total_quantity": 0,
}


def refresh_plans(
    session: Session, pairs: Iterable[Pair], now: datetime, may_shrink: bool = True
) -> list[int]:
    """Create the missing plans of ``pairs`` and bring their history summary up to date;
    returns the ids of plans that lost their whole history (and with it their forecast).

    One ``INSERT ... SELECT ... ON CONFLICT DO UPDATE`` per chunk: the database aggregates the
    placed order lines itself, so a batch of a thousand orders costs a few statements. It may
    also refresh other pairs of the same customers and products, which is harmless: a summary
    is a pure function of the orders. A pair whose orders were all cancelled keeps its plan
    (its settings and answers stay), with an empty history. ``may_shrink=False`` says the
    change only added orders, so no pair can have lost its whole history.
    """
    wanted = set(pairs)
    if not wanted:
        return []
    by_customer: dict[int, set[int]] = {}
    for customer_id, product_id in wanted:
        by_customer.setdefault(customer_id, set()).add(product_id)
    customers = sorted(by_customer)
    summarised: set[Pair] = set()
    for start in range(0, len(customers), CHUNK):
        chunk = customers[start : start + CHUNK]
        products = sorted({p for c in chunk for p in by_customer[c]})
        rows = session.execute(_upsert_summaries(session, chunk, products, now))
        summarised.update((int(c), int(p)) for c, p in rows)
    return _empty_summaries(session, wanted - summarised, now) if may_shrink else []


def add_purchases(session: Session, new_days: dict[Pair, dict[date, int]], now: datetime) -> None:
    """Extend plan summaries with purchase days that only add to the history.

    The cheap path for the common sync (new orders, in time order): the summary is updated
    from the new days alone, without reading the pair's history. A pair whose new days do not
    all come after its last purchase day (a back-filled or same-day order) is recomputed in
    full by ``refresh_plans``.
    """
    if not new_days:
        return
    existing = _summaries(session, set(new_days))
    new_rows: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    recompute: set[Pair] = set()
    for pair, days in new_days.items():
        ordered = sorted(days.items())
        found = existing.get(pair)
        if found is not None and found[1]["n_purchases"] > 0:
            old = found[1]
            if ordered[0][0] <= old["last_ordered_on"]:
                recompute.add(pair)
                continue
            summary = {
                "n_purchases": old["n_purchases"] + len(ordered),
                "total_quantity": old["total_quantity"] + sum(q for _, q in ordered),
                "first_ordered_on": old["first_ordered_on"],
                "last_ordered_on": ordered[-1][0],
                "last_quantity": ordered[-1][1],
            }
        else:
            summary = {
                "n_purchases": len(ordered),
                "total_quantity": sum(q for _, q in ordered),
                "first_ordered_on": ordered[0][0],
                "last_ordered_on": ordered[-1][0],
                "last_quantity": ordered[-1][1],
            }
        if found is None:
            new_rows.append(
                {"customer_id": pair[0], "product_id": pair[1], "status": PlanStatus.ACTIVE}
                | summary
                | {"created_at": now, "updated_at": now}
            )
        else:
            changed.append({"id": found[0], **summary, "updated_at": now})
    if new_rows:
        insert_many(session, Plan, new_rows)
    if changed:
        bulk_update_by_id(session, Plan, changed)
    if recompute:
        refresh_plans(session, recompute, now, may_shrink=False)


def _summaries(session: Session, pairs: set[Pair]) -> dict[Pair, tuple[int, dict[str, Any]]]:
    """The stored summary of each plan among ``pairs`` (with its id).

    Looked up by the exact (customer, product) keys: a customer's other plans are not read.
    """
    wanted = sorted(pairs)
    mark = placeholder(session)
    found: dict[Pair, tuple[int, dict[str, Any]]] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        keys = ", ".join([f"({mark}, {mark})"] * len(chunk))
        # A join on a list of keys, which both databases turn into index seeks (SQLite scans
        # the whole index for a row-value IN).
        columns = ", ".join(f"plan.{name}" for name in SUMMARY_FIELDS)
        sql = (
            f"WITH k(c, p) AS (VALUES {keys})"  # noqa: S608
            f" SELECT plan.id, plan.customer_id, plan.product_id, {columns}"
            " FROM k JOIN plan ON plan.customer_id = k.c AND plan.product_id = k.p"
        )
        params = tuple(v for pair in chunk for v in pair)
        for plan_id, customer_id, product_id, *values in fetch_raw(session, sql, params):
            if (customer_id, product_id) in pairs:
                summary = dict(zip(SUMMARY_FIELDS, values, strict=True))
                for key in ("first_ordered_on", "last_ordered_on"):
                    if isinstance(summary[key], str):  # SQLite returns dates as text
                        summary[key] = date.fromisoformat(summary[key])
                found[(customer_id, product_id)] = (plan_id, summary)
    return found


def _upsert_summaries(
    session: Session, customer_ids: list[int], product_ids: list[int], now: datetime
) -> Any:
    orders, lines, plan = table_of(Order), table_of(OrderLine), table_of(Plan)
    days = (
        select(
            orders.c.customer_id,
            lines.c.product_id,
            orders.c.ordered_on.label("day"),
            func.sum(lines.c.quantity).label("quantity"),
        )
        .join(orders, orders.c.id == lines.c.order_id)
        .where(
            orders.c.status == OrderStatus.PLACED.value,
            orders.c.customer_id.in_(customer_ids),
            # Written as an expression so that SQLite's planner keeps to the customer index:
            # with a plain IN it may scan the lines of every listed product instead.
            (lines.c.product_id + 0).in_(product_ids),
        )
        .group_by(orders.c.customer_id, lines.c.product_id, orders.c.ordered_on)
        .subquery()
    )
    ranked = select(
        days,
        func.row_number()
        .over(partition_by=[days.c.customer_id, days.c.product_id], order_by=days.c.day.desc())
        .label("recency"),
    ).subquery()
    summary = select(
        ranked.c.customer_id,
        ranked.c.product_id,
        literal(PlanStatus.ACTIVE, plan.c.status.type).label("status"),
        func.count().label("n_purchases"),
        func.sum(ranked.c.quantity).label("total_quantity"),
        func.min(ranked.c.day).label("first_ordered_on"),
        func.max(ranked.c.day).label("last_ordered_on"),
        func.sum(case((ranked.c.recency == 1, ranked.c.quantity))).label("last_quantity"),
        literal(now, UTCDateTime).label("created_at"),
        literal(now, UTCDateTime).label("updated_at"),
    ).group_by(ranked.c.customer_id, ranked.c.product_id)
    # SQLite needs a WHERE in INSERT ... SELECT ... ON CONFLICT to parse it unambiguously.
    summary = summary.where(true())
    insert = (
        postgresql.insert(plan)
        if session.get_bind().dialect.name == "postgresql"
        else sqlite.insert(plan)
    )
    statement = insert.from_select([c.name for c in summary.selected_columns], summary)
    return statement.on_conflict_do_update(
        index_elements=[plan.c.customer_id, plan.c.product_id],
        set_={name: statement.excluded[name] for name in (*SUMMARY_FIELDS, "updated_at")},
    ).returning(plan.c.customer_id, plan.c.product_id)


def _empty_summaries(session: Session, pairs: set[Pair], now: datetime) -> list[int]:
    """Clear the summary and forecast of the plans of ``pairs`` (pairs without a placed order:
    the summary upsert returned every pair that has one) that still count purchases, as they
    have lost them all; returns their ids."""
    customer_ids = sorted({c for c, _ in pairs})
    stale: list[int] = []
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        for plan_id, customer_id, product_id in session.execute(
            select(pk(Plan), col(Plan.customer_id), col(Plan.product_id)).where(
                col(Plan.customer_id).in_(chunk), col(Plan.n_purchases) > 0
            )
        ):
            if (customer_id, product_id) in pairs:
                stale.append(plan_id)
    if stale:
        # Its forecast and prompt day went with its purchases (all cancelled or returned): the
        # plan is as before its first order.
        empty = EMPTY_SUMMARY | NO_FORECAST | {"updated_at": now}
        bulk_update_by_id(session, Plan, [{"id": plan_id, **empty} for plan_id in stale])
    return stale


def customer_zones(
    session: Session, customer_ids: Iterable[int], default_timezone: str
) -> dict[int, ZoneInfo]:
    """Each customer's time zone (the default for those without one)."""
    wanted = sorted(set(customer_ids))
    zones: dict[int, ZoneInfo] = {}
    cache: dict[str, ZoneInfo] = {}
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        for customer_id, tz in session.execute(
            select(pk(Customer), col(Customer.timezone)).where(pk(Customer).in_(chunk))
        ):
            name = tz or default_timezone
            zones[customer_id] = cache.setdefault(name, ZoneInfo(name))
    return zones


def lock_customers(session: Session, customer_ids: Iterable[int]) -> None:
    """Lock the customers' rows until the transaction ends (PostgreSQL; SQLite already has one
    writer at a time), in id order: syncs, dispatchers and the re-score sweep touching the
    same customers then take turns, and cannot deadlock over them."""
    if session.connection().dialect.name != "postgresql":
        return
    wanted = sorted(set(customer_ids))
    for start in range(0, len(wanted), CHUNK):
        session.execute(
            select(pk(Customer))
            .where(pk(Customer).in_(wanted[start : start + CHUNK]))
            .order_by(pk(Customer))
            .with_for_update()
        ).all()
