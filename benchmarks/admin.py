"""Admin page render times with 100,000 customers and about 1,000,000 orders (SQLite).

Builds the shop with ``benchmarks/refit.py``'s generator (5 plans per customer), fits and
scores the forecast, adds 100,000 prompts with answers, 100,000 outbox rows (some dead) and
100,000 audit entries, then signs in and requests every admin page repeatedly in-process
(Flask test client: the page's own work, no network), printing each page's median and p90
next to a trivial route's in the same run. Target: every page's median under 300 ms.

    .venv/bin/python benchmarks/admin.py [--customers 100000] [--repeat 11]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy.orm import Session  # noqa: E402

from app import create_app, migrate  # noqa: E402
from app.db import make_engine  # noqa: E402
from app.models import AdminRole  # noqa: E402
from app.services import admin_users, forecasting  # noqa: E402
from benchmarks.refit import NOW, PLANS_PER_CUSTOMER, TODAY, build_plans, build_shop  # noqa: E402
from benchmarks.service import SECRET  # noqa: E402
from tests.admin.conftest import csrf_token, sign_in  # noqa: E402

EMAIL, PASSWORD = "bench@example.jp", "benchmark password 123"


def add_activity(path: Path, n_customers: int, n_rows: int, seed: int = 5) -> None:
    """Prompts (sent over the last 30 days, with answers), outbox rows and audit entries."""
    rng = np.random.default_rng(seed)
    conn = sqlite3.connect(path)
    statuses = ["sent", "confirmed", "skipped", "snoozed", "expired"]
    stamp = NOW.replace(tzinfo=None).isoformat(" ", "microseconds")
    n_plans = conn.execute("SELECT max(id) FROM plan").fetchone()[0]
    rows = []
    plans = rng.permutation(n_plans)[:n_rows] + 1  # one prompt per plan (one open at a time)
    for i, plan in enumerate(plans.tolist(), start=1):
        sent = NOW - timedelta(seconds=int(rng.integers(0, 30 * 86400)))
        at = sent.replace(tzinfo=None).isoformat(" ", "microseconds")
        rows.append((i, plan, statuses[i % 5], at, f"{i:032x}", stamp))
    conn.executemany(
        "INSERT INTO prompt (id, plan_id, customer_id, status, due_at, nonce, quantity, sent_at,"
        " created_at, updated_at) SELECT ?, id, customer_id, ?, ?, ?, 1, ?, ?, ? FROM plan"
        " WHERE id = ?",
        ((i, s, sent, nonce, sent, st, st, plan) for i, plan, s, sent, nonce, st in rows),
    )
    outbox_states = ["delivered"] * 8 + ["pending", "dead"]
    conn.executemany(
        "INSERT INTO outbox (id, kind, dedupe_key, status, event_type, recipient, payload,"
        " attempts, available_at, last_error, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, 'prompt', 'c@example.jp', 'x', 1, ?, ?, ?, ?)",
        (
            (i, "email" if i % 3 else "webhook", f"k{i}", outbox_states[i % 10], stamp,
             "HTTP 503" if i % 10 == 9 else None, stamp, stamp)
            for i in range(1, n_rows + 1)
        ),
    )  # fmt: skip
    # Every email message delivered into the mailbox (as with no SMTP server configured).
    raw = _email()
    conn.executemany(
        "INSERT INTO mailbox_message (outbox_id, recipient, subject, raw, received_at)"
        " VALUES (?, 'c@example.jp', 'お米 5kg がそろそろなくなる頃です', ?, ?)",
        (
            (i, raw, stamp)
            for i in range(1, n_rows + 1)
            if i % 3 and outbox_states[i % 10] == "delivered"
        ),
    )
    conn.executemany(
        "INSERT INTO audit_log (at, actor_type, actor, action, entity_type, entity_id, before,"
        " after) VALUES (?, 'customer', ?, 'prompt.skip', 'plan', ?, '{}', '{}')",
        ((stamp, f"c{i % n_customers + 1}", str(i)) for i in range(1, n_rows + 1)),
    )
    conn.commit()
    conn.close()


def _email() -> str:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = "お米 5kg", "k@example.jp", "c@example.jp"
    link = "https://k.example.jp/l/p/" + "x" * 120
    message.set_content(f"お米 5kg × 1\n2026年12月6日頃になくなりそうです。\n{link}\n" * 3)
    message.add_alternative(f"<p>お米 5kg × 1</p><p><a href='{link}'>注文する</a></p>" * 3,
                            subtype="html")  # fmt: skip
    return message.as_string()


def time_pages(path: Path, repeat: int, customer: int) -> dict[str, list[float]]:
    # Without an SMTP server (as in the demo) the mailbox pages are part of the admin.
    app = create_app({"KAIDOKI_ENV": "demo", "KAIDOKI_DATABASE_URL": f"sqlite:///{path}",
                      "KAIDOKI_SECRET_KEY": SECRET, "KAIDOKI_BASE_URL": "https://k.example.jp",
                      "KAIDOKI_LOG_LEVEL": "WARNING"}, instance_path=str(path.parent))  # fmt: skip
    client = app.test_client()
    signed_in = sign_in(client, EMAIL, PASSWORD)
    assert signed_in.status_code == 302, signed_in.text
    csrf = csrf_token(client.get("/admin/products/1").text)
    preview = {"csrf_token": csrf, "action": "preview", "default_interval_days": 30,
               "min_interval_days": 1, "max_interval_days": 180, "lead_time_days": 5,
               "target_stockout_risk": "0.2", "prompt_expiry_days": 7}  # fmt: skip
    pages = {
        "trivial route /healthz": lambda: client.get("/healthz"),
        "dashboard": lambda: client.get("/admin/"),
        "products (page 1)": lambda: client.get("/admin/products"),
        "products (last page)": lambda: client.get("/admin/products?page=10"),
        "product settings": lambda: client.get("/admin/products/1"),
        "product preview (POST)": lambda: client.post("/admin/products/1", data=preview),
        "customers (page 1)": lambda: client.get("/admin/customers"),
        "customers (page 1000)": lambda: client.get("/admin/customers?page=1000"),
        "customer search": lambda: client.get(f"/admin/customers?q=c{customer}"),
        "customer page": lambda: client.get(f"/admin/customers/{customer}"),
        "deliveries": lambda: client.get("/admin/deliveries"),
        "deliveries (dead)": lambda: client.get("/admin/deliveries?status=dead"),
        "audit log": lambda: client.get("/admin/audit"),
        "audit log (filtered)": lambda: client.get(f"/admin/audit?actor=c{customer}"),
        "mailbox": lambda: client.get("/admin/mailbox/"),
        "mailbox (last page)": lambda: client.get("/admin/mailbox/?page=1000"),
        "mailbox message": lambda: client.get("/admin/mailbox/7"),
        "mailbox message HTML": lambda: client.get("/admin/mailbox/7/html"),
    }
    timings: dict[str, list[float]] = {}
    for name, request in pages.items():
        request()  # warm
        timings[name] = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = request()
            timings[name].append(time.perf_counter() - started)
            if response.status_code != 200:
                raise SystemExit(f"{name}: HTTP {response.status_code}")
    return timings


def build(path: Path, url: str, n_customers: int) -> None:
    migrate.upgrade(url)
    started = time.perf_counter()
    n_orders = build_shop(path, n_customers * PLANS_PER_CUSTOMER, 5.0)
    engine = make_engine(url)
    build_plans(engine, n_customers)
    with Session(engine) as session:
        forecasting.refit(session, TODAY, NOW)
        admin_users.create_user(session, EMAIL, PASSWORD, AdminRole.OPERATOR, "bench", NOW)
        session.commit()
    engine.dispose()
    add_activity(path, n_customers, 100_000)
    built = time.perf_counter() - started
    print(f"shop: {n_customers:,} customers, {n_orders:,} orders, up to 100,000 prompts, "
          f"100,000 outbox rows and audit entries (built in {built:.0f} s)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--keep", type=Path, metavar="FILE",
                        help="build the shop into FILE, or reuse FILE when it exists")  # fmt: skip
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kaidoki-admin-") as tmp:
        path = args.keep or Path(tmp) / "shop.sqlite3"
        if not path.exists():
            building = path.with_name(path.name + ".building")  # a broken build is not kept
            build(building, f"sqlite:///{building}", args.customers)
            building.rename(path)
        timings = time_pages(path, args.repeat, args.customers // 2 + 7)
    print(f"{'page':28} {'median ms':>10} {'p90 ms':>8}")
    worst = 0.0
    for name, times in timings.items():
        median = statistics.median(times)
        p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
        if not name.startswith("trivial"):
            worst = max(worst, median)
        print(f"{name:28} {1000 * median:10.1f} {1000 * p90:8.1f}")
    verdict = "met" if worst < 0.300 else "NOT met"
    print(f"slowest page median {1000 * worst:.0f} ms; target < 300 ms: {verdict}")


if __name__ == "__main__":
    main()
