from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session
from sqlmodel import col

from app import sqlite_writers
from app.db import get_engine, get_session
from app.forecast import fit_population
from app.models import Customer, ForecastModel, Plan, PlanRescore, PlanStatus, Product
from app.services import forecasting
from tests.factories import order_body
from tests.services.conftest import NOW, TODAY


def _plan(session):
    """A plan with some history and a prompt date."""
    query = session.query(Plan).filter(col(Plan.n_purchases) >= 3, col(Plan.prompt_on).is_not(None))
    return query.order_by(col(Plan.id)).first()


def test_refit_stores_a_model_and_forecasts_every_plan(shop):
    with shop.app_context():
        session = get_session()
        [model] = session.query(ForecastModel).all()
        assert model.trained_until_on == TODAY
        plans = session.query(Plan).all()
        assert all(p.forecast_at == NOW and p.model_version == model.model_version for p in plans)
        plan = _plan(session)
        assert plan.q10_on <= plan.median_on <= plan.q90_on
        assert plan.median_on > plan.last_ordered_on
        assert plan.prompt_on >= TODAY
        assert f"{plan.n_purchases} purchases" in plan.explanation
        assert plan.explanation_data["n_purchases"] == plan.n_purchases


def test_refit_on_an_empty_shop_fails_clearly(app, runner):
    result = runner.invoke(args=["forecast", "refit"])
    assert result.exit_code != 0
    assert "no purchases" in result.output


def test_synced_order_re_estimates_its_plan_from_the_stored_model(shop, client, auth):
    with shop.app_context():
        session = get_session()
        plan = _plan(session)
        plan_id, customer = plan.id, plan.customer_id
        before = (plan.last_ordered_on, plan.median_on, plan.forecast_at)
        product_ext = session.get_one(Product, plan.product_id).external_id
        customer_ext = session.get_one(Customer, customer).external_id
    ordered = datetime.now(UTC) - timedelta(hours=1)
    body = order_body(
        customer_external_id=customer_ext,
        ordered_at=ordered.isoformat(),
        updated_at=ordered.isoformat(),
        lines=[{"product_external_id": product_ext, "quantity": 1}],
    )
    assert client.put("/api/v1/orders/new-order", json=body, headers=auth).status_code == 201
    with shop.app_context():
        after = get_session().get_one(Plan, plan_id)
        assert after.last_ordered_on > before[0]
        assert after.median_on > before[1]
        assert after.forecast_at > before[2]


def test_before_any_refit_synced_plans_have_no_forecast(app, client, auth):
    client.put("/api/v1/orders/o-1", json=order_body(), headers=auth)
    with app.app_context():
        [plan] = get_session().query(Plan).all()
        assert plan.median_on is None
        assert plan.prompt_on is None


def test_paused_plan_gets_a_forecast_but_no_prompt(shop):
    with shop.app_context():
        session = get_session()
        plan = _plan(session)
        plan.status = PlanStatus.PAUSED
        session.commit()
        forecasting.refit(session, TODAY, NOW)
        session.commit()
        session.refresh(plan)
        assert plan.median_on is not None
        assert plan.prompt_on is None


def test_a_re_estimate_keeps_an_overdue_prompt_today_and_dates_the_reason_today(shop):
    # Re-estimates score as of tomorrow (today's orders and answers count); the prompt of a
    # plan whose day has passed is still today's, and the reason says today, not tomorrow.
    later = TODAY + timedelta(days=10)
    with shop.app_context():
        session = get_session()
        plans = session.query(Plan).filter(col(Plan.n_purchases) >= 3).all()
        pairs = {(p.customer_id, p.product_id) for p in plans}
        assert forecasting.reestimate(session, pairs, later, NOW) == len(plans)
        session.commit()
        session.expire_all()
        overdue = [p for p in plans if p.prompt_on == later]
        assert overdue, "no plan overdue 10 days on"
        assert all(p.prompt_on is None or p.prompt_on >= later for p in plans)
        on = f"{later.day} {later:%b}"
        assert all(f"had passed on {on}, so asking" in (p.explanation or "") for p in overdue)


def test_preferred_interval_sets_the_prompt_and_says_so(shop):
    with shop.app_context():
        session = get_session()
        plan = _plan(session)
        plan.preferred_interval_days = 60
        session.commit()
        forecasting.refit(session, TODAY, NOW)
        session.commit()
        session.refresh(plan)
        lead = plan.explanation_data["lead_time_days"]
        expected = plan.last_ordered_on + timedelta(days=60 - lead)
        assert plan.prompt_on == max(expected, TODAY)
        assert "fixed interval of 60 days" in plan.explanation


def test_an_order_synced_while_the_refit_fits_goes_through_and_its_forecast_stands(
    shop, client, auth, monkeypatch
):
    # Before, the refit's one transaction held SQLite's write lock through the whole fit:
    # this sync would wait for it (here 2 s, as customers' answers 30 s) and then fail.
    monkeypatch.setattr(sqlite_writers, "WAIT_SECONDS", 2.0)
    monkeypatch.setattr(forecasting, "REFIT_CHUNK", 7)  # several transactions
    with shop.app_context():
        session = get_session()
        plan = _plan(session)
        plan_id, last_before = plan.id, plan.last_ordered_on
        product_ext = session.get_one(Product, plan.product_id).external_id
        customer_ext = session.get_one(Customer, plan.customer_id).external_id
    ordered = datetime.now(UTC) - timedelta(hours=1)
    body = order_body(customer_external_id=customer_ext, ordered_at=ordered.isoformat(),
                      updated_at=ordered.isoformat(),
                      lines=[{"product_external_id": product_ext, "quantity": 1}])  # fmt: skip
    synced = []

    def fit_while_an_order_is_synced(batch, today):
        synced.append(client.put("/api/v1/orders/late", json=body, headers=auth).status_code)
        return fit_population(batch, today)

    monkeypatch.setattr(forecasting, "fit_population", fit_while_an_order_is_synced)
    later = NOW + timedelta(days=1)
    with shop.app_context():
        engine = get_engine()
    # Outside the app context, so that the sync's request has a session of its own.
    with Session(engine) as session:
        result = forecasting.refit(session, TODAY + timedelta(days=1), later)
    assert synced == [201]
    with shop.app_context():
        session = get_session()
        plans = session.query(Plan).filter(col(Plan.forecast_at).is_not(None)).all()
        assert result.n_plans_written == len(plans) - 1
        mine = session.get_one(Plan, plan_id)
        # The sync's forecast, which knows the new order, not the refit's (read before it).
        assert mine.last_ordered_on > last_before
        assert mine.forecast_last_on == mine.last_ordered_on
        assert mine.forecast_at != later
        assert all(p.forecast_at == later for p in plans if p.id != plan_id)
        # ... and the re-score sweep is asked to score it again with the new model.
        assert [r.plan_id for r in session.query(PlanRescore).all()] == [plan_id]


def test_a_bulk_purchase_of_the_largest_quantity_is_synced_and_forecast(shop, client, auth):
    with shop.app_context():
        plan = _plan(get_session())
        customer_ext = get_session().get_one(Customer, plan.customer_id).external_id
        product_ext = get_session().get_one(Product, plan.product_id).external_id
    ordered = datetime.now(UTC) - timedelta(hours=1)
    for ext, customer in (("bulk-1", customer_ext), ("bulk-2", "new-office")):
        line = {"product_external_id": product_ext, "quantity": 1_000_000}
        body = order_body(customer_external_id=customer, ordered_at=ordered.isoformat(),
                          updated_at=ordered.isoformat(), lines=[line])  # fmt: skip
        response = client.put(f"/api/v1/orders/{ext}", json=body, headers=auth)
        assert response.status_code == 201, response.json
    with shop.app_context():
        after = get_session().get_one(Plan, plan.id)
        assert after.median_on is not None and after.median_on.year < 2200
