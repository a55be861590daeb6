"""Nightly refit at scale, and per-order re-estimation, on SQLite.

Builds a synthetic shop (default 1,000,000 plans and 5,000,000 order lines), then times:

1. the bare I/O floor: reading the purchase history the refit reads and writing the same
   forecast columns back onto every plan, with no model at all;
2. ``flask forecast refit`` end to end (read, fit, score, write), which must stay within 120 s;
3. per-order re-estimation: syncing one order and re-scoring its customer's plans from the
   stored model (median over many orders; target <= 5 ms), beside a bare read and write of the
   same plan row.

    .venv/bin/python benchmarks/refit.py [--plans 1000000] [--lines-per-plan 5] [--orders 200]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, select, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from sqlmodel import col  # noqa: E402

from app import migrate  # noqa: E402
from app.db import bulk_update_by_id, make_engine  # noqa: E402
from app.models import Order, OrderLine, Plan  # noqa: E402
from app.services import forecasting  # noqa: E402
from app.services.plans import refresh_plans  # noqa: E402

TODAY = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
PRODUCTS = 500
PLANS_PER_CUSTOMER = 5


def build_shop(path: Path, n_plans: int, lines_per_plan: float, seed: int = 3) -> int:
    """Write customers, products, orders, lines and plan summaries straight into SQLite."""
    rng = np.random.default_rng(seed)
    n_customers = n_plans // PLANS_PER_CUSTOMER
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    stamp = NOW.replace(tzinfo=None).isoformat(" ", "microseconds")
    conn.executemany(
        "INSERT INTO customer (id, external_id, locale, timezone, is_placeholder, created_at,"
        " updated_at) VALUES (?, ?, 'ja', 'Asia/Tokyo', 0, ?, ?)",
        ((i, f"c{i}", stamp, stamp) for i in range(1, n_customers + 1)),
    )
    conn.executemany(
        "INSERT INTO product (id, external_id, pack_size, is_placeholder, default_interval_days,"
        " min_interval_days, max_interval_days, lead_time_days, target_stockout_risk,"
        " prompt_expiry_days, created_at, updated_at)"
        " VALUES (?, ?, 1, 0, 30, 3, 180, 3, 0.1, 7, ?, ?)",
        ((i, f"p{i}", stamp, stamp) for i in range(1, PRODUCTS + 1)),
    )
    # Each customer visits the shop on a few days; each of their products is bought on a
    # subset of those visits, at the product's own pace.
    order_id = 0
    orders: list[tuple[object, ...]] = []
    lines: list[tuple[int, int, int]] = []
    start = TODAY - timedelta(days=365)
    for customer in range(1, n_customers + 1):
        products = rng.choice(PRODUCTS, PLANS_PER_CUSTOMER, replace=False) + 1
        n_visits = max(2, int(rng.poisson(lines_per_plan * 2)))
        visit_days = np.sort(rng.choice(365, n_visits, replace=False))
        chosen = rng.random((PLANS_PER_CUSTOMER, n_visits)) < lines_per_plan / n_visits
        chosen[:, 0] = True  # every pair has at least one purchase
        for v, day in enumerate(visit_days):
            bought = products[chosen[:, v]]
            if not len(bought):
                continue
            order_id += 1
            on = start + timedelta(days=int(day))
            at = f"{on.isoformat()} 01:00:00.000000"
            orders.append(
                (order_id, f"o{order_id}", customer, at, on.isoformat(), at, stamp, stamp)
            )
            lines.extend((order_id, int(p), int(rng.integers(1, 3))) for p in bought)
        if len(lines) > 500_000:
            _flush(conn, orders, lines)
    _flush(conn, orders, lines)
    conn.commit()
    conn.close()
    return order_id


def _flush(
    conn: sqlite3.Connection, orders: list[tuple[object, ...]], lines: list[tuple[int, int, int]]
) -> None:
    conn.executemany(
        "INSERT INTO orders (id, external_id, customer_id, status, ordered_at, ordered_on,"
        " source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 'placed', ?, ?, ?, ?, ?)",
        orders,
    )
    conn.executemany(
        "INSERT INTO order_line (order_id, product_id, quantity) VALUES (?, ?, ?)", lines
    )
    orders.clear()
    lines.clear()


def build_plans(engine: Engine, n_customers: int) -> None:
    with Session(engine) as session:
        step = 20_000
        for first in range(1, n_customers + 1, step):
            customers = range(first, min(first + step, n_customers + 1))
            pairs = {
                (c, p)
                for c, p in session.execute(
                    select(col(Order.customer_id), col(OrderLine.product_id))
                    .join(OrderLine, col(OrderLine.order_id) == col(Order.id))
                    .where(col(Order.customer_id).in_(list(customers)))
                )
            }
            refresh_plans(session, pairs, NOW)
        session.commit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plans", type=int, default=1_000_000)
    parser.add_argument("--lines-per-plan", type=float, default=5.0)
    parser.add_argument("--orders", type=int, default=200, help="single orders to re-estimate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaidoki-refit-") as tmp:
        path = Path(tmp) / "shop.sqlite3"
        url = f"sqlite:///{path}"
        migrate.upgrade(url)
        t0 = time.perf_counter()
        n_orders = build_shop(path, args.plans, args.lines_per_plan)
        engine = make_engine(url)
        build_plans(engine, args.plans // PLANS_PER_CUSTOMER)
        with Session(engine) as session:
            n_lines = session.execute(text("SELECT count(*) FROM order_line")).scalar_one()
            n_plans = session.execute(text("SELECT count(*) FROM plan")).scalar_one()
        print(f"shop: {n_plans:,} plans, {n_orders:,} orders, {n_lines:,} lines "
              f"(built in {time.perf_counter() - t0:.0f} s)")  # fmt: skip

        # 1. The floor: the same reads and writes, no model.
        with Session(engine) as session:
            t = time.perf_counter()
            history = forecasting.load_history(session)
            t_read = time.perf_counter() - t
            ids = list(session.scalars(select(col(Plan.id))))
            rows = [
                {"id": i, "median_on": TODAY, "q10_on": TODAY, "q90_on": TODAY, "prompt_on": TODAY,
                 "rate_per_day": 0.1, "p_active": 0.9, "p_within_horizon": 0.5,
                 "forecast_method": "model", "n_intervals": 3, "explanation": "x" * 90,
                 "explanation_data": {"n_purchases": 3}, "model_version": "io-only",
                 "forecast_at": NOW, "updated_at": NOW}
                for i in ids
            ]  # fmt: skip
            t = time.perf_counter()
            bulk_update_by_id(session, Plan, rows)
            session.commit()
            t_write = time.perf_counter() - t
        del rows
        io_only = t_read + t_write

        # 2. The refit.
        with Session(engine) as session:
            t = time.perf_counter()
            result = forecasting.refit(session, TODAY, NOW)
            session.commit()
            t_refit = time.perf_counter() - t

        # 3. Per-order re-estimation: one customer's pairs from the stored model.
        rng = np.random.default_rng(9)
        customers = rng.choice(np.unique(history.pair_customer_ids), args.orders, replace=False)
        pairs_of: dict[int, set[tuple[int, int]]] = {int(c): set() for c in customers}
        for c, p in zip(history.pair_customer_ids, history.pair_product_ids, strict=True):
            if int(c) in pairs_of:
                pairs_of[int(c)].add((int(c), int(p)))
        estimate_ms, floor_ms = [], []
        with Session(engine) as session:
            forecasting.current_params(session)  # load the stored model once, like a worker
            for customer in customers:
                t = time.perf_counter()
                forecasting.reestimate(session, pairs_of[int(customer)], TODAY, NOW)
                estimate_ms.append(1000 * (time.perf_counter() - t))
                t = time.perf_counter()
                plan = session.scalars(
                    select(Plan).where(col(Plan.customer_id) == int(customer))
                ).first()
                assert plan is not None
                bulk_update_by_id(session, Plan, [{"id": plan.id, "updated_at": NOW}])
                floor_ms.append(1000 * (time.perf_counter() - t))
            session.rollback()

    print(f"{'step':<52}{'seconds':>10}")
    print(f"{'read history + write plans, no model (floor)':<52}{io_only:>10.1f}")
    print(f"{'   of which read':<52}{t_read:>10.1f}")
    print(f"{'   of which write':<52}{t_write:>10.1f}")
    print(f"{'forecast refit (read, fit, score, write)':<52}{t_refit:>10.1f}")
    verdict = "met" if t_refit <= 120 else "NOT met"
    print(f"refit / floor: {t_refit / io_only:.2f}   target: refit <= 120 s -> "
          f"{verdict} ({result.n_plans_written:,} plans)")  # fmt: skip
    est, flo = statistics.median(estimate_ms), statistics.median(floor_ms)
    print(f"per-order re-estimation, median of {len(estimate_ms)}: {est:.2f} ms "
          f"(bare read+write of one plan: {flo:.2f} ms, ratio {est / flo:.1f}); "
          f"target <= 5 ms -> {'met' if est <= 5 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
