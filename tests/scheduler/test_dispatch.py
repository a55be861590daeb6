"""Scheduling and dispatching prompts: send hours, grouping, weekly limits, orders in between."""

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlmodel import col

from app.config import current_settings
from app.db import get_session
from app.models import (
    ActorType,
    Customer,
    Locale,
    Outbox,
    OutboxKind,
    OutboxStatus,
    Plan,
    PromptStatus,
)
from app.scheduler import jobs
from app.services import dispatch as dispatching
from app.services import preferences, prompts
from tests.conftest import BASE_URL
from tests.factories import NOW, make_plan, order_body
from tests.scheduler.helpers import deliver, dispatch, mailbox, prompt_rows, schedule, text_part


def _plans(app, *specs):
    with app.app_context():
        session = get_session()
        for spec in specs:
            make_plan(session, **spec)
        session.commit()


def test_prompt_is_due_at_the_customers_send_hour_on_its_day(app):
    _plans(app, {"prompt_on": date(2026, 11, 20)})
    assert schedule(app, NOW - timedelta(hours=5)) == 1
    [prompt] = prompt_rows(app)
    assert prompt.status is PromptStatus.SCHEDULED
    assert prompt.due_at == datetime(2026, 11, 20, 1, 0, tzinfo=UTC)  # 10:00 in Tokyo


@pytest.mark.parametrize(
    ("answers", "answered_at", "send_hour"),
    [
        (3, datetime(2026, 11, 20, 10, 30, tzinfo=UTC), 19),  # 19:30 in Tokyo
        (3, datetime(2026, 11, 20, 14, 30, tzinfo=UTC), 20),  # 23:30: quiet, the nearest hour
        (2, datetime(2026, 11, 20, 10, 30, tzinfo=UTC), None),  # too few answers to tell
    ],
)
def test_the_send_hour_is_learned_from_when_the_customer_answers(
    app, client, monkeypatch, answers, answered_at, send_hour
):
    _plans(app, *({"product": f"p-{n}"} for n in range(answers)))
    dispatch(app)
    deliver(app)
    [message] = mailbox(app)
    paths = re.findall(re.escape(BASE_URL) + r"(/l/p/\S+)", text_part(message))
    assert len(paths) == answers
    monkeypatch.setattr("app.links.views.utcnow", lambda: answered_at)
    for path in paths:
        assert client.post(path, data={"action": "skip"}).status_code == 200
    monkeypatch.setattr("app.scheduler.jobs.utcnow", lambda: answered_at + timedelta(minutes=1))
    with app.app_context():
        assert jobs.rescore_answered_plans(jobs.Timing()) == answers
        assert get_session().scalar(select(col(Customer.send_hour))) == send_hour
    # The skipped plans rest a week; then their prompts go out at that hour (else at 10:00).
    assert schedule(app, datetime(2026, 11, 27, 0, 0, tzinfo=UTC)) == answers  # 09:00 there
    due = [p.due_at for p in prompt_rows(app) if p.status is PromptStatus.SCHEDULED]
    tokyo = ZoneInfo("Asia/Tokyo")
    assert {d.astimezone(tokyo) for d in due} == {
        datetime(2026, 11, 27, send_hour or 10, tzinfo=tokyo)
    }


def test_nothing_is_sent_before_the_due_time(app):
    _plans(app, {})
    assert dispatch(app, NOW - timedelta(minutes=1)).emails == 0
    assert dispatch(app, NOW).emails == 1


def test_a_prompt_whose_hour_passed_in_the_night_waits_for_the_quiet_hours_to_end(app):
    _plans(app, {"prompt_on": date(2026, 11, 19)})
    late = datetime(2026, 11, 19, 13, 30, tzinfo=UTC)  # 22:30 in Tokyo
    schedule(app, late)
    [prompt] = prompt_rows(app)
    assert prompt.due_at == datetime(2026, 11, 19, 23, 0, tzinfo=UTC)  # 08:00 in Tokyo


def test_due_prompt_becomes_one_email_in_the_customers_language(app):
    _plans(app, {"customer": "c-en", "locale": Locale.EN, "email": "pat@example.com"})
    assert dispatch(app).emails == 1
    assert deliver(app).delivered == 1
    [message] = mailbox(app)
    assert message["To"] == "pat@example.com"
    assert message["Subject"] == "Running low on 洗剤 p-1?"
    body = text_part(message)
    assert "3 purchases, about 2 units every 30 days" in body
    assert "https://kaidoki.example.test/l/p/" in body
    [prompt] = prompt_rows(app)
    assert prompt.status is PromptStatus.SENT
    assert prompt.expires_at == NOW + timedelta(days=7)


def test_products_due_together_go_out_in_one_email(app):
    _plans(
        app,
        {"product": "p-1"},
        {"product": "p-2", "prompt_on": date(2026, 11, 21)},
        {"product": "p-3", "prompt_on": date(2026, 12, 20)},
    )
    assert dispatch(app).emails == 1
    deliver(app)
    [message] = mailbox(app)
    assert message["Subject"] == "2点の商品がそろそろなくなる頃です"
    assert text_part(message).count("/l/p/") == 2
    statuses = {p.plan_id: p.status for p in prompt_rows(app)}
    assert list(statuses.values()) == [PromptStatus.SENT, PromptStatus.SENT]


def test_an_email_that_cannot_be_rendered_holds_up_no_other_customer(app, caplog):
    """Stored data the email cannot show (here a corrupt run-out day) fails that customer's
    email alone, logged; it is tried again an hour later, once the data is mended."""
    _plans(app, {"customer": "c-1"}, {"customer": "c-2"})
    with app.app_context():
        session = get_session()
        plan = session.scalars(select(Plan).order_by(col(Plan.id))).first()
        assert plan is not None
        plan.explanation_data = {**(plan.explanation_data or {}), "runout_on": "23 Nov"}
        session.commit()
    result = dispatch(app)
    assert (result.emails, result.failed) == (1, 1)
    assert "could not render the prompt email for customer" in caplog.text
    deliver(app)
    assert [m["To"] for m in mailbox(app)] == ["c-2@example.jp"]
    stuck = [p for p in prompt_rows(app) if p.status is not PromptStatus.SENT]
    assert [(p.status, p.due_at, p.claimed_by) for p in stuck] == [
        (PromptStatus.SCHEDULED, NOW + timedelta(hours=1), None)
    ]
    with app.app_context():
        session = get_session()
        plan = session.get(Plan, stuck[0].plan_id)
        assert plan is not None
        plan.explanation_data = {**(plan.explanation_data or {}), "runout_on": "2026-11-23"}
        session.commit()
    assert dispatch(app, NOW + timedelta(minutes=59)).emails == 0
    assert dispatch(app, NOW + timedelta(hours=1)).emails == 1
    deliver(app, NOW + timedelta(hours=1))
    assert [m["To"] for m in mailbox(app)] == ["c-2@example.jp", "c-1@example.jp"]


def test_an_email_that_keeps_failing_to_render_waits_longer_each_time(app, caplog):
    """1 h, 2 h, 4 h ... capped at a day: a lasting fault is logged about daily, and the prompt
    is never given up on (a systemic fault, say a bad deploy, must not cancel every prompt)."""
    _plans(app, {})
    with app.app_context():
        session = get_session()
        plan = session.scalars(select(Plan)).one()
        plan.explanation_data = {**(plan.explanation_data or {}), "runout_on": "soon"}
        session.commit()
    at, waits = NOW, []
    for _ in range(7):
        assert dispatch(app, at).failed == 1
        [prompt] = prompt_rows(app)
        waits.append(prompt.due_at - at)
        at = prompt.due_at
    hours = [w / timedelta(hours=1) for w in waits]
    # From 10:00 in Tokyo: 11:00, 13:00, 17:00; then 8 h would be 01:00, a quiet hour, so the
    # next try waits for the customer's send hour (10:00), as do the later ones.
    assert hours == [1, 2, 4, 17, 24, 24, 24]
    assert prompt.render_failures == 7
    assert prompt.status is PromptStatus.SCHEDULED
    assert "(prompts [1], attempt 7); trying again in 1 day" in caplog.text
    assert dispatch(app, at - timedelta(minutes=1)).failed == 0


def test_addresses_outside_ascii_get_their_email(app):
    """An internationalised domain is written in its ASCII form; a local part outside ASCII
    stays as it is (only an SMTPUTF8 server takes it; the mailbox does)."""
    _plans(app, {"customer": "c-1", "email": "hanako@例え.jp"},
           {"customer": "c-2", "email": "jösé@example.com"},
           {"customer": "c-3", "email": "hans@faß.de"})  # fmt: skip
    assert dispatch(app).emails == 3
    deliver(app)
    to = sorted(m["To"].addresses[0].addr_spec for m in mailbox(app))
    # IDNA 2008: faß.de is a domain of its own, not fass.de (as IDNA 2003 would have it).
    assert to == ["hanako@xn--r8jz45g.jp", "hans@xn--fa-hia.de", "jösé@example.com"]


def test_a_shop_host_outside_ascii_gives_ascii_message_ids(make_app, database_url, app):
    shop = make_app(database_url, KAIDOKI_BASE_URL="https://買い時.example.jp")
    _plans(shop, {"customer": "c-1"})
    assert dispatch(shop).emails == 1
    deliver(shop)
    [message] = mailbox(shop)
    assert message["Message-ID"].endswith("@xn--n8jt93n2dy.example.jp>")
    assert "https://買い時.example.jp/l/p/" in text_part(message)


def test_weekly_limit_postpones_further_prompts_until_the_week_has_passed(app):
    _plans(app, {"product": "p-1"})
    dispatch(app)
    _plans(app, {"product": "p-2", "prompt_on": date(2026, 11, 24)})
    _plans(app, {"product": "p-3", "prompt_on": date(2026, 11, 26)})
    day4 = NOW + timedelta(days=4)
    assert dispatch(app, day4).emails == 1  # the second email of the week
    day6 = NOW + timedelta(days=6)
    result = dispatch(app, day6)
    assert (result.emails, result.postponed) == (0, 1)
    postponed = prompt_rows(app)[-1]
    assert postponed.status is PromptStatus.SCHEDULED
    assert postponed.due_at == NOW + timedelta(days=7)
    assert dispatch(app, NOW + timedelta(days=7)).emails == 1


def test_a_prompt_held_back_by_the_weekly_limit_never_comes_in_the_quiet_hours(app):
    _plans(app, {"product": "p-1"})
    late = NOW + timedelta(hours=13)  # 23:00 in Tokyo: an operator's send-now
    with app.app_context():
        assert prompts.send_now(get_session(), current_settings(), late, "ops") == 1
        get_session().commit()
    assert dispatch(app, late).emails == 1
    _plans(app, {"product": "p-2", "prompt_on": date(2026, 11, 24)})
    _plans(app, {"product": "p-3", "prompt_on": date(2026, 11, 26)})
    assert dispatch(app, NOW + timedelta(days=4)).emails == 1
    assert dispatch(app, NOW + timedelta(days=6)).postponed == 1
    due = prompt_rows(app)[-1].due_at
    # Not 23:00 a week on: the customer's send hour the morning after.
    tokyo = ZoneInfo("Asia/Tokyo")
    assert due.astimezone(tokyo) == datetime(2026, 11, 28, 10, 0, tzinfo=tokyo)
    assert due >= late + timedelta(days=7)


def _while_first_email_renders(monkeypatch, meanwhile):
    """Run ``meanwhile`` (its own sessions) as the dispatcher renders its first email, with
    no transaction of the dispatcher's open."""
    real_build = dispatching._build

    def build(*args, **kwargs):
        monkeypatch.setattr(dispatching, "_build", real_build)
        meanwhile()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(dispatching, "_build", build)


def test_an_email_sent_by_another_dispatcher_while_this_one_renders_counts_toward_the_limit(
    app, monkeypatch
):
    """Emails are rendered with no transaction open, so a second dispatcher may email the same
    customer meanwhile: the weekly limit is checked again before anything is marked sent."""
    _plans(app, {"product": "p-1"})
    dispatch(app)  # the first email of the week
    _plans(app, {"product": "p-2", "prompt_on": date(2026, 11, 24)})
    day4 = NOW + timedelta(days=4)

    def other_dispatcher_sends_first():
        _plans(app, {"product": "p-3", "prompt_on": date(2026, 11, 24)})
        schedule(app, day4)
        with app.app_context():
            session = get_session()
            other = dispatching.dispatch_due_prompts(session, current_settings(), "other", day4)
            session.commit()
        assert other.emails == 1  # the second email of the week

    _while_first_email_renders(monkeypatch, other_dispatcher_sends_first)
    result = dispatch(app, day4)
    assert (result.emails, result.postponed) == (0, 1)
    deliver(app, day4)
    assert len(mailbox(app)) == 2
    p2 = prompt_rows(app)[1]
    assert (p2.status, p2.due_at) == (PromptStatus.SCHEDULED, NOW + timedelta(days=7))


def test_an_address_changed_while_the_email_renders_gets_it_at_the_new_address(app, monkeypatch):
    """A sync that changes the address (revoking the old links) commits while the email is
    rendered: that email is not sent, and the next round sends one to the new address."""
    _plans(app, {"product": "p-1"})

    def address_changed_meanwhile():
        with app.app_context():
            session = get_session()
            customer = session.scalars(select(Customer)).one()
            customer.email, customer.link_version = "new@example.jp", customer.link_version + 1
            session.commit()

    _while_first_email_renders(monkeypatch, address_changed_meanwhile)
    first = dispatch(app)
    assert (first.emails, first.postponed) == (0, 1)
    assert dispatch(app).emails == 1
    deliver(app)
    [message] = mailbox(app)
    assert message["To"].addresses[0].addr_spec == "new@example.jp"


def test_ordering_before_the_prompt_goes_out_cancels_it(app, client, auth):
    client.put("/api/v1/customers/c-1", json={"email": "c-1@example.jp", "name": "x",
               "locale": "ja", "timezone": "Asia/Tokyo"}, headers=auth)  # fmt: skip
    _plans(app, {})
    schedule(app, NOW - timedelta(hours=3))
    stamp = "2026-11-20T08:00:00+09:00"
    body = order_body(ordered_at=stamp, updated_at=stamp)
    assert client.put("/api/v1/orders/o-9", json=body, headers=auth).status_code == 201
    [prompt] = prompt_rows(app)
    assert (prompt.status, prompt.cancel_reason) == (PromptStatus.CANCELLED, "ordered")
    assert dispatch(app).emails == 0


def test_unanswered_prompt_expires_and_the_plan_rests_a_week(app):
    _plans(app, {})
    dispatch(app)
    with app.app_context():
        from app.services.prompts import expire_prompts

        session = get_session()
        assert expire_prompts(session, "Asia/Tokyo", NOW + timedelta(days=7)) == 1
        session.commit()
    assert prompt_rows(app)[0].status is PromptStatus.EXPIRED
    assert schedule(app, NOW + timedelta(days=7)) == 0
    assert schedule(app, NOW + timedelta(days=14)) == 1


def test_unsubscribed_customer_gets_no_prompt(app):
    _plans(app, {})
    with app.app_context():
        from app.models import Customer

        session = get_session()
        customer = session.query(Customer).one()
        customer.unsubscribed_at = NOW
        session.commit()
    assert dispatch(app).emails == 0
    assert prompt_rows(app) == []


def test_a_new_time_zone_re_times_the_prompts_not_yet_sent(app, client, auth):
    _plans(app, {"product": "p-1"})
    # The plan's purchase, as synced (the time zone change re-dates the customer's orders).
    assert client.put("/api/v1/orders/o-1", json=order_body(), headers=auth).status_code == 201
    schedule(app, NOW - timedelta(hours=2))
    [before] = prompt_rows(app)
    assert before.due_at == NOW  # 10:00 in Tokyo
    body = {"email": "c-1@example.jp", "name": "Pat", "locale": "en",
            "timezone": "America/New_York"}  # fmt: skip
    assert client.put("/api/v1/customers/c-1", json=body, headers=auth).status_code == 200
    schedule(app, NOW - timedelta(hours=1))
    old, new = prompt_rows(app)
    assert (old.status, old.cancel_reason) == (PromptStatus.CANCELLED, "time zone changed")
    assert new.status is PromptStatus.SCHEDULED
    assert new.due_at == datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # 10:00 in New York


@pytest.mark.parametrize("change", ["unsubscribe", "revoke links"])
def test_a_prompt_email_still_waiting_to_go_is_withdrawn_when_its_prompts_close(app, change):
    """SMTP failing for hours: the email waits in the outbox. An unsubscribe, or a new address
    (links revoked), must not let it go out later."""
    with app.app_context():
        make_plan(get_session())
        get_session().commit()
    assert dispatch(app).emails == 1
    with app.app_context():
        session = get_session()
        customer = session.scalars(select(Customer)).one()
        if change == "unsubscribe":
            preferences.set_subscribed(session, customer, False, NOW)
        else:
            preferences.revoke_links(session, customer, ActorType.API_CLIENT, "backend", NOW)
        session.commit()
        [email] = session.scalars(select(Outbox).where(col(Outbox.kind) == OutboxKind.EMAIL)).all()
        assert email.status is OutboxStatus.CANCELLED
    assert deliver(app).delivered == 0
    assert mailbox(app) == []
