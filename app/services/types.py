"""Typed values passed from the API edge into the services (validated already)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from app.models import ActorType, Locale, OrderStatus


@dataclass(frozen=True)
class Actor:
    type: ActorType
    name: str


@dataclass(frozen=True)
class CustomerIn:
    external_id: str
    email: str
    name: str | None
    locale: Locale
    timezone: str | None  # None: the configured default


@dataclass(frozen=True)
class ProductIn:
    external_id: str
    name: str
    unit: str | None
    pack_size: float


@dataclass(frozen=True)
class LineIn:
    product_external_id: str
    quantity: int


@dataclass(frozen=True)
class OrderIn:
    external_id: str
    customer_external_id: str
    ordered_at: datetime
    updated_at: datetime
    status: OrderStatus
    delivered_at: datetime | None
    reorder_id: int | None
    lines: tuple[LineIn, ...]
