from tests.factories import order_body


def _batch(*exts):
    return {"orders": [{"external_id": e, **order_body()} for e in exts]}


def test_same_key_and_body_replays_the_first_response(client, auth):
    headers = auth | {"Idempotency-Key": "k-1"}
    first = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    again = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    assert first.json["results"][0]["result"] == "created"
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"


def test_same_key_with_another_body_is_422(client, auth):
    headers = auth | {"Idempotency-Key": "k-1"}
    client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    response = client.post("/api/v1/orders/batch", json=_batch("o-2"), headers=headers)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json["errors"]["headers"]
    assert client.get("/api/v1/orders/o-2", headers=auth).status_code == 404


def test_without_a_key_a_retry_reports_unchanged(client, auth):
    client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=auth)
    again = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=auth)
    assert again.json["results"][0]["result"] == "unchanged"
    assert "Idempotent-Replayed" not in again.headers


def test_refused_request_does_not_burn_the_key(client, auth):
    headers = auth | {"Idempotency-Key": "k-1"}
    bad = client.post("/api/v1/orders/batch", json={"orders": []}, headers=headers)
    assert bad.status_code == 422
    good = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    assert good.json["results"][0]["result"] == "created"


def test_overlong_key_is_422(client, auth):
    headers = auth | {"Idempotency-Key": "k" * 300}
    response = client.post("/api/v1/orders/batch", json=_batch("o-1"), headers=headers)
    assert response.status_code == 422
