"""Small builders of API payloads; tests override only what they are about."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.models import Customer, Locale, Plan, PlanStatus, Product


def customer_body(**overrides: Any) -> dict[str, Any]:
    return {
        "email": "hanako@example.jp",
        "name": "山田花子",
        "locale": "ja",
        "timezone": "Asia/Tokyo",
    } | overrides


def product_body(**overrides: Any) -> dict[str, Any]:
    return {"name": "お米 5kg", "unit": "bag", "pack_size": 1} | overrides


def order_body(**overrides: Any) -> dict[str, Any]:
    return {
        "customer_external_id": "c-1",
        "ordered_at": "2026-10-01T10:00:00+09:00",
        "updated_at": "2026-10-01T10:00:00+09:00",
        "status": "placed",
        "delivered_at": None,
        "reorder_id": None,
        "lines": [{"product_external_id": "p-1", "quantity": 2}],
    } | overrides


# ---- database rows, for the tests of prompts, links and deliveries ----------------------------

NOW = datetime(2026, 11, 20, 1, 0, tzinfo=UTC)
"""10:00 on 20 Nov 2026 in Tokyo: the default send hour of the test customers' prompt day."""


def make_plan(
    session: Session,
    customer: str = "c-1",
    product: str = "p-1",
    prompt_on: date | None = date(2026, 11, 20),
    last_ordered_on: date = date(2026, 10, 20),
    email: str | None = None,
    locale: Locale = Locale.JA,
    timezone: str = "Asia/Tokyo",
    **plan_fields: Any,
) -> Plan:
    """A customer × product plan with a forecast whose prompt day is ``prompt_on``."""
    found = session.scalar(select(Customer).where(col(Customer.external_id) == customer))
    if found is None:
        found = Customer(external_id=customer, email=email or f"{customer}@example.jp",
                         name="山田花子" if locale is Locale.JA else "Pat Smith", locale=locale,
                         timezone=timezone, created_at=NOW, updated_at=NOW)  # fmt: skip
        session.add(found)
    item = session.scalar(select(Product).where(col(Product.external_id) == product))
    if item is None:
        item = Product(external_id=product, name=f"洗剤 {product}", unit="本", created_at=NOW,
                       updated_at=NOW)  # fmt: skip
        session.add(item)
    session.flush()
    assert found.id is not None and item.id is not None
    plan = Plan(
        customer_id=found.id, product_id=item.id, status=PlanStatus.ACTIVE, n_purchases=3,
        total_quantity=6, first_ordered_on=date(2026, 8, 20), last_ordered_on=last_ordered_on,
        last_quantity=2, median_on=date(2026, 11, 24), q10_on=date(2026, 11, 18),
        q90_on=date(2026, 12, 3), p_active=0.9, prompt_on=prompt_on, forecast_method="model",
        explanation="3 purchases, about 2 units every 30 days",
        explanation_data={"n_purchases": 3, "units_per_purchase": 2.0, "interval_days": 30.0,
                          "runout_quantile": 0.1, "runout_on": "2026-11-23", "lead_time_days": 3,
                          "method": "model", "preferred_interval_days": None},
        created_at=NOW, updated_at=NOW, **plan_fields,
    )  # fmt: skip
    session.add(plan)
    session.flush()
    return plan
