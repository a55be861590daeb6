"""Read access to synced records, shaped for the API (the view layer never writes SQL)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.models import Customer, Order, OrderLine, OrderStatus, Product


@dataclass(frozen=True)
class LineView:
    product_external_id: str
    quantity: int


@dataclass(frozen=True)
class OrderView:
    external_id: str
    customer_external_id: str
    status: OrderStatus
    ordered_at: datetime
    updated_at: datetime
    delivered_at: datetime | None
    reorder_id: int | None
    lines: list[LineView]


def find_customer(session: Session, external_id: str) -> Customer | None:
    return session.scalars(
        select(Customer).where(col(Customer.external_id) == external_id)
    ).one_or_none()


def find_product(session: Session, external_id: str) -> Product | None:
    return session.scalars(
        select(Product).where(col(Product.external_id) == external_id)
    ).one_or_none()


def find_order(session: Session, external_id: str) -> OrderView | None:
    order = session.scalars(
        select(Order).where(col(Order.external_id) == external_id)
    ).one_or_none()
    return None if order is None else _views(session, [order])[0]


def customer_orders(
    session: Session, customer: Customer, offset: int, limit: int
) -> tuple[int, list[OrderView]]:
    """A page of the customer's orders, newest first, and the total count."""
    where = col(Order.customer_id) == customer.id
    total = session.scalar(select(func.count()).select_from(Order).where(where)) or 0
    orders = session.scalars(
        select(Order)
        .where(where)
        .order_by(col(Order.ordered_at).desc(), col(Order.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return total, _views(session, list(orders))


def _views(session: Session, orders: list[Order]) -> list[OrderView]:
    if not orders:
        return []
    ids = [o.id for o in orders]
    lines: dict[int, list[LineView]] = {i: [] for i in ids if i is not None}
    for order_id, product_ext, quantity in session.execute(
        select(col(OrderLine.order_id), col(Product.external_id), col(OrderLine.quantity))
        .join(Product, col(Product.id) == col(OrderLine.product_id))
        .where(col(OrderLine.order_id).in_(ids))
        .order_by(col(Product.external_id))
    ):
        lines[order_id].append(LineView(product_ext, quantity))
    customers: dict[int | None, str] = dict(
        session.execute(
            select(col(Customer.id), col(Customer.external_id)).where(
                col(Customer.id).in_({o.customer_id for o in orders})
            )
        ).all()
    )
    return [
        OrderView(
            external_id=o.external_id,
            customer_external_id=customers[o.customer_id],
            status=o.status,
            ordered_at=o.ordered_at,
            updated_at=o.source_updated_at,
            delivered_at=o.delivered_at,
            reorder_id=o.reorder_id,
            lines=lines[o.id] if o.id is not None else [],
        )
        for o in orders
    ]
