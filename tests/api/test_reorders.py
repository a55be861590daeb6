"""The reorder pull feed, acknowledgement, and fulfilment by a synced order."""

from datetime import timedelta

import pytest

from app.config import current_settings
from app.db import get_session
from app.forecast.types import ANSWER_CODES
from app.models import Plan, PlanRescore, Prompt, Reorder, ReorderStatus
from app.services import forecasting, reorders
from tests.factories import NOW, order_body


@pytest.fixture
def confirmed(client, links, at_now):
    """The customer confirmed 3 units a minute after the email went out."""
    page = client.post(links["p"], data={"action": "confirm", "quantity": "3"})
    assert page.status_code == 200


@pytest.fixture
def api_now(monkeypatch):
    clock = {"now": NOW + timedelta(minutes=10)}
    monkeypatch.setattr("app.api.reorders.utcnow", lambda: clock["now"])
    return clock


def _feed(client, auth, **query):
    response = client.get("/api/v1/reorders", query_string=query, headers=auth)
    assert response.status_code == 200, response.json
    return response.json


def _reorder(app) -> Reorder:
    with app.app_context():
        return get_session().query(Reorder).one()


def test_a_reorder_appears_in_the_feed_only_after_its_undo_window(client, auth, confirmed, api_now):
    api_now["now"] = NOW + timedelta(minutes=3)
    assert _feed(client, auth) == []
    api_now["now"] = NOW + timedelta(minutes=7)
    [item] = _feed(client, auth)
    assert item["status"] == "pending"
    assert (item["customer_external_id"], item["product_external_id"], item["quantity"]) == (
        "c-1", "p-1", 3,
    )  # fmt: skip
    assert item["confirmed_at"].startswith("2026-11-20T01:01:00")


def test_ack_takes_it_off_the_pending_feed_and_is_safe_to_repeat(
    client, auth, app, confirmed, api_now
):
    [item] = _feed(client, auth)
    first = client.post(f"/api/v1/reorders/{item['id']}/ack", headers=auth)
    assert first.status_code == 200
    assert first.json["status"] == "acknowledged"
    again = client.post(f"/api/v1/reorders/{item['id']}/ack", headers=auth)
    assert again.status_code == 200
    assert again.json["acknowledged_at"] == first.json["acknowledged_at"]
    assert _feed(client, auth) == []
    assert [r["id"] for r in _feed(client, auth, status="acknowledged")] == [item["id"]]


def test_ack_of_a_reorder_still_inside_its_undo_window_is_404(client, auth, confirmed, api_now):
    api_now["now"] = NOW + timedelta(minutes=2)
    reorder_id = 1
    response = client.post(f"/api/v1/reorders/{reorder_id}/ack", headers=auth)
    assert response.status_code == 404


@pytest.mark.parametrize(
    "path",
    ["/api/v1/reorders/999/ack", "/api/v1/reorders/0/ack", "/api/v1/reorders/2147483648/ack"],
)
def test_ack_of_an_unknown_reorder_is_404(client, auth, path):
    assert client.post(path, headers=auth).status_code == 404


def test_ack_needs_an_api_key(client, confirmed, api_now):
    assert client.post("/api/v1/reorders/1/ack").status_code == 401
    assert client.get("/api/v1/reorders").status_code == 401


def test_feed_query_is_validated_with_the_field_named(client, auth):
    response = client.get("/api/v1/reorders", query_string={"status": "lost"}, headers=auth)
    assert response.status_code == 422
    assert "status" in response.json["errors"]["query"]
    response = client.get("/api/v1/reorders", query_string={"limit": "0"}, headers=auth)
    assert response.status_code == 422
    assert "limit" in response.json["errors"]["query"]


def test_feed_pages_with_after_id(client, auth, confirmed, api_now):
    [item] = _feed(client, auth)
    assert _feed(client, auth, after_id=item["id"]) == []
    assert _feed(client, auth, after_id=0, limit=1) == [item]


def test_the_order_that_fulfils_a_reorder_closes_it_and_feeds_the_plan(
    client, auth, app, confirmed, api_now
):
    [item] = _feed(client, auth)
    client.post(f"/api/v1/reorders/{item['id']}/ack", headers=auth)
    body = order_body(ordered_at="2026-11-20T12:00:00+09:00",
                      updated_at="2026-11-20T12:00:00+09:00", reorder_id=item["id"],
                      lines=[{"product_external_id": "p-1", "quantity": 3}])  # fmt: skip
    assert client.put("/api/v1/orders/o-re-1", json=body, headers=auth).status_code == 201
    reorder = _reorder(app)
    assert reorder.status is ReorderStatus.FULFILLED
    assert reorder.fulfilled_order_id is not None
    with app.app_context():
        plan = get_session().query(Plan).one()
        assert str(plan.last_ordered_on) == "2026-11-20"
        assert plan.last_quantity == 3
    [fulfilled] = _feed(client, auth, status="fulfilled")
    assert fulfilled["fulfilled_at"] is not None
    # Syncing the same order again changes nothing.
    again = client.put("/api/v1/orders/o-re-1", json=body, headers=auth)
    assert again.json["result"] == "unchanged"


def test_the_shop_cancelling_the_order_that_fulfilled_a_reorder_cancels_the_reorder(
    client, auth, app, confirmed, api_now
):
    [item] = _feed(client, auth)
    body = order_body(ordered_at="2026-11-20T12:00:00+09:00",
                      updated_at="2026-11-20T12:00:00+09:00", reorder_id=item["id"],
                      lines=[{"product_external_id": "p-1", "quantity": 2}])  # fmt: skip
    assert client.put("/api/v1/orders/o-re-1", json=body, headers=auth).status_code == 201
    # Out of stock: the shop sends another product instead, then cancels the order altogether.
    substituted = body | {"updated_at": "2026-11-20T13:00:00+09:00",
                          "lines": [{"product_external_id": "p-2", "quantity": 2}]}  # fmt: skip
    response = client.put("/api/v1/orders/o-re-1", json=substituted, headers=auth)
    assert response.status_code == 200, response.json
    assert _reorder(app).status is ReorderStatus.FULFILLED
    cancelled = substituted | {"status": "cancelled", "updated_at": "2026-11-21T09:00:00+09:00"}
    assert client.put("/api/v1/orders/o-re-1", json=cancelled, headers=auth).status_code == 200
    reorder = _reorder(app)
    assert reorder.status is ReorderStatus.CANCELLED and reorder.cancelled_at is not None
    assert [r["id"] for r in _feed(client, auth, status="cancelled")] == [item["id"]]
    assert _feed(client, auth, status="fulfilled") == []


def test_ops_cancel_shows_in_the_feed_and_ack_then_conflicts(
    client, auth, app, runner, confirmed, api_now
):
    result = runner.invoke(args=["reorders", "cancel", "1", "--by", "ops@example.jp"])
    assert result.exit_code == 0, result.output
    assert _feed(client, auth) == []
    [item] = _feed(client, auth, status="cancelled")
    assert item["cancelled_at"] is not None
    response = client.post("/api/v1/reorders/1/ack", headers=auth)
    assert response.status_code == 409
    assert "cancelled" in response.json["message"]
    again = runner.invoke(args=["reorders", "cancel", "1"])
    assert again.exit_code != 0
    assert "already cancelled" in again.output


def _fulfilling(reorder_id, ext="o-re-1", customer="c-1", product="p-1"):
    stamp = "2026-11-20T12:00:00+09:00"
    return ext, order_body(customer_external_id=customer, ordered_at=stamp, updated_at=stamp,
                           reorder_id=reorder_id,
                           lines=[{"product_external_id": product, "quantity": 3}])  # fmt: skip


@pytest.mark.parametrize(
    ("reorder_id", "customer", "product", "reason"),
    [
        (999, "c-1", "p-1", "no reorder 999"),
        (1, "c-2", "p-1", "reorder 1 is for customer 'c-1', not 'c-2'"),
        (1, "c-1", "p-2", "reorder 1 is for product 'p-1', which is not among this order's lines"),
    ],
)
def test_an_order_naming_a_reorder_it_cannot_fulfil_is_422_and_stores_nothing(
    client, auth, app, confirmed, api_now, reorder_id, customer, product, reason
):
    ext, body = _fulfilling(reorder_id, customer=customer, product=product)
    response = client.put(f"/api/v1/orders/{ext}", json=body, headers=auth)
    assert response.status_code == 422
    assert response.json["errors"]["json"] == {"reorder_id": [reason]}
    assert client.get(f"/api/v1/orders/{ext}", headers=auth).status_code == 404
    assert _reorder(app).status is ReorderStatus.PENDING


def test_an_order_naming_a_reorder_still_inside_its_undo_window_is_refused(
    client, auth, app, confirmed, monkeypatch
):
    # The backend cannot know it yet: it is neither in the feed nor sent by webhook.
    monkeypatch.setattr("app.api.resources.utcnow", lambda: NOW + timedelta(minutes=2))
    ext, body = _fulfilling(1)
    response = client.put(f"/api/v1/orders/{ext}", json=body, headers=auth)
    assert response.status_code == 422
    assert response.json["errors"]["json"] == {"reorder_id": ["no reorder 1"]}
    assert _reorder(app).status is ReorderStatus.PENDING


def test_in_a_batch_a_bad_reorder_reference_fails_alone(client, auth, app, confirmed, api_now):
    bad_ext, bad = _fulfilling(1, ext="o-bad", customer="c-2")
    good_ext, good = _fulfilling(1, ext="o-good")
    body = {"orders": [{"external_id": bad_ext, **bad}, None, {"external_id": good_ext, **good}]}
    response = client.post("/api/v1/orders/batch", json=body, headers=auth)
    assert response.status_code == 200
    results = response.json["results"]
    assert [r["result"] for r in results] == ["error", "error", "created"]
    assert results[0]["errors"] == {"reorder_id": ["reorder 1 is for customer 'c-1', not 'c-2'"]}
    assert results[1] == {"external_id": None, "result": "error",
                          "errors": {"_schema": ["Field may not be null."]}}  # fmt: skip
    assert client.get("/api/v1/orders/o-bad", headers=auth).status_code == 404
    assert _reorder(app).status is ReorderStatus.FULFILLED


def test_an_order_for_a_cancelled_reorder_is_kept_as_a_purchase(
    client, auth, app, runner, confirmed, api_now
):
    assert runner.invoke(args=["reorders", "cancel", "1", "--by", "ops"]).exit_code == 0
    ext, body = _fulfilling(1)
    assert client.put(f"/api/v1/orders/{ext}", json=body, headers=auth).status_code == 201
    assert _reorder(app).status is ReorderStatus.CANCELLED
    with app.app_context():
        assert get_session().query(Plan).one().last_quantity == 3


def _cancel(app, reorder_id: int, at) -> None:
    """Operations cancel the reorder at ``at``."""
    with app.app_context():
        reorders.cancel(get_session(), current_settings(), reorder_id, "ops@example.jp", at)
        get_session().commit()


def _second_reorder(app) -> int:
    """Another confirmed reorder of the same plan, on a prompt of its own."""
    with app.app_context():
        session = get_session()
        first = session.query(Reorder).one()
        prompt = session.get_one(Prompt, first.prompt_id)
        twin = Prompt(**prompt.model_dump(exclude={"id", "outbox_id", "nonce"}), nonce="twin")
        session.add(twin)
        session.flush()
        assert twin.id is not None
        second = Reorder(**first.model_dump(exclude={"id", "prompt_id"}), prompt_id=twin.id)
        session.add(second)
        session.commit()
        assert second.id is not None and second.id > (first.id or 0)
        return second.id


def test_the_changes_feed_tells_of_a_reorder_cancelled_after_the_backend_moved_past_its_id(
    client, auth, app, confirmed, api_now
):
    first = _feed(client, auth)[0]["id"]
    second = _second_reorder(app)
    for reorder_id in (first, second):
        assert client.post(f"/api/v1/reorders/{reorder_id}/ack", headers=auth).status_code == 200
    # The later reorder is cancelled first: paging by id, the backend's cursor passes the other.
    _cancel(app, second, NOW + timedelta(minutes=20))
    api_now["now"] = NOW + timedelta(minutes=30)
    since = (NOW + timedelta(minutes=10)).isoformat()
    [seen] = _feed(client, auth, status="cancelled", changed_since=since)
    assert (seen["id"], seen["status"]) == (second, "cancelled")
    _cancel(app, first, NOW + timedelta(minutes=40, microseconds=123456))  # as utcnow() has
    api_now["now"] = NOW + timedelta(minutes=50)
    assert _feed(client, auth, status="cancelled", after_id=second) == []  # what ids alone miss
    cursor = {"changed_since": seen["updated_at"], "after_id": seen["id"]}
    [change] = _feed(client, auth, status="cancelled", **cursor)
    assert (change["id"], change["status"]) == (first, "cancelled")
    assert change["updated_at"].startswith("2026-11-20T01:40:00.123456")
    assert _feed(client, auth, status="cancelled", changed_since=change["updated_at"],
                 after_id=change["id"]) == []  # fmt: skip


def test_the_changes_feed_lists_a_change_once_it_is_a_minute_old_and_pages_through_ties(
    client, auth, app, confirmed, api_now
):
    first = _feed(client, auth)[0]["id"]
    second = _second_reorder(app)
    at = NOW + timedelta(minutes=20)
    _cancel(app, first, at)
    _cancel(app, second, at)
    since = {"status": "cancelled", "changed_since": at.isoformat()}
    api_now["now"] = at + timedelta(seconds=59)
    assert _feed(client, auth, **since) == []
    api_now["now"] = at + timedelta(minutes=1)
    [page] = _feed(client, auth, **since, limit=1)
    [next_page] = _feed(client, auth, **since, after_id=page["id"], limit=1)
    assert [page["id"], next_page["id"]] == [first, second]
    assert _feed(client, auth, **since, after_id=next_page["id"]) == []


def test_a_confirm_cancelled_before_its_hand_off_is_no_change_for_the_backend(
    client, auth, app, confirmed, api_now
):
    _cancel(app, 1, NOW + timedelta(minutes=2))  # still inside the undo window
    api_now["now"] = NOW + timedelta(minutes=3)
    assert _feed(client, auth, status="cancelled") == []  # as ack: "no reorder 1"
    assert client.post("/api/v1/reorders/1/ack", headers=auth).status_code == 404
    api_now["now"] = NOW + timedelta(hours=1)
    assert _feed(client, auth, status="cancelled", changed_since=NOW.isoformat()) == []


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"changed_since": "2026-11-20T01:00:00+00:00"}, "status other than pending"),
        ({"status": "pending", "changed_since": "2026-11-20T01:00:00+00:00"}, "pending"),
        ({"status": "cancelled", "changed_since": "2026-11-20T01:00:00"}, "aware datetime"),
        ({"status": "cancelled", "changed_since": "yesterday"}, "datetime"),
    ],
)
def test_changed_since_is_validated_with_the_reason(client, auth, query, reason):
    response = client.get("/api/v1/reorders", query_string=query, headers=auth)
    assert response.status_code == 422
    [message] = response.json["errors"]["query"]["changed_since"]
    assert reason in message.lower()


def _status(app, reorder_id: int) -> ReorderStatus:
    with app.app_context():
        return get_session().get_one(Reorder, reorder_id).status


def _version(body, hour: int, **changes):
    """``body`` as the backend's version of ``hour`` o'clock that day."""
    return body | {"updated_at": f"2026-11-20T{hour}:00:00+09:00"} | changes


def test_an_order_that_stops_naming_its_reorder_gives_it_back(
    client, auth, app, confirmed, api_now
):
    ext, body = _fulfilling(1)
    assert client.put(f"/api/v1/orders/{ext}", json=body, headers=auth).status_code == 201
    assert _status(app, 1) is ReorderStatus.FULFILLED
    unlinked = _version(body, 13, reorder_id=None)
    assert client.put(f"/api/v1/orders/{ext}", json=unlinked, headers=auth).status_code == 200
    with app.app_context():
        reorder = get_session().get_one(Reorder, 1)
        assert (reorder.status, reorder.fulfilled_order_id, reorder.fulfilled_at) == (
            ReorderStatus.ACKNOWLEDGED, None, None,
        )  # fmt: skip
        assert reorder.acknowledged_at is not None
    # Cancelling the order now leaves the reorder alone: it was not this order's any more.
    cancelled = _version(unlinked, 14, status="cancelled")
    assert client.put(f"/api/v1/orders/{ext}", json=cancelled, headers=auth).status_code == 200
    assert _status(app, 1) is ReorderStatus.ACKNOWLEDGED


@pytest.mark.parametrize("one_batch", [False, True])
def test_an_order_placed_and_cancelled_cancels_its_reorder_however_the_versions_arrive(
    client, auth, app, confirmed, api_now, one_batch
):
    ext, placed = _fulfilling(1)
    cancelled = _version(placed, 13, status="cancelled")
    if one_batch:
        batch = {"orders": [placed | {"external_id": ext}, cancelled | {"external_id": ext}]}
        assert client.post("/api/v1/orders/batch", json=batch, headers=auth).status_code == 200
    else:
        for version in (placed, cancelled):
            assert client.put(f"/api/v1/orders/{ext}", json=version, headers=auth).status_code in (
                200, 201,
            )  # fmt: skip
    assert _status(app, 1) is ReorderStatus.CANCELLED
    assert client.post("/api/v1/reorders/1/ack", headers=auth).status_code == 409


def test_an_order_first_synced_as_returned_fulfils_its_reorder(
    client, auth, app, confirmed, api_now
):
    ext, body = _fulfilling(1)
    returned = body | {"status": "returned"}
    assert client.put(f"/api/v1/orders/{ext}", json=returned, headers=auth).status_code == 201
    assert _status(app, 1) is ReorderStatus.FULFILLED


@pytest.mark.parametrize("by", ["ops", "the order's cancellation"])
def test_a_cancelled_reorder_is_no_refill_and_lifts_the_rest_of_its_confirm(
    client, auth, app, runner, confirmed, api_now, by
):
    # A purchase before the prompt: the pair has a history for the confirm to extend.
    assert (
        client.put("/api/v1/orders/o-earlier", json=order_body(), headers=auth).status_code == 201
    )
    with app.app_context():
        plan = get_session().query(Plan).one()
        assert plan.prompt_not_before is not None  # the confirm rests the plan
        customer_id = plan.customer_id
        get_session().query(PlanRescore).delete()  # the confirm's own request, swept
        get_session().commit()
        assert list(forecasting.load_history(get_session(), [customer_id]).batch.answer_kind) == [
            ANSWER_CODES["confirm"]
        ]
    if by == "ops":
        assert runner.invoke(args=["reorders", "cancel", "1"]).exit_code == 0
    else:
        ext, body = _fulfilling(1)
        assert client.put(f"/api/v1/orders/{ext}", json=body, headers=auth).status_code == 201
        cancelled = _version(body, 13, status="cancelled")
        assert client.put(f"/api/v1/orders/{ext}", json=cancelled, headers=auth).status_code == 200
    assert _status(app, 1) is ReorderStatus.CANCELLED
    with app.app_context():
        session = get_session()
        plan = session.query(Plan).one()
        assert plan.prompt_not_before is None
        assert [r.plan_id for r in session.query(PlanRescore)] == [plan.id]
        assert len(forecasting.load_history(session, [customer_id]).batch.answer_kind) == 0
