import re

from prometheus_client import CollectorRegistry, Counter, values

from tests.factories import order_body


def _sample(text, name, **labels):
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_metrics_count_requests_by_route_pattern(client, auth):
    before = _sample(
        client.get("/metrics").text, "kaidoki_http_requests_total", endpoint="/healthz"
    )
    client.get("/healthz")
    text = client.get("/metrics").text
    assert (
        _sample(text, "kaidoki_http_requests_total", endpoint="/healthz", status="200")
        == before + 1
    )
    assert re.search(r'kaidoki_http_request_duration_seconds_bucket\{.*endpoint="/healthz"', text)


def test_metrics_count_synced_orders_by_result(client, auth):
    text = client.get("/metrics").text
    created = _sample(text, "kaidoki_orders_synced_total", result="created")
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    text = client.get("/metrics").text
    assert _sample(text, "kaidoki_orders_synced_total", result="created") == created + 1
    assert _sample(text, "kaidoki_orders_synced_total", result="unchanged") >= 1


def test_metrics_add_up_the_workers_of_a_multiprocess_server(tmp_path, monkeypatch, client):
    # Another worker's samples, as prometheus_client writes them in multiprocess mode.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    original = values.ValueClass
    values.ValueClass = values.MultiProcessValue(lambda: 4242)
    try:
        Counter("kaidoki_orders_synced", "test", ["result"], registry=CollectorRegistry()).labels(
            result="created"
        ).inc(5)
    finally:
        values.ValueClass = original
    text = client.get("/metrics").text
    assert _sample(text, "kaidoki_orders_synced_total", result="created") == 5
