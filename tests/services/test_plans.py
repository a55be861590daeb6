"""Plan history summaries as orders arrive in and out of time order."""

from datetime import date

from app.db import get_session
from app.models import Plan
from tests.factories import order_body


def _at(day: str, hour: int = 10) -> dict[str, str]:
    stamp = f"{day}T{hour:02d}:00:00+09:00"
    return {"ordered_at": stamp, "updated_at": stamp}


def _put(client, auth, ext, day, quantity=1, hour=10):
    body = order_body(
        **_at(day, hour), lines=[{"product_external_id": "p-1", "quantity": quantity}]
    )
    assert client.put(f"/api/v1/orders/{ext}", json=body, headers=auth).status_code == 201


def _summary(app):
    with app.app_context():
        [plan] = get_session().query(Plan).all()
        return (
            plan.n_purchases,
            plan.total_quantity,
            plan.first_ordered_on,
            plan.last_ordered_on,
            plan.last_quantity,
        )


def test_orders_in_time_order_extend_the_summary(app, client, auth):
    _put(client, auth, "o-1", "2026-09-01", 1)
    _put(client, auth, "o-2", "2026-10-01", 2)
    _put(client, auth, "o-3", "2026-11-01", 3)
    assert _summary(app) == (3, 6, date(2026, 9, 1), date(2026, 11, 1), 3)


def test_back_filled_older_order_is_counted_in_full(app, client, auth):
    _put(client, auth, "o-2", "2026-10-01", 2)
    _put(client, auth, "o-1", "2026-09-01", 1)
    assert _summary(app) == (2, 3, date(2026, 9, 1), date(2026, 10, 1), 2)


def test_second_order_on_the_same_day_is_the_same_purchase(app, client, auth):
    _put(client, auth, "o-1", "2026-10-01", 2, hour=9)
    _put(client, auth, "o-2", "2026-10-01", 1, hour=18)
    assert _summary(app) == (1, 3, date(2026, 10, 1), date(2026, 10, 1), 3)


def test_batch_with_several_days_of_one_pair(app, client, auth):
    orders = [{"external_id": f"o-{d}", **order_body(**_at(f"2026-10-{d:02d}"))} for d in (3, 1, 2)]
    response = client.post("/api/v1/orders/batch", json={"orders": orders}, headers=auth)
    assert {r["result"] for r in response.json["results"]} == {"created"}
    assert _summary(app) == (3, 6, date(2026, 10, 1), date(2026, 10, 3), 2)
