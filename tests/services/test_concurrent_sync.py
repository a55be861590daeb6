"""Syncs at the same moment: none fails, and none is lost or applied twice."""

import contextlib
import threading
import time

import pytest
from sqlalchemy import select
from sqlmodel import col

from app import create_app
from app.db import get_engine, get_session
from app.models import AuditLog, Customer, Order, Plan, Product
from app.services import plans
from tests.conftest import app_environ
from tests.factories import customer_body, order_body, product_body
from tests.racing import at_once, meeting_before


def _order(day: str) -> dict[str, object]:
    stamp = f"{day}T10:00:00+09:00"
    return order_body(ordered_at=stamp, updated_at=stamp)


@pytest.mark.slow
def test_concurrent_orders_of_one_customer_are_all_counted(
    app, client, auth, database_url, tmp_path, monkeypatch
):
    assert (
        client.put("/api/v1/orders/o-0", json=_order("2026-01-01"), headers=auth).status_code == 201
    )
    other = create_app(app_environ(database_url), instance_path=str(tmp_path / "other"))

    # Make both requests read the plan summary before either writes it back, if the database
    # lets them: without a per-customer lock each would add its purchase to the same stale
    # summary and one purchase would be lost. With the lock the second request cannot get here
    # until the first has committed, and the first gives up waiting after a moment.
    barrier = threading.Barrier(2)
    read_summaries = plans._summaries

    def summaries_then_wait(*args, **kwargs):
        found = read_summaries(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=2)
        return found

    monkeypatch.setattr(plans, "_summaries", summaries_then_wait)
    statuses: list[int] = []

    def put(flask_app, ext: str, day: str) -> None:
        response = flask_app.test_client().put(
            f"/api/v1/orders/{ext}", json=_order(day), headers=auth
        )
        statuses.append(response.status_code)

    threads = [
        threading.Thread(target=put, args=(app, "o-1", "2026-01-10")),
        threading.Thread(target=put, args=(other, "o-2", "2026-01-20")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    with other.app_context():
        get_engine().dispose()

    assert statuses == [201, 201]
    with app.app_context():
        [plan] = get_session().query(Plan).all()
        assert plan.n_purchases == 3
        assert plan.total_quantity == 6
        assert str(plan.last_ordered_on) == "2026-01-20"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "body", "model"),
    [("customers", customer_body(), Customer), ("products", product_body(), Product)],
)
def test_the_same_new_record_put_at_the_same_moment_is_created_once(
    app, auth, db_backend, kind, body, model
):
    """Eight PUTs of one new record, all looking for it before any has stored it: one creates
    it (201), the others wait for it and find it unchanged (200), none fails."""
    if db_backend != "postgres":
        pytest.skip("SQLite runs one writer at a time: the PUTs cannot overlap")

    def put():
        return app.test_client().put(f"/api/v1/{kind}/x-new", json=body, headers=auth)

    with meeting_before(app, rf"INSERT INTO {model.__tablename__} \(", parties=8):
        responses = at_once({f"put-{n}": put for n in range(8)}).values()
    answers = sorted((r.status_code, r.json["result"]) for r in responses)
    assert answers == [(200, "unchanged")] * 7 + [(201, "created")]
    with app.app_context():
        session = get_session()
        assert len(session.scalars(select(model)).all()) == 1
        created = select(AuditLog).where(
            col(AuditLog.action) == "create", col(AuditLog.entity_id) == "x-new"
        )
        assert len(session.scalars(created).all()) == 1


@pytest.mark.slow
def test_a_customer_put_while_an_order_makes_it_a_placeholder_fills_the_placeholder_in(
    app, auth, db_backend
):
    """The order creates the customer as a placeholder first; the PUT, which found no
    customer either, then updates that placeholder instead of failing on the duplicate."""
    if db_backend != "postgres":
        pytest.skip("SQLite runs one writer at a time: the requests cannot overlap")

    def order_first():
        if threading.current_thread().name == "customer":
            time.sleep(0.5)

    calls = {
        "customer": lambda: app.test_client().put(
            "/api/v1/customers/c-1", json=customer_body(), headers=auth
        ),
        "order": lambda: app.test_client().put(
            "/api/v1/orders/o-1", json=order_body(), headers=auth
        ),
    }
    with meeting_before(app, r"INSERT INTO customer \(", parties=2, then=order_first):
        responses = at_once(calls)
    assert responses["order"].status_code == 201
    assert (responses["customer"].status_code, responses["customer"].json["result"]) == (
        200,
        "updated",
    )
    with app.app_context():
        session = get_session()
        [customer] = session.scalars(select(Customer)).all()
        assert (customer.is_placeholder, customer.name) == (False, "山田花子")
        [order] = session.scalars(select(Order)).all()
        assert order.customer_id == customer.id
