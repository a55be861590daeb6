"""The pages behind prompt links: GET shows, POST acts, once."""

import re
import time
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, text

from app import db
from app.config import current_settings
from app.db import get_engine, get_session
from app.links import views
from app.models import (
    AuditLog,
    Outbox,
    OutboxStatus,
    Plan,
    PromptStatus,
    Reorder,
    ReorderStatus,
)
from app.services import answers, reorders
from app.services.prompts import expire_prompts
from tests.conftest import BASE_URL
from tests.factories import NOW, make_plan, order_body
from tests.scheduler.helpers import deliver, dispatch, mailbox, prompt_rows, text_part


def _reorders(app):
    with app.app_context():
        return get_session().query(Reorder).all()


def test_get_shows_the_question_and_changes_nothing(client, app, links, at_now):
    page = client.get(links["p"])
    assert page.status_code == 200
    assert "はい、注文します" in page.text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert prompt_rows(app)[0].status is PromptStatus.SENT
    assert _reorders(app) == []


def test_confirm_creates_one_reorder_and_repeating_it_shows_the_same_result(
    client, app, links, at_now
):
    first = client.post(links["p"], data={"action": "confirm", "quantity": "3"})
    assert first.status_code == 200
    assert "ご注文を承りました：3個お届けします。" in first.text
    again = client.post(links["p"], data={"action": "confirm", "quantity": "5"})
    assert "ご注文を承りました：3個お届けします。" in again.text
    [reorder] = _reorders(app)
    assert (reorder.quantity, reorder.status) == (3, ReorderStatus.PENDING)
    assert prompt_rows(app)[0].status is PromptStatus.CONFIRMED


def test_a_confirm_is_stored_with_its_time_its_reorder_and_an_audit_entry(
    client, app, links, at_now
):
    """The answer's writes go straight to the driver: the stored values must read back as the
    ORM writes them (aware UTC times, the customer's day, enums, JSON)."""
    client.post(links["p"], data={"action": "confirm", "quantity": "4"})
    now = at_now["now"]
    [prompt] = prompt_rows(app)
    assert (prompt.status, prompt.answered_at, prompt.answered_quantity) == (
        PromptStatus.CONFIRMED, now, 4)  # fmt: skip
    assert prompt.answered_on == now.astimezone(ZoneInfo("Asia/Tokyo")).date()
    [reorder] = _reorders(app)
    assert (reorder.prompt_id, reorder.quantity, reorder.confirmed_at) == (prompt.id, 4, now)
    with app.app_context():
        undo = timedelta(minutes=current_settings().undo_minutes)
        plan = get_session().query(Plan).one()
        [entry] = get_session().query(AuditLog).filter_by(action="prompt.confirm").all()
    assert reorder.handoff_at == now + undo
    assert (entry.at, entry.entity_id) == (now, str(plan.id))
    assert entry.actor_type.value == "customer"
    rest_until = str(plan.prompt_not_before)
    assert entry.after == {"status": "active", "prompt_id": prompt.id, "quantity": 4,
                           "snooze_days": None, "prompt_not_before": rest_until}  # fmt: skip


def test_a_different_answer_after_confirming_keeps_the_confirm(client, app, links, at_now):
    client.post(links["p"], data={"action": "confirm"})
    page = client.post(links["p"], data={"action": "skip"})
    assert "ご注文を承りました" in page.text
    assert prompt_rows(app)[0].status is PromptStatus.CONFIRMED


def test_an_answer_given_while_the_page_was_reading_wins_and_is_shown(
    client, app, links, at_now, monkeypatch
):
    """Two clicks at once: the prompt is answered (skip) after this request read it and
    before it writes (confirm). The guarded write loses; the page shows the skip."""
    real_end_reading = db.end_reading

    def answered_meanwhile(session):
        with app.app_context():
            other = get_session()
            [prompt] = prompt_rows(app)
            view = answers.find_prompt(other, prompt.id or 0)
            assert view is not None
            answers.answer(other, current_settings(), view, answers.Action.SKIP, NOW)
            other.commit()
        real_end_reading(session)

    monkeypatch.setattr(views, "end_reading", answered_meanwhile)
    page = client.post(links["p"], data={"action": "confirm", "quantity": "3"})
    assert page.status_code == 200
    assert "今回はスキップしました" in page.text
    assert prompt_rows(app)[0].status is PromptStatus.SKIPPED
    assert _reorders(app) == []


def test_a_forecast_written_while_the_page_was_reading_is_kept(
    client, app, links, at_now, monkeypatch
):
    """An order sync re-scores the plan after this request read it: the answer writes only
    what it decides (the rest), never the forecast it read."""
    real_end_reading = db.end_reading
    rescored_to = NOW.date() + timedelta(days=40)

    def rescored_meanwhile(session):
        with app.app_context():
            other = get_session()
            other.query(Plan).update({"prompt_on": rescored_to, "median_on": rescored_to})
            other.commit()
        real_end_reading(session)

    monkeypatch.setattr(views, "end_reading", rescored_meanwhile)
    assert client.post(links["p"], data={"action": "skip"}).status_code == 200
    with app.app_context():
        plan = get_session().query(Plan).one()
        assert (plan.prompt_on, plan.median_on) == (rescored_to, rescored_to)
        assert plan.prompt_not_before == NOW.date() + timedelta(days=7)


def test_an_undo_racing_an_ops_cancel_leaves_the_cancelled_reorder_alone(
    client, app, links, at_now, monkeypatch
):
    client.post(links["p"], data={"action": "confirm"})
    [reorder] = _reorders(app)
    real_end_reading = db.end_reading

    def cancelled_meanwhile(session):
        with app.app_context():
            other = get_session()
            reorders.cancel(other, current_settings(), reorder.id or 0, "ops@example.jp", NOW)
            other.commit()
        real_end_reading(session)

    monkeypatch.setattr(views, "end_reading", cancelled_meanwhile)
    page = client.post(links["p"], data={"action": "undo"})
    assert page.status_code == 200
    [still] = _reorders(app)
    assert still.status is ReorderStatus.CANCELLED
    assert prompt_rows(app)[0].status is PromptStatus.CONFIRMED


def test_confirm_can_be_undone_inside_the_window_only(client, app, links, at_now):
    client.post(links["p"], data={"action": "confirm"})
    page = client.post(links["p"], data={"action": "undo"})
    assert "はい、注文します" in page.text  # asked again
    assert _reorders(app) == []
    client.post(links["p"], data={"action": "confirm"})
    at_now["now"] += timedelta(minutes=6)
    page = client.post(links["p"], data={"action": "undo"})
    assert "ご注文を承りました" in page.text
    assert len(_reorders(app)) == 1


def test_an_undo_after_the_window_says_it_is_too_late(client, app, links, at_now):
    client.post(links["p"], data={"action": "confirm"})
    at_now["now"] += timedelta(minutes=6)
    page = client.post(links["p"], data={"action": "undo"})
    assert page.status_code == 200
    assert "ご注文はすでにショップへお渡ししたため、取り消しできません。" in page.text
    assert "ご注文を承りました" in page.text
    assert 'value="undo"' not in page.text
    [reorder] = _reorders(app)
    assert reorder.status is ReorderStatus.PENDING
    # Only the refused undo says so: the same page opened again does not.
    assert "取り消しできません" not in client.get(links["p"]).text


def test_a_reorder_cancelled_by_the_shop_says_nothing_will_be_sent(
    client, app, runner, links, at_now
):
    client.post(links["p"], data={"action": "confirm", "quantity": "2"})
    [reorder] = _reorders(app)
    result = runner.invoke(args=["reorders", "cancel", str(reorder.id), "--by", "ops@example.jp"])
    assert result.exit_code == 0, result.output
    page = client.get(links["p"]).text
    assert "このご注文はショップにより取り消されました。商品はお届けしません。" in page
    assert "ご注文を承りました" not in page
    assert 'value="undo"' not in page  # still inside the undo window, but nothing to undo
    # An undo sent anyway (from a page loaded before the cancel) changes nothing.
    undone = client.post(links["p"], data={"action": "undo"}).text
    assert "ショップにより取り消されました" in undone and "取り消しできません" not in undone
    assert _reorders(app)[0].status is ReorderStatus.CANCELLED


def test_a_reorder_fulfilled_by_a_synced_order_says_the_shop_placed_it(
    client, app, auth, links, at_now
):
    client.post(links["p"], data={"action": "confirm", "quantity": "2"})
    [reorder] = _reorders(app)
    stamp = "2026-11-20T12:00:00+09:00"
    body = order_body(ordered_at=stamp, updated_at=stamp, reorder_id=reorder.id,
                      lines=[{"product_external_id": "p-1", "quantity": 2}])  # fmt: skip
    assert client.put("/api/v1/orders/o-re-1", json=body, headers=auth).status_code == 201
    assert _reorders(app)[0].status is ReorderStatus.FULFILLED
    at_now["now"] += timedelta(minutes=10)
    page = client.get(links["p"]).text
    assert "ショップで2個のご注文を手配しました。" in page
    assert "お届けします" not in page


def test_skip_moves_the_next_prompt_a_week_out(client, app, links, at_now):
    client.post(links["p"], data={"action": "skip"})
    assert prompt_rows(app)[0].status is PromptStatus.SKIPPED
    with app.app_context():
        plan = get_session().query(Plan).one()
        assert plan.prompt_not_before == (NOW + timedelta(days=7)).date()


@pytest.mark.parametrize("days", [3, 7, 14])
def test_snooze_moves_the_next_prompt_by_the_chosen_days(client, app, links, at_now, days):
    page = client.post(links["p"], data={"action": "snooze", "snooze_days": str(days)})
    assert f"{days}日後に改めてお知らせします" in page.text
    with app.app_context():
        plan = get_session().query(Plan).one()
        assert plan.prompt_not_before == (NOW + timedelta(days=days)).date()


def test_snooze_of_an_unoffered_length_is_refused_and_changes_nothing(client, app, links, at_now):
    page = client.post(links["p"], data={"action": "snooze", "snooze_days": "100"})
    assert page.status_code == 400
    assert "次にお知らせする時期をお選びください。" in page.text
    assert prompt_rows(app)[0].status is PromptStatus.SENT


def test_snooze_without_days_asks_for_them(client, app, links, at_now):
    page = client.post(links["p"], data={"action": "snooze"})
    assert page.status_code == 400
    assert "次にお知らせする時期をお選びください。" in page.text
    assert prompt_rows(app)[0].status is PromptStatus.SENT


def test_an_unknown_action_asks_for_a_button(client, app, links, at_now):
    page = client.post(links["p"], data={"action": "buy-ten"})
    assert page.status_code == 400
    assert "下のボタンからお選びください。" in page.text
    assert prompt_rows(app)[0].status is PromptStatus.SENT


def test_quantity_out_of_range_is_refused_with_the_reason(client, app, links, at_now):
    page = client.post(links["p"], data={"action": "confirm", "quantity": "0"})
    assert page.status_code == 400
    assert "数量は1〜999の範囲で入力してください。" in page.text
    assert _reorders(app) == []


@pytest.mark.parametrize("typed", ["0", "1000", "two"])
def test_a_refused_quantity_stays_in_the_box_to_correct(client, app, links, at_now, typed):
    page = client.post(links["p"], data={"action": "confirm", "quantity": typed})
    assert page.status_code == 400
    [box] = re.findall(r'<input id="quantity"[^>]*>', page.text)
    assert f'value="{typed}"' in box


def test_stop_stops_the_plan(client, app, links, at_now):
    client.post(links["p"], data={"action": "stop"})
    with app.app_context():
        plan = get_session().query(Plan).one()
        assert (plan.status.value, plan.prompt_on) == ("stopped", None)


def test_a_stop_since_undone_on_the_plans_page_says_reminders_are_back_on(
    client, app, links, at_now
):
    client.post(links["p"], data={"action": "stop"})
    assert "この商品のお知らせを停止しました。" in client.get(links["p"]).text
    with app.app_context():
        plan_id = get_session().query(Plan).one().id
    resumed = client.post(links["m"], data={"action": "resume", "plan_id": plan_id})
    assert resumed.status_code == 200
    page = client.get(links["p"]).text
    assert (
        "このメールからこの商品のお知らせを停止されました。お知らせを再開されたので、"
        "時期が来たら改めてお送りします。"
    ) in page
    assert "この商品のお知らせを停止しました。" not in page


def test_a_pause_since_resumed_on_the_plans_page_says_reminders_are_back_on(
    client, app, links, at_now
):
    with app.app_context():
        plan_id = get_session().query(Plan).one().id
    client.post(links["m"], data={"action": "pause", "plan_id": plan_id})
    paused = "この商品のお知らせが一時停止または停止されているため"
    assert paused in client.get(links["p"]).text
    resumed = client.post(links["m"], data={"action": "resume", "plan_id": plan_id})
    assert resumed.status_code == 200
    page = client.get(links["p"]).text
    assert (
        "このお知らせは、この商品のお知らせが一時停止または停止されたときに受付を終了しました。"
        "お知らせを再開されたので、時期が来たら改めてお送りします。"
    ) in page
    assert paused not in page


def test_tampered_link_gets_a_friendly_page(client, links, at_now):
    page = client.get(links["p"][:-3] + "xyz")
    assert page.status_code == 404
    assert "このリンクは使えません" in page.text


def test_a_manage_link_cannot_act_on_a_prompt(client, app, links, at_now):
    token = links["m"].removeprefix("/l/m/")
    page = client.post("/l/p/" + token, data={"action": "confirm"})
    assert page.status_code == 404
    assert _reorders(app) == []


def test_expired_link_offers_a_fresh_one_by_email(client, app, links, at_now):
    at_now["now"] = NOW + timedelta(days=31)
    page = client.get(links["p"])
    assert page.status_code == 410
    assert "新しいリンクをメールで受け取る" in page.text
    token = links["p"].removeprefix("/l/p/")
    sent = client.post("/l/fresh", data={"token": token, "purpose": "prompt"})
    assert "新しいリンクをお送りしました" in sent.text
    client.post("/l/fresh", data={"token": token, "purpose": "prompt"})  # a second click
    with app.app_context():
        fresh = get_session().query(Outbox).filter_by(event_type="fresh_link").all()
        assert [o.status for o in fresh] == [OutboxStatus.PENDING]
    deliver(app, NOW + timedelta(days=31))
    # The email says what the linked page offers (no ordering there).
    assert "一時停止・再開・停止や、お届けの間隔の指定ができます" in text_part(mailbox(app)[-1])


def test_link_of_a_cancelled_prompt_says_it_is_closed(client, app, links, at_now):
    with app.app_context():
        from app.services.prompts import cancel_open

        cancel_open(get_session(), [prompt_rows(app)[0].plan_id], "test", NOW)
        get_session().commit()
    page = client.post(links["p"], data={"action": "confirm"})
    assert "受付を終了しました" in page.text
    assert _reorders(app) == []


def test_link_of_a_prompt_made_moot_by_an_order_says_so(client, app, auth, links, at_now):
    stamp = "2026-11-20T12:00:00+09:00"
    body = order_body(customer_external_id="c-1", ordered_at=stamp, updated_at=stamp)
    assert client.put("/api/v1/orders/o-9", json=body, headers=auth).status_code == 201
    assert prompt_rows(app)[0].cancel_reason == "ordered"
    page = client.get(links["p"])
    assert "この商品はすでにご注文済みのため、このお知らせの受付を終了しました。" in page.text


def test_link_of_an_expired_prompt_says_so(client, app, links, at_now):
    with app.app_context():
        expire_prompts(get_session(), "Asia/Tokyo", NOW + timedelta(days=8))
        get_session().commit()
    page = client.post(links["p"], data={"action": "confirm"})
    assert "回答期限を過ぎたため受付を終了しました" in page.text
    assert _reorders(app) == []


def test_pages_load_while_a_long_write_holds_the_database(client, app, links, at_now):
    """A refit or a big sync holds the write lock for a while (on SQLite, the whole database);
    customers opening their links meanwhile still get their page at once."""
    with app.app_context():
        writer = create_engine(get_engine().url.render_as_string(hide_password=False))
    with writer.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA busy_timeout=0")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.execute(text("UPDATE customer SET name = 'held' WHERE id = 1"))
        started = time.monotonic()
        pages = [client.get(links[kind]) for kind in "pmu"]
        waited = time.monotonic() - started
        conn.rollback()
    writer.dispose()
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert waited < 5, f"the pages waited {waited:.1f} s for the writer"


def test_writes_after_a_read_only_page_are_still_one_transaction(client, app, links):
    """Read-only pages run without a transaction on PostgreSQL (no BEGIN, no ROLLBACK); the
    pooled connection they used must be transactional again for the next writer."""
    assert client.get(links["p"]).status_code == 200
    with app.app_context():
        session = get_session()
        assert not getattr(session.connection().connection.dbapi_connection, "autocommit", False)
        session.execute(text("UPDATE customer SET name = 'half done' WHERE id = 1"))
        session.rollback()
        assert session.scalar(text("SELECT name FROM customer WHERE id = 1")) != "half done"


def test_a_fault_on_our_side_shows_a_friendly_page_and_changes_nothing(
    client, app, links, at_now, monkeypatch
):
    def broken(*args, **kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(answers, "answer", broken)
    monkeypatch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
    page = client.post(links["p"], data={"action": "confirm"})
    assert (page.status_code, page.mimetype) == (500, "text/html")
    assert "申し訳ありません。エラーが発生しました" in page.text
    assert "database on fire" not in page.text
    assert prompt_rows(app)[0].status is PromptStatus.SENT


def test_a_case_buyers_usual_quantity_can_be_confirmed(client, app, at_now):
    with app.app_context():
        plan = make_plan(get_session())
        plan.last_quantity = 150
        get_session().commit()
    dispatch(app)
    deliver(app)
    [message] = mailbox(app)
    assert "× 150" in text_part(message)
    path = re.findall(re.escape(BASE_URL) + r"(/l/p/\S+)", text_part(message))[0]
    page = client.get(path)
    assert 'max="999" value="150"' in page.text
    assert (
        "ご注文を承りました：150個お届けします。"
        in client.post(path, data={"action": "confirm", "quantity": "150"}).text
    )
