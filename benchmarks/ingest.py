"""Order-sync throughput: 100,000 orders through ``POST /api/v1/orders/batch`` into SQLite.

Starts the real service (gunicorn, two workers for the two cores) on a loopback port, sends
the orders in batches of 1,000 from two concurrent clients (validation runs in parallel;
SQLite takes one writer at a time), and prints order lines per second beside the raw
rate of inserting the same rows with ``executemany`` into the same schema, measured in the same
run. Target: at least 20,000 order lines per second.

    .venv/bin/python benchmarks/ingest.py [--orders 100000] [--batch 1000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import create_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import migrate  # noqa: E402
from app.db import session_scope  # noqa: E402
from app.services import forecasting  # noqa: E402
from app.services.api_keys import create_api_key  # noqa: E402
from benchmarks.service import gunicorn  # noqa: E402


def make_orders(n_orders: int, seed: int = 1) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    orders = []
    for i in range(n_orders):
        at = (start + timedelta(minutes=5 * i)).isoformat()
        products = rng.sample(range(500), rng.choice([2, 3, 4]))
        orders.append(
            {
                "external_id": f"o-{i}",
                "customer_external_id": f"c-{rng.randrange(20_000)}",
                "ordered_at": at,
                "updated_at": at,
                "status": "placed",
                "lines": [
                    {"product_external_id": f"p-{p}", "quantity": rng.randint(1, 3)}
                    for p in products
                ],
            }
        )
    return orders


def bench_service(
    orders: list[dict[str, Any]],
    later: list[dict[str, Any]],
    batch: int,
    workers: int,
    folder: Path,
) -> tuple[float, float]:
    """Seconds to sync ``orders`` into an empty shop, then ``later`` after a forecast refit."""
    db_url = f"sqlite:///{folder / 'service.sqlite3'}"
    migrate.upgrade(db_url)
    engine = create_engine(db_url)
    with session_scope(engine) as session:
        key = create_api_key(session, "bench", datetime.now(UTC)).key
    engine.dispose()

    with gunicorn(db_url, workers) as url:

        def send(chunk: list[bytes]) -> None:
            http = requests.Session()
            http.headers["Authorization"] = f"Bearer {key}"
            for body in chunk:
                response = http.post(
                    url + "/api/v1/orders/batch",
                    data=body,
                    headers={"Content-Type": "application/json"},
                    timeout=120,
                )
                response.raise_for_status()
                bad = [r for r in response.json()["results"] if r["result"] != "created"]
                if bad:
                    raise RuntimeError(f"unexpected results: {bad[:3]}")

        def sync_all(some: list[dict[str, Any]]) -> float:
            bodies = [
                json.dumps({"orders": some[i : i + batch]}).encode()
                for i in range(0, len(some), batch)
            ]
            started = time.perf_counter()
            with ThreadPoolExecutor(workers) as pool:
                for future in [pool.submit(send, bodies[i::workers]) for i in range(workers)]:
                    future.result()
            return time.perf_counter() - started

        first = sync_all(orders)
        engine = create_engine(db_url)
        with session_scope(engine) as session:
            last_day = datetime.fromisoformat(str(orders[-1]["ordered_at"])).date()
            forecasting.refit(session, last_day, datetime.now(UTC))
        engine.dispose()
        return first, sync_all(later)


def bench_executemany(orders: list[dict[str, Any]], folder: Path) -> float:
    """The floor: the same order and line rows inserted with executemany, no logic at all."""
    db_url = f"sqlite:///{folder / 'raw.sqlite3'}"
    migrate.upgrade(db_url)
    conn = sqlite3.connect(folder / "raw.sqlite3")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    now = datetime.now(UTC).replace(tzinfo=None).isoformat(" ")
    customers = sorted({str(o["customer_external_id"]) for o in orders})
    products = sorted({str(line["product_external_id"]) for o in orders for line in o["lines"]})
    started = time.perf_counter()
    conn.executemany(
        "INSERT INTO customer (id, external_id, locale, timezone, is_placeholder, created_at,"
        " updated_at) VALUES (?, ?, 'ja', 'Asia/Tokyo', 1, ?, ?)",
        [(i + 1, ext, now, now) for i, ext in enumerate(customers)],
    )
    conn.executemany(
        "INSERT INTO product (id, external_id, pack_size, is_placeholder, default_interval_days,"
        " min_interval_days, max_interval_days, lead_time_days, target_stockout_risk,"
        " prompt_expiry_days, created_at, updated_at)"
        " VALUES (?, ?, 1, 1, 30, 7, 180, 3, 0.1, 7, ?, ?)",
        [(i + 1, ext, now, now) for i, ext in enumerate(products)],
    )
    cid = {ext: i + 1 for i, ext in enumerate(customers)}
    pid = {ext: i + 1 for i, ext in enumerate(products)}
    conn.executemany(
        "INSERT INTO orders (id, external_id, customer_id, status, ordered_at, ordered_on,"
        " source_updated_at, created_at, updated_at) VALUES (?, ?, ?, 'placed', ?, ?, ?, ?, ?)",
        [
            (i + 1, o["external_id"], cid[str(o["customer_external_id"])], o["ordered_at"],
             str(o["ordered_at"])[:10], o["updated_at"], now, now)
            for i, o in enumerate(orders)
        ],
    )  # fmt: skip
    conn.executemany(
        "INSERT INTO order_line (order_id, product_id, quantity) VALUES (?, ?, ?)",
        [
            (i + 1, pid[str(line["product_external_id"])], line["quantity"])
            for i, o in enumerate(orders)
            for line in o["lines"]
        ],
    )
    conn.commit()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument(
        "--later", type=int, default=10_000, help="orders synced after a refit (re-estimation on)"
    )
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers = clients")
    args = parser.parse_args()
    everything = make_orders(args.orders + args.later)
    orders, later = everything[: args.orders], everything[args.orders :]
    n_lines = sum(len(o["lines"]) for o in orders)
    n_later = sum(len(o["lines"]) for o in later)
    with tempfile.TemporaryDirectory(prefix="kaidoki-ingest-") as tmp:
        folder = Path(tmp)
        raw = bench_executemany(orders, folder)
        service, after_refit = bench_service(orders, later, args.batch, args.workers, folder)
    print(f"orders: {len(orders):,}  lines: {n_lines:,}  batch size: {args.batch}  "
          f"workers/clients: {args.workers}")  # fmt: skip
    print(f"{'path':<42}{'seconds':>10}{'lines/s':>12}")
    print(f"{'raw executemany (baseline, no logic)':<42}{raw:>10.2f}{n_lines / raw:>12,.0f}")
    print(
        f"{'POST /api/v1/orders/batch (gunicorn)':<42}{service:>10.2f}{n_lines / service:>12,.0f}"
    )
    if later:
        print(f"{'same, after a refit (re-scores plans)':<42}{after_refit:>10.2f}"
              f"{n_later / after_refit:>12,.0f}   ({len(later):,} more orders)")  # fmt: skip
    print(f"service / raw rate: {raw / service:.3f}   target: >= 20,000 lines/s -> "
          f"{'met' if n_lines / service >= 20_000 else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
