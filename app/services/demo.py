"""A small demo shop: customers, products and about a year of orders.

Deterministic for a given seed and ``today``; loaded through the same sync service as the API,
so plans come out exactly as they would for a real shop.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import ActorType, Customer, Locale, OrderStatus
from app.services import sync
from app.services.types import Actor, CustomerIn, LineIn, OrderIn, ProductIn

# (external id, name, unit as the shop writes it, typical days one unit lasts)
PRODUCTS = [
    ("rice-5kg", "お米 5kg", "袋", 30),
    ("coffee-beans", "コーヒー豆 200g", "袋", 14),
    ("green-tea", "煎茶 100g", "袋", 21),
    ("detergent", "洗濯洗剤 詰め替え", "袋", 35),
    ("shampoo", "シャンプー 詰め替え", "袋", 45),
    ("toilet-paper", "トイレットペーパー 12ロール", "パック", 28),
    ("cat-food", "キャットフード 2kg", "袋", 25),
    ("protein", "プロテイン 1kg", "袋", 30),
    ("water-2l", "天然水 2L×6本", "ケース", 10),
    ("contact-lens", "コンタクトレンズ 30枚", "箱", 30),
    ("dish-soap", "食器用洗剤", "本", 40),
    ("vitamins", "マルチビタミン 60粒", "本", 60),
]
FAMILY = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
GIVEN = ["花子", "太郎", "美咲", "健太", "陽子", "翔", "由美", "大輔", "さくら", "蓮"]
ENGLISH = ["Emma Brown", "Liam Smith", "Olivia Jones", "Noah Taylor", "Ava Wilson"]
TOKYO = ZoneInfo("Asia/Tokyo")
DEMO_ACTOR = Actor(ActorType.SYSTEM, "demo")


def is_empty(session: Session) -> bool:
    return (session.scalar(select(func.count()).select_from(Customer)) or 0) == 0


def load_demo(
    session: Session, today: date, now: datetime, n_customers: int = 60, seed: int = 7
) -> int:
    """Load the demo shop; returns the number of orders created."""
    rng = random.Random(seed)
    for ext, name, unit, _ in PRODUCTS:
        sync.upsert_product(session, ProductIn(ext, name, unit, 1.0), DEMO_ACTOR, now)
    orders: list[OrderIn] = []
    for i in range(n_customers):
        english = i % 6 == 5
        name = (
            ENGLISH[i % len(ENGLISH)] if english else rng.choice(FAMILY) + " " + rng.choice(GIVEN)
        )
        ext = f"demo-c{i + 1:03d}"
        sync.upsert_customer(
            session,
            CustomerIn(
                external_id=ext,
                email=f"customer{i + 1:03d}@example.jp"
                if not english
                else f"customer{i + 1:03d}@example.com",
                name=name,
                locale=Locale.EN if english else Locale.JA,
                timezone="Asia/Tokyo",
            ),
            "Asia/Tokyo",
            DEMO_ACTOR,
            now,
        )
        orders.extend(_customer_orders(rng, ext, today, now))
    orders.sort(key=lambda o: o.ordered_at)
    sync.sync_orders(session, orders, "Asia/Tokyo", DEMO_ACTOR, now)
    return len(orders)


def _customer_orders(
    rng: random.Random, customer_ext: str, today: date, now: datetime
) -> list[OrderIn]:
    picks = rng.sample(PRODUCTS, rng.randint(1, 4))
    orders = []
    for ext, _, _, days_per_unit in picks:
        # Each household uses the product at its own pace, which drifts a little over the year.
        pace = days_per_unit * rng.lognormvariate(0, 0.35)
        day = today - timedelta(days=rng.randint(300, 365))
        n = 0
        while day < today:
            quantity = rng.choices([1, 2, 3], weights=[70, 22, 8])[0]
            ordered_at = datetime.combine(day, time(rng.randint(8, 22), rng.randint(0, 59)), TOKYO)
            n += 1
            # Delivered two days later; the most recent orders are still on their way.
            delivered = ordered_at + timedelta(days=2)
            orders.append(
                OrderIn(
                    external_id=f"{customer_ext}-{ext}-{n:03d}",
                    customer_external_id=customer_ext,
                    ordered_at=ordered_at.astimezone(UTC),
                    updated_at=ordered_at.astimezone(UTC),
                    status=rng.choices(list(OrderStatus), weights=[96, 3, 1])[0],
                    delivered_at=delivered.astimezone(UTC) if delivered <= now else None,
                    reorder_id=None,
                    lines=(LineIn(ext, quantity),),
                )
            )
            pace *= rng.lognormvariate(0, 0.05)
            day += timedelta(days=max(3, round(pace * quantity * rng.lognormvariate(0, 0.2))))
    return orders
