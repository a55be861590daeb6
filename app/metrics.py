"""Prometheus metrics: HTTP requests by endpoint, plus business counters.

Metrics are module globals registered once per process (prometheus_client refuses a second
registration, and tests build many apps). Under gunicorn each worker counts on its own; with
``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` does), workers write their samples there and
``/metrics`` adds them up, whichever worker answers. The folder must be emptied before the
server starts.
"""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

HTTP_REQUESTS = Counter(
    "kaidoki_http_requests_total", "HTTP requests served.", ["method", "endpoint", "status"]
)
HTTP_LATENCY = Histogram(
    "kaidoki_http_request_duration_seconds",
    "Time spent serving HTTP requests.",
    ["method", "endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ORDERS_SYNCED = Counter(
    "kaidoki_orders_synced_total", "Orders received from the EC backend, by outcome.", ["result"]
)
UPSERTS = Counter(
    "kaidoki_records_synced_total",
    "Customers and products received from the EC backend, by outcome.",
    ["entity", "result"],
)


def init_app(app: Flask) -> None:
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.add_url_rule("/metrics", "metrics", _metrics_view)


def _start_timer() -> None:
    g.request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.get("request_started")
    # The route pattern, not the raw path: ids in paths would explode the label set.
    endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
    HTTP_REQUESTS.labels(request.method, endpoint, str(response.status_code)).inc()
    if started is not None:
        HTTP_LATENCY.labels(request.method, endpoint).observe(time.perf_counter() - started)
    return response


def _metrics_view() -> Response:
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    return Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST)
