"""Finding a customer and reading (and steering) their plans."""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlmodel import col

from app.db import get_session
from app.models import (
    ActorType,
    AuditLog,
    Customer,
    Plan,
    PlanStatus,
    Product,
    Prompt,
    PromptStatus,
)
from tests.admin.conftest import NOW, OPERATOR, TODAY, csrf_token


def _forecast_plan(app) -> tuple[Customer, Plan]:
    with app.app_context():
        session = get_session()
        forecast = session.query(Plan).filter(
            col(Plan.prompt_on).is_not(None), col(Plan.n_purchases) >= 3
        )
        plan = forecast.order_by(col(Plan.id)).first()
        assert plan is not None
        return session.get_one(Customer, plan.customer_id), plan


def test_search_finds_customers_by_email_name_or_external_id(shop, operator):
    customer, _ = _forecast_plan(shop)
    assert customer.email and customer.name
    for term in (customer.email.upper(), customer.name, customer.external_id):
        page = operator.get("/admin/customers", query_string={"q": term})
        assert f'/admin/customers/{customer.id}"' in page.text, term
    assert "No customers match" in operator.get("/admin/customers?q=zzz-nobody").text
    # Words match apart, whatever space separates them (a Japanese keyboard types U+3000).
    family, _, given = customer.name.partition(" ")
    if given:
        for term in (f"{family}\u3000{given}", f"{given} {family}"):
            page = operator.get("/admin/customers", query_string={"q": term})
            assert f'/admin/customers/{customer.id}"' in page.text, term
    # "%" and "_" are the characters themselves, not SQL wildcards.
    for term in ("%", "_", "c_0"):
        page = operator.get("/admin/customers", query_string={"q": term})
        assert "No customers match" in page.text, term


def test_a_page_past_the_end_shows_the_last_page(shop, operator):
    last = operator.get("/admin/customers?page=99999")
    assert last.status_code == 200
    assert "/admin/customers/" in last.text
    assert "No customers" not in last.text


def test_a_customers_page_charts_each_plans_history_and_forecast_with_its_reason(shop, operator):
    customer, plan = _forecast_plan(shop)
    page = operator.get(f"/admin/customers/{customer.id}")
    assert page.status_code == 200
    assert page.text.count('<svg class="chart"') >= 1
    assert "80 % interval" in page.text and "run-out (median)" in page.text
    assert "next prompt" in page.text and plan.prompt_on is not None
    assert f"<strong>Next prompt:</strong> {plan.prompt_on:%d %b %Y}" in page.text
    assert plan.explanation is not None and plan.explanation in page.text


def test_an_operator_pauses_a_plan_and_fixes_an_interval_and_both_are_audited(shop, operator):
    customer, plan = _forecast_plan(shop)
    url = f"/admin/customers/{customer.id}/plans/{plan.id}"
    token = csrf_token(operator.get(f"/admin/customers/{customer.id}").text)
    assert operator.post(url, data={"csrf_token": token, "action": "pause"}).status_code == 302
    with shop.app_context():
        paused = get_session().get_one(Plan, plan.id)
        assert (paused.status, paused.prompt_on) == (PlanStatus.PAUSED, None)
    form = {"csrf_token": token, "action": "interval", "interval_days": "21"}
    operator.post(url, data=form | {"action": "resume"})
    operator.post(url, data=form)
    with shop.app_context():
        fixed = get_session().get_one(Plan, plan.id)
        assert (fixed.status, fixed.preferred_interval_days) == (PlanStatus.ACTIVE, 21)
        entries = get_session().query(AuditLog).filter_by(action="plan.change").all()
        assert [(e.actor_type, e.actor) for e in entries] == [(ActorType.USER, OPERATOR)] * 3
    message = "Not changed: the interval must be 7–180 days (the product&#39;s min and max"
    bad = operator.post(url, data=form | {"interval_days": "0"}, follow_redirects=True)
    assert message in bad.text
    below = operator.post(url, data=form | {"interval_days": "6"}, follow_redirects=True)
    assert message in below.text
    with shop.app_context():
        assert get_session().get_one(Plan, plan.id).preferred_interval_days == 21


def test_back_to_the_forecast_on_a_plan_without_a_fixed_interval_says_nothing_changed(
    shop, operator
):
    customer, plan = _forecast_plan(shop)
    assert plan.preferred_interval_days is None
    token = csrf_token(operator.get(f"/admin/customers/{customer.id}").text)
    page = operator.post(f"/admin/customers/{customer.id}/plans/{plan.id}",
                         data={"csrf_token": token, "action": "forecast"},
                         follow_redirects=True)  # fmt: skip
    assert f"Plan {plan.id} not changed: it already follows the forecast." in page.text
    assert "updated (forecast)" not in page.text
    with shop.app_context():
        assert get_session().query(AuditLog).filter_by(action="plan.change").all() == []


def test_an_unknown_plan_change_says_so_and_changes_nothing(shop, operator):
    customer, plan = _forecast_plan(shop)
    token = csrf_token(operator.get(f"/admin/customers/{customer.id}").text)
    page = operator.post(f"/admin/customers/{customer.id}/plans/{plan.id}",
                         data={"csrf_token": token, "action": "delete"},
                         follow_redirects=True)  # fmt: skip
    assert "Not changed: that is not a change a plan can have." in page.text
    assert "interval must be" not in page.text
    with shop.app_context():
        assert get_session().get_one(Plan, plan.id).status is PlanStatus.ACTIVE


def test_a_viewer_sees_no_plan_controls_and_cannot_post_them(shop, viewer):
    customer, plan = _forecast_plan(shop)
    page = viewer.get(f"/admin/customers/{customer.id}")
    assert "Fix interval" not in page.text
    form = {"csrf_token": csrf_token(page.text), "action": "stop"}
    assert (
        viewer.post(f"/admin/customers/{customer.id}/plans/{plan.id}", data=form).status_code == 403
    )
    with shop.app_context():
        assert get_session().get_one(Plan, plan.id).status is PlanStatus.ACTIVE


def test_another_customers_plan_is_not_found(shop, operator):
    customer, plan = _forecast_plan(shop)
    with shop.app_context():
        other = get_session().query(Customer).filter(col(Customer.id) != customer.id).first()
        assert other is not None
    token = csrf_token(operator.get("/admin/").text)
    response = operator.post(f"/admin/customers/{other.id}/plans/{plan.id}",
                             data={"csrf_token": token, "action": "stop"})  # fmt: skip
    assert response.status_code == 404


def test_the_next_prompt_shown_is_the_day_it_will_come_after_a_rest(shop, operator):
    customer, plan = _forecast_plan(shop)
    assert plan.prompt_on is not None
    rest = plan.prompt_on + timedelta(days=6)
    with shop.app_context():
        get_session().get_one(Plan, plan.id).prompt_not_before = rest
        get_session().commit()
    page = operator.get(f"/admin/customers/{customer.id}")
    assert f"<strong>Next prompt:</strong> {rest:%d %b %Y} (the forecast" in page.text
    assert f"next prompt {rest:%d %b %Y}." in page.text  # the chart's description


def _send_a_prompt(app, customer: Customer, plan: Plan) -> None:
    assert plan.id is not None and customer.id is not None
    with app.app_context():
        get_session().add(Prompt(plan_id=plan.id, customer_id=customer.id, status=PromptStatus.SENT,
                                 due_at=NOW, sent_at=NOW, nonce="n", quantity=1, created_at=NOW,
                                 updated_at=NOW))  # fmt: skip
        get_session().commit()


def test_the_next_prompt_of_a_plan_whose_prompt_is_out_says_it_awaits_the_answer(shop, operator):
    customer, plan = _forecast_plan(shop)
    _send_a_prompt(shop, customer, plan)
    page = operator.get(f"/admin/customers/{customer.id}").text
    assert "<strong>Next prompt:</strong> sent, awaiting an answer." in page


def test_the_chart_of_a_plan_whose_prompt_is_out_says_it_awaits_the_answer(shop, operator):
    customer, plan = _forecast_plan(shop)
    _send_a_prompt(shop, customer, plan)
    with shop.app_context():
        product = get_session().get_one(Product, plan.product_id).external_id
    page = operator.get(f"/admin/customers/{customer.id}").text
    chart = page.split(f"{product}: purchases and forecast</title>", 1)[1].split("</desc>", 1)[0]
    assert chart.endswith("; a prompt is awaiting an answer.")


def test_an_overdue_next_prompt_shows_the_customers_today(shop, operator):
    customer, plan = _forecast_plan(shop)
    with shop.app_context():
        get_session().get_one(Plan, plan.id).prompt_on = TODAY - timedelta(days=3)
        get_session().commit()
    page = operator.get(f"/admin/customers/{customer.id}").text
    today = NOW.astimezone(ZoneInfo(customer.timezone)).date()
    assert f"<strong>Next prompt:</strong> {today:%d %b %Y} (the forecast" in page


def test_a_customer_who_unsubscribed_has_no_next_prompt(shop, operator):
    customer, _ = _forecast_plan(shop)
    with shop.app_context():
        get_session().get_one(Customer, customer.id).unsubscribed_at = NOW
        get_session().commit()
    page = operator.get(f"/admin/customers/{customer.id}").text
    assert "<strong>Next prompt:</strong> none: the customer unsubscribed." in page


def test_a_plan_without_a_next_prompt_says_why(shop, operator):
    with shop.app_context():
        session = get_session()
        quiet = session.scalars(
            select(Plan).where(col(Plan.status) == PlanStatus.ACTIVE, col(Plan.n_purchases) > 0,
                               col(Plan.prompt_on).is_(None))
            .order_by(col(Plan.id))
        ).first()  # fmt: skip
        assert quiet is not None, "every plan of the demo shop has a prompt"
        quiet_customer = quiet.customer_id
    page = operator.get(f"/admin/customers/{quiet_customer}").text
    assert "<strong>Next prompt:</strong> none planned. " in page
    assert re.search(r"; no prompt: (the customer looks to have stopped buying it|a purchase in "
                     r"the 7 days from the prompt day is \d+% likely, below the \d+% a prompt "
                     r"needs)", page)  # fmt: skip
    customer, plan = _forecast_plan(shop)
    with shop.app_context():
        get_session().get_one(Plan, plan.id).status = PlanStatus.PAUSED
        get_session().commit()
    page = operator.get(f"/admin/customers/{customer.id}").text
    assert "<strong>Next prompt:</strong> none: the plan is paused." in page
