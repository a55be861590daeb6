"""The admin pages' behaviour through the HTTP client: preview, save, replay, audit."""

import re
from collections import Counter
from datetime import timedelta

from sqlalchemy import func, select
from sqlmodel import col

from app.admin import queries
from app.db import get_session
from app.models import (
    AuditLog,
    Customer,
    ForecastOutcome,
    Outbox,
    OutboxKind,
    OutboxStatus,
    Plan,
    Product,
    Prompt,
    PromptStatus,
)
from app.services import forecasting, outbox, preferences
from tests.admin.conftest import NOW, OPERATOR, TODAY, csrf_token
from tests.factories import order_body
from tests.scheduler.helpers import dispatch


def _busiest_product(app) -> Product:
    with app.app_context():
        session = get_session()
        counts: Counter[int] = Counter(
            plan.product_id for plan in session.query(Plan).filter(col(Plan.prompt_on).is_not(None))
        )
        return session.get_one(Product, counts.most_common(1)[0][0])


def _settings_form(product: Product, **changes):
    form = {"default_interval_days": product.default_interval_days,
            "min_interval_days": product.min_interval_days,
            "max_interval_days": product.max_interval_days,
            "lead_time_days": product.lead_time_days,
            "target_stockout_risk": str(product.target_stockout_risk),
            "prompt_expiry_days": product.prompt_expiry_days}  # fmt: skip
    return form | changes


def _prompt_days(app, product_id):
    with app.app_context():
        plans = get_session().query(Plan).filter_by(product_id=product_id).order_by(col(Plan.id))
        return [p.prompt_on for p in plans]


def _post(client, product, action, **changes):
    token = csrf_token(client.get(f"/admin/products/{product.id}").text)
    form = _settings_form(product, **changes) | {"csrf_token": token, "action": action}
    return client.post(f"/admin/products/{product.id}", data=form)


# A week more lead time, and no minimum interval holding prompts back: prompts move earlier.
EARLIER = {"lead_time_days": 10, "min_interval_days": 1}


def test_preview_counts_the_plans_that_move_and_saves_nothing(shop, operator):
    product = _busiest_product(shop)
    preview = _post(operator, product, "preview", **EARLIER)
    assert preview.status_code == 200
    assert "<svg" in preview.text and "With the change" in preview.text
    found = re.search(r"(\d+) plans would be prompted earlier, (\d+) later", preview.text)
    assert found is not None and int(found.group(1)) > 0 and found.group(2) == "0"
    with shop.app_context():
        assert get_session().get_one(Product, product.id).lead_time_days == product.lead_time_days


def test_preview_of_a_new_expiry_says_it_holds_for_prompts_sent_from_now_on(shop, operator):
    assert dispatch(shop, NOW).prompts  # some prompts are out, unanswered
    with shop.app_context():
        found = get_session().execute(
            select(col(Plan.product_id), func.count()).select_from(Prompt).join(Plan)
            .where(col(Prompt.status) == PromptStatus.SENT).group_by(col(Plan.product_id))
        ).first()  # fmt: skip
        assert found is not None
        product_id, sent = found
        product = get_session().get_one(Product, product_id)
    longer = product.prompt_expiry_days + 7
    preview = _post(operator, product, "preview", prompt_expiry_days=longer)
    assert (f"Unanswered prompts would expire after {longer} days instead of "
            f"{product.prompt_expiry_days}") in preview.text  # fmt: skip
    assert f"the {sent} prompts already sent and unanswered keep their expiry" in preview.text
    assert "0 plans would be prompted earlier, 0 later" in preview.text
    unchanged = _post(operator, product, "preview", **EARLIER)
    assert "Unanswered prompts would expire" not in unchanged.text


def test_saving_moves_the_plans_the_preview_said_and_is_audited(shop, operator):
    product = _busiest_product(shop)
    days_before = _prompt_days(shop, product.id)
    preview = _post(operator, product, "preview", **EARLIER)
    promised = re.search(r"(\d+) plans would be prompted earlier, (\d+) later, (\d+) unchanged",
                         preview.text)  # fmt: skip
    assert promised is not None
    saved = _post(operator, product, "save", **EARLIER)
    assert saved.status_code == 302
    earlier, later, unchanged = promised.groups()
    page = operator.get(saved.headers["Location"]).text
    assert (f"Saved {product.external_id}: {earlier} plans are now prompted earlier, {later} "
            f"later, {unchanged} unchanged") in page  # fmt: skip
    days_after = _prompt_days(shop, product.id)
    moved = [(a, b) for a, b in zip(days_before, days_after, strict=True) if a and b and a != b]
    assert all(b < a for a, b in moved)
    assert len(moved) == int(promised.group(1))
    with shop.app_context():
        [entry] = get_session().query(AuditLog).filter_by(action="update_settings").all()
        assert entry.actor == OPERATOR and entry.entity_id == product.external_id
        assert entry.before is not None and entry.after is not None
        assert (entry.before["lead_time_days"], entry.after["lead_time_days"]) == (
            product.lead_time_days,
            10,
        )


def test_plans_with_a_fixed_interval_move_with_the_lead_time_in_the_preview_and_the_save(
    shop, operator
):
    product = _busiest_product(shop)
    with shop.app_context():
        session = get_session()
        plan = session.scalars(
            select(Plan).where(col(Plan.product_id) == product.id, col(Plan.prompt_on).is_not(None))
            .order_by(col(Plan.id))
        ).first()  # fmt: skip
        assert plan is not None
        _, longest = preferences.interval_range(product)
        customer = session.get_one(Customer, plan.customer_id)
        preferences.change_plan(session, customer, plan, NOW, preferred_interval_days=longest)
        session.commit()
        session.refresh(plan)
        fixed_id, fixed_on = plan.id, plan.prompt_on
    assert fixed_on is not None and fixed_on > TODAY + timedelta(days=7)
    days_before = _prompt_days(shop, product.id)
    longer = {"lead_time_days": product.lead_time_days + 7}
    preview = _post(operator, product, "preview", **longer)
    promised = re.search(r"(\d+) plans would be prompted earlier, (\d+) later", preview.text)
    assert promised is not None
    assert _post(operator, product, "save", **longer).status_code == 302
    with shop.app_context():
        assert get_session().get_one(Plan, fixed_id).prompt_on == fixed_on - timedelta(days=7)
    days_after = _prompt_days(shop, product.id)
    moved = [(a, b) for a, b in zip(days_before, days_after, strict=True) if a and b and a != b]
    assert len(moved) == int(promised.group(1)) and promised.group(2) == "0"


def test_saving_a_change_that_moves_no_prompt_says_so_and_counts_the_plans_rescored(shop, operator):
    product = _busiest_product(shop)
    with shop.app_context():
        plans = get_session().query(Plan).filter_by(product_id=product.id).all()
        scheduled = sum(p.prompt_on is not None for p in plans)
    saved = _post(operator, product, "save", prompt_expiry_days=product.prompt_expiry_days + 7)
    page = operator.get(saved.headers["Location"]).text
    assert (f"Saved {product.external_id}: 0 plans are now prompted earlier, 0 later, "
            f"{scheduled} unchanged. {len(plans)} plans re-scored.") in page  # fmt: skip
    assert "rescheduled" not in page


def test_an_impossible_setting_is_refused_with_the_reason_next_to_the_field(shop, operator):
    product = _busiest_product(shop)
    refused = _post(operator, product, "save", min_interval_days=40, max_interval_days=20,
                    target_stockout_risk="0.7")  # fmt: skip
    assert refused.status_code == 422
    assert "must be at least the minimum interval" in refused.text
    assert "Number must be between 0.01 and 0.49." in refused.text
    with shop.app_context():
        assert (
            get_session().get_one(Product, product.id).max_interval_days
            == product.max_interval_days
        )


def test_a_default_interval_outside_the_min_and_max_is_refused(shop, operator):
    product = _busiest_product(shop)
    refused = _post(operator, product, "save", default_interval_days=200, min_interval_days=7,
                    max_interval_days=90)  # fmt: skip
    assert refused.status_code == 422
    assert "must lie between the minimum and maximum interval (7–90 days)" in refused.text
    with shop.app_context():
        stored = get_session().get_one(Product, product.id)
        assert (stored.default_interval_days, stored.max_interval_days) == (
            product.default_interval_days, product.max_interval_days,
        )  # fmt: skip


def _dead_webhook(app) -> int:
    with app.app_context():
        session = get_session()
        [message_id] = outbox.enqueue_many(session, [outbox.NewMessage(
            OutboxKind.WEBHOOK, "msg_reorder.confirmed_99", "reorder.confirmed",
            "https://shop.example/hooks", "{}")], NOW)  # fmt: skip
        row = session.get_one(Outbox, message_id)
        row.status, row.attempts, row.last_error = OutboxStatus.DEAD, 14, "HTTP 503 from shop"
        session.commit()
        return message_id


def test_a_dead_webhook_is_listed_and_an_operator_retries_it(shop, operator):
    message_id = _dead_webhook(shop)
    page = operator.get("/admin/deliveries?status=dead")
    assert "HTTP 503 from shop" in page.text and f"Retry message {message_id}" in page.text
    retried = operator.post(f"/admin/deliveries/{message_id}/replay",
                            data={"csrf_token": csrf_token(page.text)})  # fmt: skip
    assert retried.status_code == 302
    assert "queued again" in operator.get("/admin/deliveries").text
    with shop.app_context():
        row = get_session().get_one(Outbox, message_id)
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, 0)
        assert row.available_at - NOW < timedelta(days=365)
    audit = operator.get(f"/admin/audit?actor={OPERATOR}&action=replay")
    assert f"outbox {message_id}" in audit.text
    assert "settings" not in operator.get("/admin/audit?action=replay").text


def test_the_dashboard_counts_plans_and_charts_the_coming_prompts(shop, operator):
    page = operator.get("/admin/")
    with shop.app_context():
        active = get_session().query(Plan).filter_by(status="active").count()
    assert f'<p class="big">{active}</p>' in page.text
    assert 'Plus <span class="unreachable">0</span> whose customer unsubscribed' in page.text
    assert "Prompts due per day, next 30 days" in page.text and "<svg" in page.text


def _plans_due_soon(session, n: int) -> list[Plan]:
    """``n`` active plans of different customers, each due within the chart's 30 days."""
    plans: dict[int, Plan] = {}
    for plan in session.query(Plan).filter(
        col(Plan.status) == "active", col(Plan.prompt_on) < TODAY + timedelta(days=30)
    ).order_by(col(Plan.id)):  # fmt: skip
        plans.setdefault(plan.customer_id, plan)
    assert len(plans) >= n
    return list(plans.values())[:n]


def test_plans_of_customers_who_cannot_be_prompted_are_counted_apart_and_not_due(shop, operator):
    with shop.app_context():
        session = get_session()
        active = session.query(Plan).filter_by(status="active").count()
        due = sum(queries.prompts_per_day(session, TODAY))
        unsubscribed, no_email = (session.get_one(Customer, plan.customer_id)
                                  for plan in _plans_due_soon(session, 2))  # fmt: skip
        unsubscribed.unsubscribed_at, no_email.email = NOW, None
        session.commit()
        gone = session.query(Plan).filter(
            col(Plan.customer_id).in_([unsubscribed.id, no_email.id]), col(Plan.status) == "active"
        )
        unreachable = gone.count()
        unreachable_due = gone.filter(col(Plan.prompt_on) < TODAY + timedelta(days=30)).count()
        assert unreachable_due >= 2
        assert queries.active_plans(session) == queries.ActivePlans(
            active - unreachable, unreachable
        )
        assert sum(queries.prompts_per_day(session, TODAY)) == due - unreachable_due
    page = operator.get("/admin/").text
    assert f'<p class="big">{active - unreachable}</p>' in page
    assert f'Plus <span class="unreachable">{unreachable}</span> whose customer' in page


def test_the_dashboard_shows_every_sent_prompts_outcome_and_they_add_up(shop, operator):
    outcomes = {PromptStatus.CONFIRMED: 2, PromptStatus.SKIPPED: 1, PromptStatus.SNOOZED: 3,
                PromptStatus.STOPPED: 1, PromptStatus.EXPIRED: 1, PromptStatus.CANCELLED: 2,
                PromptStatus.SENT: 4}  # fmt: skip
    statuses = [s for s, n in outcomes.items() for _ in range(n)]
    with shop.app_context():
        session = get_session()
        plans = session.query(Plan).order_by(col(Plan.id)).limit(len(statuses) + 1).all()
        for plan, status in zip(plans, statuses, strict=False):
            assert plan.id is not None
            session.add(Prompt(plan_id=plan.id, customer_id=plan.customer_id, status=status,
                               due_at=NOW, sent_at=NOW - timedelta(days=1), nonce="n",
                               quantity=1, created_at=NOW, updated_at=NOW))  # fmt: skip
        # Not sent yet: no outcome to show.
        assert plans[-1].id is not None
        session.add(Prompt(plan_id=plans[-1].id, customer_id=plans[-1].customer_id,
                           status=PromptStatus.SCHEDULED, due_at=NOW, nonce="n", quantity=1,
                           created_at=NOW, updated_at=NOW))  # fmt: skip
        session.commit()
        rates = queries.answer_rates(session, NOW, 7)
    assert rates.sent == len(statuses) == 14
    assert (rates.confirmed, rates.skipped, rates.snoozed, rates.stopped, rates.expired,
            rates.cancelled, rates.awaiting) == tuple(outcomes.values())  # fmt: skip
    page = operator.get("/admin/").text
    assert '<p class="big">14 sent</p>' in page
    for label, n in (("Confirmed", 2), ("Skipped", 1), ("Snoozed", 3), ("Stopped", 1),
                     ("Expired unanswered", 1), ("Cancelled after sending", 2),
                     ("Awaiting an answer", 4)):  # fmt: skip
        assert f'<th scope="row">{label}</th><td>{n}</td><td>{100 * n / 14:.0f} %</td>' in page


def test_the_dashboard_shows_answered_plans_waiting_for_their_rescore(shop, operator):
    assert "waiting for their re-score: 0" in operator.get("/admin/").text
    with shop.app_context():
        session = get_session()
        for plan in session.query(Plan).limit(3):
            assert plan.id is not None
            forecasting.request_rescore(session, plan.id, NOW)
        session.commit()
    assert "waiting for their re-score: 3" in operator.get("/admin/").text


def test_the_dashboard_counts_prompts_whose_email_failed_to_render(shop, operator):
    assert "failed to render" not in operator.get("/admin/").text
    with shop.app_context():
        session = get_session()
        for plan in session.query(Plan):
            plan.explanation_data = {**(plan.explanation_data or {}), "runout_on": "soon"}
        session.commit()
    failed = dispatch(shop, NOW).failed
    assert failed > 0
    page = operator.get("/admin/")
    assert (
        f"Prompts whose email failed to render (retried; the scheduler's log says why): {failed}"
        in page.text
    )


def test_a_synced_reorder_is_checked_against_its_forecast_on_the_dashboard(
    shop, operator, client, auth
):
    with shop.app_context():
        session = get_session()
        plan = session.query(Plan).filter(col(Plan.median_on).is_not(None)).first()
        assert plan is not None and plan.median_on and plan.q10_on and plan.q90_on
        customer = session.get_one(Customer, plan.customer_id).external_id
        product = session.get_one(Product, plan.product_id).external_id
    assert "No purchases since forecasts were first stored." in operator.get("/admin/").text
    stamp = f"{plan.median_on.isoformat()}T12:00:00+09:00"  # bought exactly on the median
    body = order_body(customer_external_id=customer, ordered_at=stamp, updated_at=stamp,
                      lines=[{"product_external_id": product, "quantity": 1}])  # fmt: skip
    assert client.put("/api/v1/orders/o-new", json=body, headers=auth).status_code == 201
    with shop.app_context():
        [outcome] = get_session().query(ForecastOutcome).all()
        assert (outcome.predicted_on, outcome.actual_on) == (plan.median_on, plan.median_on)
        assert (outcome.low_on, outcome.high_on) == (plan.q10_on, plan.q90_on)
    page = operator.get("/admin/")
    assert re.search(r"Purchases checked</th><td>1<", page.text)
    assert re.search(r"Median error</th><td>0 days", page.text)
    assert re.search(r"Inside the 80 % interval</th><td>100 %", page.text)
    assert "First to second purchase" in page.text and product in page.text


def test_prompts_due_count_the_rest_and_leave_out_plans_already_asked(shop):
    with shop.app_context():
        session = get_session()
        plans = session.query(Plan).filter(col(Plan.prompt_on).is_not(None)).all()
        before = queries.prompts_per_day(session, TODAY)
        rested, asked = plans[0], plans[1]
        assert rested.prompt_on and asked.prompt_on and asked.id
        rest = max(TODAY, rested.prompt_on) + timedelta(days=5)
        rested.prompt_not_before = rest
        session.add(Prompt(plan_id=asked.id, customer_id=asked.customer_id,
                           status=PromptStatus.SENT, due_at=NOW, nonce="n", quantity=1,
                           created_at=NOW, updated_at=NOW))  # fmt: skip
        session.commit()
        after = queries.prompts_per_day(session, TODAY)
        expected = list(before)
        expected[max((rested.prompt_on - TODAY).days, 0)] -= 1
        expected[max((asked.prompt_on - TODAY).days, 0)] -= 1
        expected[(rest - TODAY).days] += 1
        assert after == expected


def test_a_longer_delivery_prompts_earlier_rather_than_not_at_all(shop, operator):
    # A gate asking for a purchase within a week of the prompt day judged the earlier prompt
    # of a longer delivery less useful, and dropped it.
    with shop.app_context():
        products = get_session().query(Product).order_by(col(Product.id)).all()
    for product in products:
        longer = {"lead_time_days": product.lead_time_days + 4, "min_interval_days": 1}
        preview = _post(operator, product, "preview", **longer)
        assert preview.status_code == 200
        assert "would lose theirs" not in preview.text, product.external_id
        assert "later, " in preview.text and " 0 later" in preview.text, product.external_id
