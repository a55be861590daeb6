import json

from app.db import get_session
from app.models import Customer, Plan
from tests.factories import customer_body, order_body


def _plans(app):
    with app.app_context():
        return {(p.customer_id, p.product_id): p for p in get_session().query(Plan).all()}


def test_put_new_order_returns_201_with_its_lines(client, auth):
    response = client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    assert response.status_code == 201
    assert response.json["result"] == "created"
    assert response.json["lines"] == [{"product_external_id": "p-1", "quantity": 2}]
    assert response.json["ordered_at"].startswith("2026-10-01T01:00:00")


def test_put_same_order_again_is_unchanged(client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    response = client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    assert response.status_code == 200
    assert response.json["result"] == "unchanged"


def test_newer_version_of_an_order_updates_it(client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    newer = order_body(
        updated_at="2026-10-02T10:00:00+09:00",
        lines=[{"product_external_id": "p-1", "quantity": 5}],
    )
    response = client.put("/api/v1/orders/o-1", json=newer, headers=auth)
    assert response.json["result"] == "updated"
    assert client.get("/api/v1/orders/o-1", headers=auth).json["lines"][0]["quantity"] == 5


def test_older_version_arriving_late_changes_nothing(client, auth):
    newer = order_body(
        updated_at="2026-10-05T10:00:00+09:00",
        lines=[{"product_external_id": "p-1", "quantity": 5}],
    )
    client.put("/api/v1/orders/o-1", json=newer, headers=auth)
    response = client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    assert response.json["result"] == "unchanged"
    assert response.json["stale"] is True
    assert client.get("/api/v1/orders/o-1", headers=auth).json["lines"][0]["quantity"] == 5


def test_order_for_unknown_customer_creates_a_placeholder_later_filled_in(client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    placeholder = client.get("/api/v1/customers/c-1", headers=auth).json
    assert placeholder["is_placeholder"] is True
    assert placeholder["email"] is None
    response = client.put("/api/v1/customers/c-1", json=customer_body(), headers=auth)
    assert response.json["result"] == "updated"
    assert response.json["is_placeholder"] is False


def test_synced_order_creates_a_plan_per_customer_and_product(app, client, auth):
    body = order_body(
        lines=[
            {"product_external_id": "p-1", "quantity": 1},
            {"product_external_id": "p-2", "quantity": 3},
        ]
    )
    client.put("/api/v1/orders/o-1", json=body, headers=auth)
    plans = _plans(app)
    assert len(plans) == 2
    assert sorted(p.last_quantity for p in plans.values()) == [1, 3]
    assert all(p.n_purchases == 1 for p in plans.values())


def test_second_order_refreshes_the_plan_history(app, client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    later = order_body(
        ordered_at="2026-10-31T10:00:00+09:00", updated_at="2026-10-31T10:00:00+09:00"
    )
    client.put("/api/v1/orders/o-2", json=later, headers=auth)
    [plan] = _plans(app).values()
    assert plan.n_purchases == 2
    assert plan.total_quantity == 4
    assert str(plan.first_ordered_on) == "2026-10-01"
    assert str(plan.last_ordered_on) == "2026-10-31"


def test_purchase_day_is_the_customers_local_day(app, client, auth):
    # 08:30 in Tokyo is still the previous day in UTC.
    body = order_body(
        ordered_at="2026-10-01T08:30:00+09:00", updated_at="2026-10-01T08:30:00+09:00"
    )
    client.put("/api/v1/orders/o-1", json=body, headers=auth)
    [plan] = _plans(app).values()
    assert str(plan.last_ordered_on) == "2026-10-01"


def test_cancelled_order_leaves_the_consumption_history(app, client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    later = order_body(
        ordered_at="2026-10-31T10:00:00+09:00", updated_at="2026-10-31T10:00:00+09:00"
    )
    client.put("/api/v1/orders/o-2", json=later, headers=auth)
    cancelled = later | {"status": "cancelled", "updated_at": "2026-11-01T10:00:00+09:00"}
    response = client.put("/api/v1/orders/o-2", json=cancelled, headers=auth)
    assert response.json["result"] == "updated"
    [plan] = _plans(app).values()
    assert plan.n_purchases == 1
    assert str(plan.last_ordered_on) == "2026-10-01"


def test_returned_only_order_keeps_the_plan_with_empty_history(app, client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    returned = order_body(status="returned", updated_at="2026-10-09T10:00:00+09:00")
    client.put("/api/v1/orders/o-1", json=returned, headers=auth)
    [plan] = _plans(app).values()
    assert plan.n_purchases == 0
    assert plan.last_ordered_on is None


def test_same_product_twice_in_an_order_is_one_purchase_of_summed_units(app, client, auth):
    body = order_body(
        lines=[
            {"product_external_id": "p-1", "quantity": 1},
            {"product_external_id": "p-1", "quantity": 2},
        ]
    )
    response = client.put("/api/v1/orders/o-1", json=body, headers=auth)
    assert response.json["lines"] == [{"product_external_id": "p-1", "quantity": 3}]


def test_naive_datetime_is_422_naming_the_field(client, auth):
    response = client.put(
        "/api/v1/orders/o-1", json=order_body(ordered_at="2026-10-01T10:00:00"), headers=auth
    )
    assert response.status_code == 422
    assert "ordered_at" in response.json["errors"]["json"]


def test_zero_quantity_is_422_naming_the_line(client, auth):
    body = order_body(lines=[{"product_external_id": "p-1", "quantity": 0}])
    response = client.put("/api/v1/orders/o-1", json=body, headers=auth)
    assert response.status_code == 422
    assert "quantity" in response.json["errors"]["json"]["lines"]["0"]


def test_order_without_lines_is_422(client, auth):
    response = client.put("/api/v1/orders/o-1", json=order_body(lines=[]), headers=auth)
    assert response.status_code == 422
    assert "lines" in response.json["errors"]["json"]


def test_delivery_before_order_is_422(client, auth):
    body = order_body(delivered_at="2026-09-01T10:00:00+09:00")
    response = client.put("/api/v1/orders/o-1", json=body, headers=auth)
    assert response.status_code == 422
    assert "delivered_at" in response.json["errors"]["json"]


def test_unknown_status_is_422(client, auth):
    response = client.put("/api/v1/orders/o-1", json=order_body(status="lost"), headers=auth)
    assert response.status_code == 422
    assert "status" in response.json["errors"]["json"]


def test_control_characters_in_path_id_are_422(client, auth):
    response = client.get("/api/v1/orders/bad%00id", headers=auth)
    assert response.status_code == 422
    assert "external_id" in response.json["errors"]["path"]


def test_refused_order_changes_nothing(app, client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(lines=[]), headers=auth)
    assert client.get("/api/v1/orders/o-1", headers=auth).status_code == 404
    assert client.get("/api/v1/customers/c-1", headers=auth).status_code == 404
    assert _plans(app) == {}


def test_customer_orders_are_paginated_newest_first(client, auth):
    for day in range(1, 6):
        stamp = f"2026-10-{day:02d}T10:00:00+09:00"
        client.put(
            f"/api/v1/orders/o-{day}",
            json=order_body(ordered_at=stamp, updated_at=stamp),
            headers=auth,
        )
    page1 = client.get("/api/v1/customers/c-1/orders?page=1&page_size=2", headers=auth)
    assert [o["external_id"] for o in page1.json] == ["o-5", "o-4"]
    assert '"total": 5' in page1.headers["X-Pagination"]
    page3 = client.get("/api/v1/customers/c-1/orders?page=3&page_size=2", headers=auth)
    assert [o["external_id"] for o in page3.json] == ["o-1"]


def test_orders_of_unknown_customer_is_404(client, auth):
    assert client.get("/api/v1/customers/nobody/orders", headers=auth).status_code == 404


def test_each_bad_line_is_reported_at_its_index(client, auth):
    body = order_body(
        lines=[
            {"product_external_id": "p-1", "quantity": 1},
            {"product_external_id": "p-2", "quantity": True},
            {"product_external_id": "p-3", "colour": "red"},
            "p-4",
        ]
    )
    response = client.put("/api/v1/orders/o-1", json=body, headers=auth)
    assert response.status_code == 422
    lines = response.json["errors"]["json"]["lines"]
    assert "0" not in lines
    assert lines["1"] == {"quantity": ["Not a valid integer."]}
    assert lines["2"] == {
        "colour": ["Unknown field."],
        "quantity": ["Missing data for required field."],
    }
    assert lines["3"] == {"_schema": ["Invalid input type."]}


def test_more_than_500_lines_is_422(client, auth):
    lines = [{"product_external_id": f"p-{i}", "quantity": 1} for i in range(501)]
    response = client.put("/api/v1/orders/o-1", json=order_body(lines=lines), headers=auth)
    assert response.status_code == 422
    assert "between 1 and 500" in response.json["errors"]["json"]["lines"][0]


def test_absurdly_nested_json_is_a_400_not_a_crash(client, auth):
    response = client.post(
        "/api/v1/orders/batch",
        data="[" * 100_000,
        headers=auth | {"Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json["errors"]["json"] == ["Invalid JSON body."]


def test_a_body_that_is_not_json_is_415_saying_so(client, auth):
    form = client.put("/api/v1/orders/o-1", data={"customer_external_id": "c-1"}, headers=auth)
    assert form.status_code == 415
    assert form.json["message"] == (
        "send the body as JSON with 'Content-Type: application/json' "
        "(got application/x-www-form-urlencoded)"
    )
    text = client.put("/api/v1/orders/o-1", data=json.dumps(order_body()),
                      headers=auth | {"Content-Type": "text/plain"})  # fmt: skip
    assert text.status_code == 415
    assert "(got text/plain)" in text.json["message"]
    assert client.get("/api/v1/orders/o-1", headers=auth).status_code == 404
    # JSON under a +json media type is JSON.
    plus_json = auth | {"Content-Type": "application/merge-patch+json"}
    put = client.put("/api/v1/orders/o-1", data=json.dumps(order_body()), headers=plus_json)
    assert put.status_code == 201


def test_an_order_dated_in_the_future_is_422(client, auth):
    body = order_body(
        ordered_at="2099-01-01T10:00:00+09:00", updated_at="2099-01-01T10:00:00+09:00"
    )
    response = client.put("/api/v1/orders/o-1", json=body, headers=auth)
    assert response.status_code == 422
    assert response.json["errors"]["json"] == {
        "ordered_at": ["must not be in the future (more than a day ahead of now)"]
    }
    assert client.get("/api/v1/orders/o-1", headers=auth).status_code == 404


def test_an_order_moved_to_another_customer_moves_its_purchase(client, app, auth):
    # A guest checkout merged into an account: the backend re-syncs the order under it.
    guest = order_body(customer_external_id="guest-1", updated_at="2026-10-01T10:00:00+09:00")
    assert client.put("/api/v1/orders/o-1", json=guest, headers=auth).status_code == 201
    moved = guest | {"customer_external_id": "c-1", "updated_at": "2026-10-01T11:00:00+09:00"}
    assert client.put("/api/v1/orders/o-1", json=moved, headers=auth).status_code == 200
    other = order_body(customer_external_id="guest-2", updated_at="2026-10-01T10:00:00+09:00")
    assert client.put("/api/v1/orders/o-2", json=other, headers=auth).status_code == 201
    batch = {"orders": [other | {"external_id": "o-2", "customer_external_id": "c-1",
                                 "updated_at": "2026-10-01T11:00:00+09:00"},
                        order_body(external_id="o-3", customer_external_id="c-9")]}  # fmt: skip
    response = client.post("/api/v1/orders/batch", json=batch, headers=auth)
    assert response.status_code == 200, response.json
    assert [r["result"] for r in response.json["results"]] == ["updated", "created"]
    with app.app_context():
        session = get_session()
        purchases = {
            session.get_one(Customer, p.customer_id).external_id: p.n_purchases
            for p in session.query(Plan)
        }
    # Both orders were placed on the same day: one purchase day for c-1.
    assert purchases == {"guest-1": 0, "guest-2": 0, "c-1": 1, "c-9": 1}
