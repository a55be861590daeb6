"""The plans page and the one-click unsubscribe behind every prompt email."""

import re
from datetime import timedelta

from click.testing import Result

from app.config import current_settings
from app.db import get_session
from app.links import URL_PREFIX
from app.links.tokens import Purpose, make_token
from app.models import AuditLog, Customer, Locale, Plan, PlanStatus, PromptStatus
from app.services import forecasting
from tests.conftest import BASE_URL
from tests.factories import NOW, customer_body, make_plan, order_body
from tests.scheduler.helpers import deliver, dispatch, mailbox, prompt_rows, text_part


def _plan(app) -> Plan:
    with app.app_context():
        return get_session().query(Plan).one()


def _customer(app) -> Customer:
    with app.app_context():
        return get_session().query(Customer).one()


def test_manage_page_lists_the_plans_and_get_changes_nothing(client, app, links, at_now):
    page = client.get(links["m"])
    assert page.status_code == 200
    assert "お知らせの設定" in page.text
    assert "洗剤 p-1" in page.text
    assert "有効" in page.text
    assert _plan(app).status is PlanStatus.ACTIVE


def _order_monthly(client, auth) -> None:
    """The plan's three purchases, synced, and a model fitted on them (re-scores use it)."""
    for n, day in enumerate(["2026-08-20", "2026-09-20", "2026-10-20"]):
        stamp = f"{day}T10:00:00+09:00"
        body = order_body(customer_external_id="c-1", ordered_at=stamp, updated_at=stamp)
        assert client.put(f"/api/v1/orders/o-{n}", json=body, headers=auth).status_code == 201
    with client.application.app_context():
        forecasting.refit(get_session(), NOW.date(), NOW)
        get_session().commit()


def test_pausing_cancels_the_open_prompt_and_resuming_schedules_again(
    client, app, auth, links, at_now
):
    _order_monthly(client, auth)
    plan_id = _plan(app).id
    assert 'aria-label="洗剤 p-1のお知らせを一時停止"' in client.get(links["m"]).text
    paused = client.post(links["m"], data={"action": "pause", "plan_id": plan_id})
    assert paused.status_code == 200
    assert "変更を保存しました。" in paused.text
    assert "一時停止中" in paused.text
    assert _plan(app).status is PlanStatus.PAUSED
    assert prompt_rows(app)[0].status is PromptStatus.CANCELLED
    # The cancelled prompt's own link now says so instead of taking an answer.
    closed = client.post(links["p"], data={"action": "confirm"}).text
    assert "この商品のお知らせが一時停止または停止されているため" in closed
    resumed = client.post(links["m"], data={"action": "resume", "plan_id": plan_id})
    assert "有効" in resumed.text
    plan = _plan(app)
    assert plan.status is PlanStatus.ACTIVE
    assert plan.prompt_on is not None, (plan.p_active, plan.explanation)


def test_a_fixed_interval_is_kept_and_out_of_range_is_refused(client, app, links, at_now):
    plan_id = _plan(app).id
    page = client.post(links["m"], data={"action": "interval", "plan_id": plan_id,
                                         "interval_days": "45"})  # fmt: skip
    assert page.status_code == 200
    assert _plan(app).preferred_interval_days == 45
    refused = client.post(links["m"], data={"action": "interval", "plan_id": plan_id,
                                            "interval_days": "400"})  # fmt: skip
    assert refused.status_code == 400
    assert "洗剤 p-1の間隔は7〜180日の範囲でお選びください" in refused.text
    assert _plan(app).preferred_interval_days == 45
    cleared = client.post(links["m"], data={"action": "interval", "plan_id": plan_id,
                                            "interval_days": ""})  # fmt: skip
    assert cleared.status_code == 200
    assert _plan(app).preferred_interval_days is None


def test_an_interval_below_the_products_minimum_is_refused(client, app, links, at_now):
    # The product's min interval (7 days, ops settings) bounds the customer's choice too.
    page = client.get(links["m"])
    assert 'min="7" max="180"' in page.text
    assert "（7〜180日。空欄：ご利用ペースから自動で判断）" in page.text
    refused = client.post(links["m"], data={"action": "interval", "plan_id": _plan(app).id,
                                            "interval_days": "3"})  # fmt: skip
    assert refused.status_code == 400
    assert "洗剤 p-1の間隔は7〜180日の範囲でお選びください" in refused.text
    assert _plan(app).preferred_interval_days is None


def test_a_refused_interval_stays_in_the_box_to_correct(client, app, links, at_now):
    plan_id = _plan(app).id
    refused = client.post(links["m"], data={"action": "interval", "plan_id": plan_id,
                                            "interval_days": "500"})  # fmt: skip
    assert refused.status_code == 400
    [box] = re.findall(rf'<input id="interval-{plan_id}"[^>]*>', refused.text)
    assert 'value="500"' in box
    assert _plan(app).preferred_interval_days is None


def test_a_new_interval_right_after_a_confirm_does_not_bring_a_prompt_tomorrow(
    client, app, auth, links, at_now
):
    _order_monthly(client, auth)
    assert "ご注文を承りました" in client.post(links["p"], data={"action": "confirm"}).text
    rest_until = _plan(app).prompt_not_before
    assert rest_until == NOW.date() + timedelta(days=7)  # the product's min interval
    changed = client.post(links["m"], data={"action": "interval", "plan_id": _plan(app).id,
                                            "interval_days": "7"})  # fmt: skip
    assert changed.status_code == 200
    plan = _plan(app)
    assert (plan.preferred_interval_days, plan.prompt_not_before) == (7, rest_until)
    for day in range(1, 7):
        assert dispatch(app, NOW + timedelta(days=day)).emails == 0
    # Pausing and resuming keeps the rest as well.
    plan_id = plan.id
    client.post(links["m"], data={"action": "pause", "plan_id": plan_id})
    client.post(links["m"], data={"action": "resume", "plan_id": plan_id})
    assert _plan(app).prompt_not_before == rest_until
    assert dispatch(app, NOW + timedelta(days=6)).emails == 0
    assert dispatch(app, NOW + timedelta(days=7)).emails == 1


def test_a_change_that_changes_nothing_leaves_the_open_prompt_alone(client, app, links, at_now):
    plan_id = _plan(app).id
    for form in ({"action": "resume"}, {"action": "interval", "interval_days": ""}):
        page = client.post(links["m"], data=form | {"plan_id": plan_id})
        assert page.status_code == 200
    assert prompt_rows(app)[0].status is PromptStatus.SENT
    with app.app_context():
        assert get_session().query(AuditLog).filter_by(action="plan.change").count() == 0
    # A new interval re-times the plan, and the email the customer has stays answerable.
    client.post(links["m"], data={"action": "interval", "interval_days": "30", "plan_id": plan_id})
    assert prompt_rows(app)[0].status is PromptStatus.SENT
    assert "ご注文を承りました" in client.post(links["p"], data={"action": "confirm"}).text


def test_a_change_that_cannot_be_made_says_why(client, app, links, at_now):
    bad_id = client.post(links["m"], data={"action": "pause", "plan_id": "abc"})
    assert bad_id.status_code == 400
    assert "この商品はお知らせの対象にありません" in bad_id.text
    no_such = client.post(links["m"], data={"action": "pause", "plan_id": "999"})
    assert no_such.status_code == 404
    assert "この商品はお知らせの対象にありません" in no_such.text
    bad_action = client.post(links["m"], data={"action": "explode", "plan_id": _plan(app).id})
    assert bad_action.status_code == 400
    assert "ページを再読み込みして、もう一度お試しください" in bad_action.text
    assert _plan(app).status is PlanStatus.ACTIVE


def test_after_unsubscribing_no_next_reminder_is_shown_and_old_links_say_why(
    client, app, links, at_now
):
    client.post(links["u"], data={"List-Unsubscribe": "One-Click"})
    page = client.get(links["m"])
    assert "すべてのお知らせを停止しました。" in page.text
    assert "11月20日" not in page.text  # the plan's prompt day is not offered as a next reminder
    old = client.get(links["p"])
    assert "すべてのお知らせを停止されたため" in old.text
    assert "新しいお知らせに置き換えられた" not in old.text


def test_another_customers_plan_cannot_be_changed(client, app, links, at_now):
    with app.app_context():
        other = make_plan(get_session(), customer="c-2")
        get_session().commit()
        other_id = other.id
    page = client.post(links["m"], data={"action": "pause", "plan_id": other_id})
    assert page.status_code == 404
    with app.app_context():
        assert get_session().get(Plan, other_id).status is PlanStatus.ACTIVE  # type: ignore[union-attr]


def test_a_plan_id_beyond_any_row_is_refused_not_a_crash(client, links, at_now):
    page = client.post(links["m"], data={"action": "pause", "plan_id": str(2**70)})
    assert page.status_code == 400


def test_one_click_unsubscribe_post_stops_every_reminder(client, app, links, at_now):
    # RFC 8058: the mail client POSTs this body to the List-Unsubscribe URL, with no page view.
    page = client.post(links["u"], data={"List-Unsubscribe": "One-Click"})
    assert page.status_code == 200
    assert "すべてのお知らせを停止しました。" in page.text
    assert _customer(app).unsubscribed_at is not None
    assert prompt_rows(app)[0].status is PromptStatus.CANCELLED
    assert dispatch(app, NOW + timedelta(days=60)).emails == 0


def test_unsubscribe_get_only_asks(client, app, links, at_now):
    page = client.get(links["u"])
    assert page.status_code == 200
    assert "お知らせメールが届かなくなります。" in page.text
    assert _customer(app).unsubscribed_at is None


def test_resubscribing_from_the_plans_page(client, app, links, at_now):
    client.post(links["u"])
    page = client.post(links["m"], data={"action": "subscribe"})
    assert page.status_code == 200
    assert _customer(app).unsubscribed_at is None


def test_revoked_links_stop_working_and_offer_a_fresh_one(runner, app, links, at_now):
    result: Result = runner.invoke(args=["customers", "revoke-links", "c-1", "--by", "ops"])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    page = client.get(links["m"])
    assert page.status_code == 410
    assert "このリンクは新しいものに置き換えられました" in page.text
    assert "新しいリンクをメールで受け取る" in page.text
    assert client.post(links["u"]).status_code == 410
    assert _customer(app).unsubscribed_at is None
    # The open prompt is cancelled and its link is replaced too: it takes no answer, shows
    # nothing of the plan, and offers a fresh link; the plan is prompted again.
    closed = client.post(links["p"], data={"action": "confirm"})
    assert closed.status_code == 410
    assert "このリンクは新しいものに置き換えられました" in closed.text
    assert "/l/m/" not in closed.text
    assert prompt_rows(app)[0].cancel_reason == "links revoked"
    assert dispatch(app, NOW + timedelta(hours=1)).emails == 1
    # The offer sends a working link to the current address (not "your link still works").
    for purpose, path in (("manage", links["m"]), ("prompt", links["p"])):
        token = path.split("/")[-1]
        sent = client.post("/l/fresh", data={"token": token, "purpose": purpose})
        assert "新しいリンクをお送りしました" in sent.text, purpose


def test_a_revoked_answered_prompt_link_hands_out_no_plans_page_link(runner, app, links, at_now):
    # A forwarded email of a confirmed prompt: its page offered an undo and the plans page.
    client = app.test_client()
    assert "/l/m/" in client.post(links["p"], data={"action": "confirm"}).text
    assert runner.invoke(args=["customers", "revoke-links", "c-1", "--by", "ops"]).exit_code == 0
    page = client.get(links["p"])
    assert page.status_code == 410 and "/l/m/" not in page.text
    assert client.post(links["p"], data={"action": "undo"}).status_code == 410
    assert prompt_rows(app)[0].status is PromptStatus.CONFIRMED


def test_an_email_change_from_the_backend_revokes_old_links(client, app, auth, links, at_now):
    response = client.put("/api/v1/customers/c-1", json=customer_body(email="new@example.jp"),
                          headers=auth)  # fmt: skip
    assert response.status_code == 200
    assert client.get(links["m"]).status_code == 410
    assert client.get(links["p"]).status_code == 410
    dispatch(app, NOW + timedelta(hours=1))
    deliver(app, NOW + timedelta(hours=1))
    assert mailbox(app)[-1]["To"] == "new@example.jp"


def test_an_old_unsubscribe_link_still_unsubscribes(client, app, links, at_now):
    # One-click unsubscribe (RFC 8058) from a months-old email must work, whatever the age.
    at_now["now"] = NOW + timedelta(days=400)
    page = client.post(links["u"], data={"List-Unsubscribe": "One-Click"})
    assert page.status_code == 200
    assert _customer(app).unsubscribed_at is not None
    assert client.get(links["m"]).status_code == 410  # the plans page link did expire


def test_a_superseded_link_page_is_in_the_customers_language(client, app, runner, at_now):
    with app.app_context():
        make_plan(get_session(), customer="c-en", locale=Locale.EN)
        get_session().commit()
    dispatch(app)
    deliver(app)
    urls = re.findall(re.escape(BASE_URL) + r"(/l/m/\S+)", text_part(mailbox(app)[0]))
    runner.invoke(args=["customers", "revoke-links", "c-en", "--by", "ops"])
    page = client.get(urls[0])
    assert '<html lang="en">' in page.text
    assert "This link has been replaced" in page.text


def test_english_customer_gets_english_email_and_pages(client, app, at_now):
    with app.app_context():
        make_plan(get_session(), customer="c-en", locale=Locale.EN)
        get_session().commit()
    dispatch(app)
    deliver(app)
    [message] = mailbox(app)
    assert message["Content-Language"] == "en"
    assert message["Subject"] == "Running low on 洗剤 p-1?"
    urls = dict((u[3], u) for u in re.findall(re.escape(BASE_URL) + r"(/l/[pmu]/\S+)",
                                                 text_part(message)))  # fmt: skip
    page = client.get(urls["m"])
    assert "Your reminders" in page.text
    assert '<html lang="en">' in page.text
    assert "Yes, send it" in client.get(urls["p"]).text


def test_after_coming_back_an_old_prompt_link_says_why_it_closed(client, app, links, at_now):
    client.post(links["u"], data={"List-Unsubscribe": "One-Click"})
    client.post(links["m"], data={"action": "subscribe"})
    page = client.get(links["p"])
    assert "すべてのお知らせを停止されたときに受付を終了しました" in page.text


def test_a_broken_link_page_declares_the_language_it_shows(client, links):
    page = client.get(links["p"][:-3] + "xyz", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert page.status_code == 404
    assert '<html lang="en">' in page.text
    assert "This link does not work" in page.text


def test_a_sent_prompt_shows_as_awaiting_the_answer_not_as_a_past_day(client, app, links, at_now):
    at_now["now"] = NOW + timedelta(days=1)  # the day after the prompt went out
    page = client.get(links["m"]).text
    assert "お送りしました。ご回答をお待ちしています" in page
    assert "2026年11月20日" not in page  # the prompt's day, now past
    client.post(links["p"], data={"action": "skip"})
    rest = _plan(app).prompt_not_before
    assert rest is not None and rest > (NOW + timedelta(days=1)).date()
    assert f"{rest.year}年{rest.month}月{rest.day}日" in client.get(links["m"]).text


def test_an_overdue_reminder_shows_the_customers_today(client, app, at_now):
    with app.app_context():
        make_plan(get_session(), prompt_on=NOW.date() - timedelta(days=3))
        get_session().commit()
    customer = _customer(app)
    assert customer.id is not None
    with app.app_context():
        token = make_token(current_settings().secret_key, Purpose.MANAGE, customer.id,
                           str(customer.link_version), NOW)  # fmt: skip
    page = client.get(f"{URL_PREFIX}/m/{token}").text
    assert "2026年11月20日" in page and "2026年11月17日" not in page
