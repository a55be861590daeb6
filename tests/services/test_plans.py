"""Plan history summaries as orders arrive in and out of time order."""

from datetime import date

from app.api.schemas import MAX_LINES_PER_ORDER, MAX_QUANTITY
from app.db import MAX_ID, get_session
from app.models import Plan
from tests.factories import order_body

MOST_PER_ORDER = MAX_LINES_PER_ORDER * MAX_QUANTITY  # 5 x 10^8 units: every line at the limit


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


def _put_most(client, auth, ext, day):
    lines = [{"product_external_id": "p-1", "quantity": MAX_QUANTITY}] * MAX_LINES_PER_ORDER
    body = order_body(**_at(day), lines=lines)
    response = client.put(f"/api/v1/orders/{ext}", json=body, headers=auth)
    assert response.status_code == 201, response.json


def test_a_pair_past_two_billion_units_keeps_counting(app, client, auth):
    for n in range(5):
        _put_most(client, auth, f"o-{n}", f"2026-09-0{n + 1}")
    assert _summary(app) == (5, 5 * MOST_PER_ORDER, date(2026, 9, 1), date(2026, 9, 5),
                             MOST_PER_ORDER)  # fmt: skip
    assert 5 * MOST_PER_ORDER > MAX_ID
    _put_most(client, auth, "o-early", "2026-08-01")  # back-filled: summed by the database
    assert _summary(app) == (6, 6 * MOST_PER_ORDER, date(2026, 8, 1), date(2026, 9, 5),
                             MOST_PER_ORDER)  # fmt: skip


def test_one_day_past_two_billion_units_is_the_last_quantity(app, client, auth):
    for n in range(5):
        _put_most(client, auth, f"o-{n}", "2026-09-01")
    total = 5 * MOST_PER_ORDER
    assert _summary(app) == (1, total, date(2026, 9, 1), date(2026, 9, 1), total)
