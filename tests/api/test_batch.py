import json

from app.api.schemas import MAX_LINES_PER_ORDER, MAX_QUANTITY
from tests.factories import order_body


def _item(ext, **overrides):
    return {"external_id": ext, **order_body(**overrides)}


def test_batch_reports_a_result_per_item_in_order(client, auth):
    body = {"orders": [_item("o-1"), _item("o-2", customer_external_id="c-2")]}
    response = client.post("/api/v1/orders/batch", json=body, headers=auth)
    assert response.status_code == 200
    assert [(r["external_id"], r["result"]) for r in response.json["results"]] == [
        ("o-1", "created"),
        ("o-2", "created"),
    ]


def test_one_bad_item_does_not_reject_the_others(client, auth):
    body = {"orders": [_item("o-1"), _item("o-2", lines=[]), _item("o-3", quantity=None)]}
    body["orders"][2].pop("quantity")
    response = client.post("/api/v1/orders/batch", json=body, headers=auth)
    results = response.json["results"]
    assert [r["result"] for r in results] == ["created", "error", "created"]
    assert "lines" in results[1]["errors"]
    assert client.get("/api/v1/orders/o-1", headers=auth).status_code == 200
    assert client.get("/api/v1/orders/o-2", headers=auth).status_code == 404
    assert client.get("/api/v1/orders/o-3", headers=auth).status_code == 200


def test_item_that_is_not_an_object_is_an_error_item(client, auth):
    response = client.post(
        "/api/v1/orders/batch", json={"orders": [42, _item("o-1")]}, headers=auth
    )
    results = response.json["results"]
    assert results[0]["result"] == "error"
    assert results[0]["external_id"] is None
    assert results[1]["result"] == "created"


def test_retrying_a_batch_creates_nothing_twice(client, auth):
    body = {"orders": [_item("o-1"), _item("o-2")]}
    client.post("/api/v1/orders/batch", json=body, headers=auth)
    response = client.post("/api/v1/orders/batch", json=body, headers=auth)
    assert [r["result"] for r in response.json["results"]] == ["unchanged", "unchanged"]
    orders = client.get("/api/v1/customers/c-1/orders", headers=auth).json
    assert len(orders) == 2


def test_later_duplicate_in_the_same_batch_applies_on_top(client, auth):
    newer = _item("o-1", updated_at="2026-10-02T10:00:00+09:00", lines=[
        {"product_external_id": "p-1", "quantity": 7}
    ])  # fmt: skip
    response = client.post(
        "/api/v1/orders/batch", json={"orders": [_item("o-1"), newer]}, headers=auth
    )
    assert [r["result"] for r in response.json["results"]] == ["created", "updated"]
    assert client.get("/api/v1/orders/o-1", headers=auth).json["lines"][0]["quantity"] == 7


def test_stale_item_in_a_batch_is_unchanged(client, auth):
    newer = _item("o-1", updated_at="2026-10-09T10:00:00+09:00")
    client.post("/api/v1/orders/batch", json={"orders": [newer]}, headers=auth)
    response = client.post("/api/v1/orders/batch", json={"orders": [_item("o-1")]}, headers=auth)
    assert response.json["results"][0] == {
        "external_id": "o-1",
        "result": "unchanged",
        "stale": True,
    }


def test_more_than_1000_orders_is_422(client, auth):
    body = {"orders": [_item(f"o-{i}") for i in range(1001)]}
    response = client.post("/api/v1/orders/batch", json=body, headers=auth)
    assert response.status_code == 422
    assert "orders" in response.json["errors"]["json"]


def test_empty_batch_is_422(client, auth):
    response = client.post("/api/v1/orders/batch", json={"orders": []}, headers=auth)
    assert response.status_code == 422


def test_full_batch_of_1000_orders_is_accepted(client, auth):
    body = {"orders": [_item(f"o-{i}", customer_external_id=f"c-{i % 97}") for i in range(1000)]}
    response = client.post("/api/v1/orders/batch", json=body, headers=auth)
    assert response.status_code == 200
    assert {r["result"] for r in response.json["results"]} == {"created"}


def test_an_item_with_text_that_is_not_valid_unicode_fails_alone(client, auth):
    good = json.dumps(_item("o-good"))
    bad = json.dumps(_item("o-bad")).replace('"c-1"', '"c-\\udc00"')
    body = '{"orders": [' + bad + ", " + good + "]}"
    headers = auth | {"Content-Type": "application/json"}
    response = client.post("/api/v1/orders/batch", data=body, headers=headers)
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["result"] for r in results] == ["error", "created"]
    assert "customer_external_id" in results[0]["errors"]
    assert client.get("/api/v1/orders/o-good", headers=auth).status_code == 200


def test_a_customer_past_two_billion_units_does_not_fail_the_others_in_the_batch(client, auth):
    most = [{"product_external_id": "p-1", "quantity": MAX_QUANTITY}] * MAX_LINES_PER_ORDER
    big = [
        _item(f"big-{n}", customer_external_id="c-big", lines=most,
              ordered_at=f"2026-09-0{n + 1}T10:00:00+09:00",
              updated_at=f"2026-09-0{n + 1}T10:00:00+09:00")
        for n in range(5)
    ]  # fmt: skip
    body = {"orders": [*big, _item("o-small", customer_external_id="c-small")]}
    response = client.post("/api/v1/orders/batch", json=body, headers=auth)
    assert response.status_code == 200, response.json
    assert {r["result"] for r in response.json["results"]} == {"created"}
    assert client.get("/api/v1/orders/o-small", headers=auth).status_code == 200
    again = {"orders": [_item("big-5", customer_external_id="c-big", lines=most,
                              ordered_at="2026-09-09T10:00:00+09:00",
                              updated_at="2026-09-09T10:00:00+09:00")]}  # fmt: skip
    later = client.post("/api/v1/orders/batch", json=again, headers=auth)
    assert later.json["results"][0]["result"] == "created"
