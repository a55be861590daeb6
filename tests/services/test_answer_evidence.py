"""Answers to prompts are evidence for the forecaster, not just state changes."""

import threading
import time
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import get_engine, get_session
from app.forecast.types import ANSWER_CODES
from app.models import ForecastOutcome, Plan, PlanRescore, Prompt, PromptStatus, Reorder
from app.scheduler import jobs
from app.services import forecasting
from tests.factories import NOW, order_body


@pytest.fixture
def fitted(client, auth, app, links):
    """The prompted plan with real order history and a fitted model."""
    for n, day in enumerate(["2026-08-20", "2026-09-20", "2026-10-20"]):
        stamp = f"{day}T10:00:00+09:00"
        body = order_body(ordered_at=stamp, updated_at=stamp)
        assert client.put(f"/api/v1/orders/o-{n}", json=body, headers=auth).status_code == 201
    with app.app_context():
        forecasting.refit(get_session(), NOW.date(), NOW)
        get_session().commit()
    return links


def _plan(app) -> Plan:
    with app.app_context():
        return get_session().query(Plan).one()


def _answers(app):
    with app.app_context():
        batch = forecasting.load_history(get_session()).batch
        return batch.answer_kind.tolist(), batch.answer_snooze_days.tolist()


def _next_prompt(plan: Plan):
    assert plan.prompt_on is not None
    return max(plan.prompt_on, plan.prompt_not_before or plan.prompt_on)


def test_a_skip_is_loaded_as_evidence_and_rests_the_plan_a_week(client, app, fitted, at_now):
    assert _answers(app) == ([], [])
    client.post(fitted["p"], data={"action": "skip"})
    assert _answers(app) == ([ANSWER_CODES["skip"]], [0])
    assert _next_prompt(_plan(app)) >= NOW.date() + timedelta(days=7)


def test_a_snooze_is_loaded_with_its_length(client, app, fitted, at_now):
    client.post(fitted["p"], data={"action": "snooze", "snooze_days": "14"})
    assert _answers(app) == ([ANSWER_CODES["snooze"]], [14])
    assert _next_prompt(_plan(app)) >= NOW.date() + timedelta(days=14)


def _rescore_sweep(app, monkeypatch) -> int:
    """The scheduler's re-score sweep, a minute after the answer."""
    monkeypatch.setattr("app.scheduler.jobs.utcnow", lambda: NOW + timedelta(minutes=1))
    with app.app_context():
        return jobs.rescore_answered_plans(jobs.Timing())


def test_a_confirm_counts_as_a_purchase_before_the_order_syncs(
    client, app, fitted, at_now, monkeypatch
):
    before = _plan(app).median_on
    client.post(fitted["p"], data={"action": "confirm", "quantity": "2"})
    assert _answers(app)[0] == [ANSWER_CODES["confirm"]]
    assert _rescore_sweep(app, monkeypatch) == 1
    after = _plan(app).median_on
    assert before is not None and after is not None
    # The run-out is now reckoned from today's confirmed delivery, a month further on.
    assert after >= before + timedelta(days=20)


def test_an_undone_confirm_is_no_longer_evidence(client, app, fitted, at_now, monkeypatch):
    # The forecast as an answer or a sync leaves it (the refit scores as of a day earlier).
    with app.app_context():
        plan = get_session().query(Plan).one()
        forecasting.reestimate(get_session(), {(plan.customer_id, plan.product_id)},
                               NOW.date(), NOW)  # fmt: skip
        get_session().commit()
    before = _plan(app)
    client.post(fitted["p"], data={"action": "confirm", "quantity": "2"})
    assert _rescore_sweep(app, monkeypatch) == 1
    assert _plan(app).median_on != before.median_on
    page = client.post(fitted["p"], data={"action": "undo"})
    assert _answers(app) == ([], [])
    # At once, before any sweep: the page and the plan show the forecast from before.
    assert before.median_on is not None
    assert f"{before.median_on.month}月{before.median_on.day}日頃" in page.text
    for _ in range(2):  # and the sweep's re-score keeps it
        after = _plan(app)
        assert (after.median_on, after.q10_on, after.q90_on, after.prompt_on,
                after.prompt_not_before) == (before.median_on, before.q10_on, before.q90_on,
                                             before.prompt_on, None)  # fmt: skip
        _rescore_sweep(app, monkeypatch)


def test_an_answer_asks_the_scheduler_for_one_rescore_of_its_plan(
    client, app, fitted, at_now, monkeypatch
):
    forecast_at = _plan(app).forecast_at
    client.post(fitted["p"], data={"action": "snooze", "snooze_days": "14"})
    client.post(fitted["p"], data={"action": "snooze", "snooze_days": "14"})  # a double click
    plan_id = _plan(app).id
    with app.app_context():
        [request] = get_session().scalars(select(PlanRescore)).all()
        assert request.plan_id == plan_id
    assert _plan(app).forecast_at == forecast_at  # not in the customer's request
    assert _rescore_sweep(app, monkeypatch) == 1
    assert _plan(app).forecast_at == NOW + timedelta(minutes=1)
    with app.app_context():
        assert get_session().scalars(select(PlanRescore)).all() == []
    assert _rescore_sweep(app, monkeypatch) == 0


def test_an_answer_arriving_while_its_plan_is_rescored_is_rescored_again(
    client, app, fitted, at_now, monkeypatch
):
    client.post(fitted["p"], data={"action": "skip"})
    plan_id = _plan(app).id
    assert plan_id is not None
    real_reestimate = forecasting.reestimate

    def answered_during(session, pairs, today, now):
        written = real_reestimate(session, pairs, today, now)
        # Another answer on the plan, begun (its clock read) before this sweep read the
        # requests and committed only now.
        forecasting.request_rescore(session, plan_id, NOW + timedelta(seconds=30))
        return written

    monkeypatch.setattr(forecasting, "reestimate", answered_during)
    assert _rescore_sweep(app, monkeypatch) >= 1
    monkeypatch.setattr(forecasting, "reestimate", real_reestimate)
    with app.app_context():
        [kept] = get_session().scalars(select(PlanRescore)).all()
        assert kept.requested_at == NOW + timedelta(seconds=30)


def _lingering_sweep(app, monkeypatch, rescore_first):
    """The re-score sweep in a thread that lingers 1.5 s inside its transaction, before (or
    after) re-scoring the plans; returns the thread and its results once it lingers."""
    lingering, results = threading.Event(), []
    real_rescore = forecasting.rescore

    def rescore(session, requests, now):
        written = real_rescore(session, requests, now) if rescore_first else None
        lingering.set()
        time.sleep(1.5)  # the other request meanwhile gets as far as it can
        return written if rescore_first else real_rescore(session, requests, now)

    monkeypatch.setattr(forecasting, "rescore", rescore)

    def sweep():
        with app.app_context():
            results.append(jobs.rescore_answered_plans(jobs.Timing()))

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    assert lingering.wait(timeout=10)
    return sweeper, results


@pytest.mark.slow
def test_an_undo_while_the_sweep_rescores_its_plan_waits_for_it_instead_of_deadlocking(
    client, app, fitted, at_now, monkeypatch
):
    """The sweep holds the plan's re-score request, then writes the plan; an answer (here an
    undo of a confirm) takes them in the same order, so on PostgreSQL it waits for the sweep
    instead of each waiting for the other (a deadlock: one of them fails)."""
    client.post(fitted["p"], data={"action": "confirm", "quantity": "2"})
    sweeper, results = _lingering_sweep(app, monkeypatch, rescore_first=False)
    undone = client.post(fitted["p"], data={"action": "undo"})
    sweeper.join(timeout=30)
    assert undone.status_code == 200 and results == [1]
    with app.app_context():
        [prompt] = get_session().scalars(select(Prompt)).all()
        assert prompt.status is PromptStatus.SENT
        assert get_session().scalars(select(Reorder)).all() == []


@pytest.mark.slow
def test_an_order_sync_while_the_sweep_rescores_its_customer_waits_for_it(
    client, auth, app, fitted, at_now, monkeypatch
):
    """The sweep locks the customers (learning their send hours), then writes their plans, the
    order an order sync locks them in: on PostgreSQL the sync waits instead of deadlocking."""
    client.post(fitted["p"], data={"action": "skip"})
    sweeper, results = _lingering_sweep(app, monkeypatch, rescore_first=True)
    stamp = "2026-11-20T10:30:00+09:00"
    body = order_body(ordered_at=stamp, updated_at=stamp)
    synced = client.put("/api/v1/orders/o-new", json=body, headers=auth)
    sweeper.join(timeout=30)
    assert synced.status_code == 201 and results == [1]
    assert _plan(app).last_ordered_on == NOW.date()


@pytest.mark.slow
def test_a_refit_while_the_sweep_rescores_a_plan_waits_for_it_and_leaves_its_forecast(
    client, app, fitted, at_now, monkeypatch
):
    """The refit reads the plan before the sweep commits, then (its chunk locking customers
    first, as the sweep does) waits for the sweep: no deadlock, and the sweep's newer forecast
    stands, handed back to the sweep to be scored with the new model."""
    client.post(fitted["p"], data={"action": "skip"})
    sweeper, results = _lingering_sweep(app, monkeypatch, rescore_first=True)
    with app.app_context():
        engine = get_engine()
    later = NOW + timedelta(hours=1)
    with Session(engine) as session:
        refitted = forecasting.refit(session, NOW.date(), later)
    sweeper.join(timeout=30)
    assert results == [1] and refitted.n_plans_written == 0
    plan = _plan(app)
    assert plan.forecast_at != later  # the sweep's own
    with app.app_context():
        assert [r.plan_id for r in get_session().scalars(select(PlanRescore))] == [plan.id]


def test_a_confirm_and_the_order_that_fulfils_it_test_the_forecast_once(
    client, app, auth, fitted, at_now, monkeypatch
):
    plan = _plan(app)
    client.post(fitted["p"], data={"action": "confirm", "quantity": "2"})
    assert _rescore_sweep(app, monkeypatch) == 1
    with app.app_context():
        [outcome] = get_session().query(ForecastOutcome).all()
        # The forecast before the answer, put to the test by the run-out the confirm marks.
        assert (outcome.predicted_on, outcome.actual_on) == (plan.median_on, NOW.date())
        reorder_id = get_session().query(Reorder).one().id
    at_now["now"] = NOW + timedelta(days=2)
    stamp = (NOW + timedelta(days=2)).isoformat()
    body = order_body(ordered_at=stamp, updated_at=stamp, reorder_id=reorder_id)
    assert client.put("/api/v1/orders/o-re", json=body, headers=auth).status_code == 201
    with app.app_context():
        assert get_session().query(ForecastOutcome).count() == 1  # the fulfilment is the confirm
