"""Two syncs of the same customer at the same moment both count (no lost plan update)."""

import contextlib
import threading

import pytest

from app import create_app
from app.db import get_engine, get_session
from app.models import Plan
from app.services import plans
from tests.conftest import app_environ
from tests.factories import order_body


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
