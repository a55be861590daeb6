"""Small builders of API payloads; tests override only what they are about."""

from __future__ import annotations

from typing import Any


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
