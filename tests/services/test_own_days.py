"""Each customer's forecast and prompt day follow their purchases, reckoned on their own
calendar: an order counts on the day it was placed where they live, whenever the service scores
it, and a purchase cancelled takes its forecast with it."""

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session
from sqlmodel import col, select

from app.db import get_session
from app.models import (
    ActorType,
    Customer,
    Locale,
    OrderStatus,
    Plan,
    PlanRescore,
    Product,
    Prompt,
    PromptStatus,
)
from app.services import forecasting, product_settings, prompts, sync
from app.services.product_settings import SettingsChange
from app.services.types import Actor, CustomerIn, LineIn, OrderIn
from tests.services.conftest import NOW, TODAY

TOKYO = "Asia/Tokyo"
API = Actor(ActorType.API_CLIENT, "backend")


def _customer(session, external_id, timezone, now):
    sync.upsert_customer(
        session, CustomerIn(external_id, f"{external_id}@example.jp", None, Locale.JA, timezone),
        TOKYO, API, now,
    )  # fmt: skip


def _order(session, external_id, customer, at):
    order = OrderIn(external_id, customer, at, at, OrderStatus.PLACED, None, None,
                    (LineIn("rice-5kg", 1),))  # fmt: skip
    sync.sync_orders(session, [order], TOKYO, API, at)


def _monthly_buyer(session, external_id, timezone, last_at):
    """A customer who has bought rice every 30 days, the last time at ``last_at``."""
    _customer(session, external_id, timezone, last_at - timedelta(days=100))
    for n, days in enumerate((90, 60, 30, 0)):
        _order(session, f"{external_id}-{n}", external_id, last_at - timedelta(days=days))
    session.commit()


def _plan(session, customer_external_id):
    return session.scalars(
        select(Plan)
        .join(Customer, col(Customer.id) == col(Plan.customer_id))
        .join(Product, col(Product.id) == col(Plan.product_id))
        .where(col(Customer.external_id) == customer_external_id,
               col(Product.external_id) == "rice-5kg")
    ).one()  # fmt: skip


def test_the_nightly_refit_counts_the_orders_of_the_nights_first_hours(shop):
    ordered_at = datetime(2026, 11, 1, 17, 0, tzinfo=UTC)  # 02:00 on 2 Nov in Tokyo
    refit_at = datetime(2026, 11, 1, 18, 0, tzinfo=UTC)  # 03:00 on 2 Nov, the nightly refit
    with shop.app_context():
        session = get_session()
        _monthly_buyer(session, "night-owl", TOKYO, ordered_at)
        forecasting.refit(session, date(2026, 11, 2), refit_at)
        session.commit()
        plan = _plan(session, "night-owl")
        assert plan.forecast_at == refit_at
        assert plan.last_ordered_on == plan.forecast_last_on == date(2026, 11, 2)
        # Just bought a month's rice: no prompt for weeks, not one the same morning.
        assert plan.prompt_on is None or plan.prompt_on > date(2026, 11, 16)


def test_an_order_placed_on_a_customers_new_day_counts_although_the_shops_day_is_behind(shop):
    ordered_at = datetime(2026, 11, 1, 12, 30, tzinfo=UTC)  # 01:30 on 2 Nov in Auckland
    with shop.app_context():
        session = get_session()
        _monthly_buyer(session, "kiwi", "Pacific/Auckland", ordered_at)  # Tokyo: 21:30, 1 Nov
        plan = _plan(session, "kiwi")
        assert plan.last_ordered_on == plan.forecast_last_on == date(2026, 11, 2)
        assert plan.prompt_on is None or plan.prompt_on > date(2026, 11, 16)


def test_a_customers_new_time_zone_re_dates_their_purchases_and_re_scores_them(shop):
    last_at = datetime(2026, 10, 31, 15, 30, tzinfo=UTC)  # 00:30 on 1 Nov in Tokyo
    with shop.app_context():
        session = get_session()
        _monthly_buyer(session, "mover", TOKYO, last_at)
        assert _plan(session, "mover").forecast_last_on == date(2026, 11, 1)
        _customer(session, "mover", "America/New_York", NOW)  # 11:30 on 31 Oct there
        session.commit()
        plan = _plan(session, "mover")
        assert plan.last_ordered_on == plan.forecast_last_on == date(2026, 10, 31)
        assert plan.forecast_at == NOW


def test_the_refit_hands_customers_on_another_day_to_the_sweep(shop):
    with shop.app_context():
        session = get_session()
        _monthly_buyer(session, "angeleno", "America/Los_Angeles", NOW - timedelta(days=20))
        session.query(PlanRescore).delete()
        session.commit()
        # 12:00 on 1 Nov in Tokyo is 20:00 on 31 Oct in Los Angeles.
        forecasting.refit(session, TODAY, NOW)
        session.commit()
        requested = set(session.scalars(select(PlanRescore.plan_id)).all())
        assert requested == {_plan(session, "angeleno").id}


def test_saving_a_products_settings_withdraws_its_prompts_not_yet_sent(shop):
    with shop.app_context():
        session = get_session()
        settings = shop.extensions["kaidoki.settings"]
        prompts.schedule_prompts(session, settings, NOW + timedelta(days=60))
        session.commit()
        waiting = session.scalars(
            select(Prompt.plan_id).where(Prompt.status == PromptStatus.SCHEDULED)
        ).first()
        assert waiting is not None, "the demo shop should have a prompt waiting to be sent"
        product_id = session.get_one(Plan, waiting).product_id
        product = session.get_one(Product, product_id)
        open_before = session.scalars(
            select(Prompt)
            .join(Plan, col(Plan.id) == col(Prompt.plan_id))
            .where(col(Plan.product_id) == product.id, Prompt.status == PromptStatus.SCHEDULED)
        ).all()
        change = replace(SettingsChange.of(product), lead_time_days=product.lead_time_days + 4)
        product_settings.save(session, product, change, "ops@shop.jp", NOW, TOKYO)
        session.commit()
        for prompt in open_before:
            session.refresh(prompt)
            assert (prompt.status, prompt.cancel_reason) == (
                PromptStatus.CANCELLED,
                "product settings changed",
            )


def _cancel_returners_orders(session: Session, last_at: datetime, same_instant: bool) -> None:
    """The backend cancels the monthly buyer "returner"'s four orders one sync at a time, a
    minute apart, or all synced at the same ``now``."""
    for n, days in enumerate((90, 60, 30, 0)):
        at = last_at - timedelta(days=days)
        stamp = NOW + timedelta(minutes=n)
        cancelled = OrderIn(f"returner-{n}", "returner", at, stamp, OrderStatus.CANCELLED,
                            None, None, (LineIn("rice-5kg", 1),))  # fmt: skip
        synced = NOW + timedelta(minutes=5) if same_instant else stamp
        sync.sync_orders(session, [cancelled], TOKYO, API, synced)
    session.commit()


def test_a_pair_whose_orders_are_all_cancelled_loses_its_forecast_and_waiting_prompt(shop):
    last_at = NOW - timedelta(days=27)
    with shop.app_context():
        session = get_session()
        _monthly_buyer(session, "returner", TOKYO, last_at)
        plan = _plan(session, "returner")
        assert plan.median_on is not None and plan.explanation
        plan.prompt_on = TODAY  # due: a prompt waits to be sent
        session.commit()
        prompts.schedule_prompts(session, shop.extensions["kaidoki.settings"], NOW)
        session.commit()
        waiting = session.scalars(select(Prompt).where(Prompt.plan_id == plan.id)).one()
        assert waiting.status is PromptStatus.SCHEDULED
        _cancel_returners_orders(session, last_at, same_instant=False)
        session.refresh(plan)
        session.refresh(waiting)
        assert (plan.n_purchases, plan.prompt_on, plan.median_on, plan.explanation) == (
            0, None, None, None,
        )  # fmt: skip
        assert (waiting.status, waiting.cancel_reason) == (PromptStatus.CANCELLED, "no purchases")


def test_a_products_maximum_interval_brings_a_slow_buyers_prompt_forward(shop):
    last_at = NOW - timedelta(days=3)
    with shop.app_context():
        session = get_session()
        _monthly_buyer(session, "slow", TOKYO, last_at)
        plan = _plan(session, "slow")
        rice = session.get_one(Product, plan.product_id)
        change = replace(SettingsChange.of(rice), min_interval_days=7, max_interval_days=14)
        product_settings.save(session, rice, change, "ops@shop.jp", NOW, TOKYO)
        session.commit()
        session.refresh(plan)
        # Buys every 30 days, so a prompt after 14 looks early; the maximum says to ask anyway.
        assert plan.prompt_on == plan.last_ordered_on + timedelta(days=14)
        assert "the product's maximum of 14 days after the last order" in plan.explanation


def test_a_pair_loses_its_history_even_when_its_cancellations_arrive_in_the_same_instant(shop):
    # One sync stamps a plan it refreshes; a second in the same instant (a batch split in
    # two, a fast retry) that cancels the last orders must still find the pair emptied.
    last_at = NOW - timedelta(days=27)
    with shop.app_context():
        session = get_session()
        _monthly_buyer(session, "returner", TOKYO, last_at)
        plan = _plan(session, "returner")
        assert plan.n_purchases > 0
        _cancel_returners_orders(session, last_at, same_instant=True)
        session.refresh(plan)
        assert (plan.n_purchases, plan.prompt_on, plan.median_on) == (0, None, None)
