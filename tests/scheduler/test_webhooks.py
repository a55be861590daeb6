"""Reorder webhooks to a real local receiver: signed, retried with backoff, dead-lettered,
replayable."""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from app.config import current_settings
from app.db import get_session
from app.models import Outbox, OutboxKind, OutboxStatus, Reorder
from app.services import delivery, outbox
from tests.conftest import BASE_URL
from tests.factories import NOW, make_plan
from tests.prompt_links import send_prompt
from tests.scheduler.helpers import deliver, dispatch, mailbox, text_part

pytestmark = pytest.mark.slow

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture
def hook_app(make_app, database_url, receiver, app):
    return make_app(database_url, KAIDOKI_WEBHOOK_URL=receiver.url, KAIDOKI_WEBHOOK_SECRET=SECRET)


def _confirm(app, monkeypatch, at=NOW):
    path = send_prompt(app)["p"]
    monkeypatch.setattr("app.links.views.utcnow", lambda: at)
    page = app.test_client().post(path, data={"action": "confirm", "quantity": "2"})
    assert page.status_code == 200


def _deliver_at(app, moment):
    with app.app_context():
        return delivery.deliver_outbox(get_session(), current_settings(), "w", lambda: moment)


def test_confirmed_reorder_reaches_the_backend_signed_after_the_undo_window(
    hook_app, receiver, monkeypatch
):
    _confirm(hook_app, monkeypatch)
    assert _deliver_at(hook_app, NOW + timedelta(minutes=4)).delivered == 0  # undo window
    # Delivered "now" by the real clock, as Webhook.verify checks the timestamp against it.
    assert _deliver_at(hook_app, datetime.now(UTC)).delivered == 1
    [(headers, body, _status)] = receiver.requests
    event = Webhook(SECRET).verify(body, headers)
    assert event["type"] == "reorder.confirmed"
    assert event["data"] | {"confirmed_at": None} == {
        "reorder_id": 1, "status": "pending", "customer_external_id": "c-1",
        "product_external_id": "p-1", "quantity": 2, "confirmed_at": None,
    }  # fmt: skip
    assert headers["webhook-id"] == "msg_reorder.confirmed_1"


def test_receiver_failing_for_a_while_gets_retries_then_the_event_once(
    hook_app, receiver, monkeypatch
):
    # Confirmed by the real clock: the retry window counts from then.
    _confirm(hook_app, monkeypatch, at=datetime.now(UTC) - timedelta(minutes=10))
    receiver.fail_with = 500
    start = datetime.now(UTC)
    assert _deliver_at(hook_app, start).failed == 1
    assert _deliver_at(hook_app, start + timedelta(seconds=20)).failed == 0  # backing off
    assert _deliver_at(hook_app, start + timedelta(seconds=31)).failed == 1
    receiver.fail_with = None
    assert _deliver_at(hook_app, start + timedelta(seconds=92)).delivered == 1
    statuses = [status for _, _, status in receiver.requests]
    assert statuses == [500, 500, 204]
    ids = {headers["webhook-id"] for headers, _, _ in receiver.requests}
    assert ids == {"msg_reorder.confirmed_1"}  # the same id on every retry
    headers, body, _ = receiver.requests[-1]
    assert json.loads(body) == Webhook(SECRET).verify(body, headers)


def test_after_24_hours_of_failures_the_event_is_dead_and_can_be_replayed(
    hook_app, receiver, monkeypatch
):
    _confirm(hook_app, monkeypatch)
    receiver.fail_with = 503
    moment = NOW + timedelta(minutes=6)
    while True:
        with hook_app.app_context():
            row = get_session().query(Outbox).filter_by(kind="webhook").one()
            if row.status is OutboxStatus.DEAD:
                break
            moment = max(moment, row.available_at)
        _deliver_at(hook_app, moment)
    # Retried for the full 24 hours (the last try exactly then), not a moment longer.
    assert moment - row.created_at == timedelta(hours=24)
    assert row.attempts == len(receiver.requests)
    receiver.fail_with = None
    assert row.id is not None
    cli = hook_app.test_cli_runner()
    status = cli.invoke(args=["outbox", "status"])
    assert "webhook  dead       1" in status.output
    assert f"{row.id:>8} webhook  reorder.confirmed" in status.output
    assert "HTTP 503" in status.output
    replayed = cli.invoke(args=["outbox", "replay", str(row.id)])
    assert replayed.exit_code == 0, replayed.output
    assert cli.invoke(args=["outbox", "replay", str(row.id)]).exit_code == 1  # already pending
    assert _deliver_at(hook_app, datetime.now(UTC)).delivered == 1


def test_an_undone_reorders_id_is_never_given_to_the_next(hook_app, receiver, monkeypatch):
    # Before, SQLite gave the undone reorder's id to the next one, whose webhook then collided
    # with the undone one's cancelled outbox row: every later confirm failed.
    with hook_app.app_context():
        make_plan(get_session(), customer="c-1")
        make_plan(get_session(), customer="c-2")
        get_session().commit()
    dispatch(hook_app)
    deliver(hook_app)
    paths = [re.findall(re.escape(BASE_URL) + r"(/l/p/\S+)", text_part(m))[0]
             for m in mailbox(hook_app)]  # fmt: skip
    monkeypatch.setattr("app.links.views.utcnow", lambda: NOW)
    client = hook_app.test_client()
    assert client.post(paths[0], data={"action": "confirm"}).status_code == 200
    assert client.post(paths[0], data={"action": "undo"}).status_code == 200
    again = client.post(paths[1], data={"action": "confirm"})
    assert again.status_code == 200
    with hook_app.app_context():
        [reorder] = get_session().query(Reorder).all()
        assert reorder.id == 2
    assert _deliver_at(hook_app, datetime.now(UTC)).delivered == 1
    [(headers, _body, _status)] = receiver.requests
    assert headers["webhook-id"] == "msg_reorder.confirmed_2"


def _dead_confirm(app, receiver, monkeypatch):
    """A confirm whose webhook failed for 24 hours: dead, never delivered."""
    _confirm(app, monkeypatch)
    receiver.fail_with = 503
    with app.app_context():
        row = get_session().query(Outbox).filter_by(kind="webhook").one()
        get_session().query(Outbox).filter_by(id=row.id).update({"status": OutboxStatus.DEAD})
        get_session().commit()
    receiver.fail_with = None
    return row.id


def test_a_reorder_cancelled_after_its_confirm_died_is_never_confirmed_by_a_replay(
    hook_app, receiver, monkeypatch
):
    dead = _dead_confirm(hook_app, receiver, monkeypatch)
    monkeypatch.setattr("app.cli.ops.utcnow", lambda: NOW + timedelta(days=2))
    cli = hook_app.test_cli_runner()
    assert cli.invoke(args=["reorders", "cancel", "1", "--by", "ops"]).exit_code == 0
    replayed = cli.invoke(args=["outbox", "replay", str(dead)])
    assert replayed.exit_code == 1
    assert "cancelled" in replayed.output
    assert _deliver_at(hook_app, datetime.now(UTC)).delivered == 1
    events = [
        Webhook(SECRET).verify(body, headers)["type"] for headers, body, _ in receiver.requests
    ]
    assert events == ["reorder.cancelled"]


def test_a_confirm_on_its_way_when_the_reorder_is_cancelled_is_not_retried(
    hook_app, receiver, monkeypatch
):
    _confirm(hook_app, monkeypatch)
    with hook_app.app_context():
        session = get_session()
        [claimed] = outbox.claim(
            session, "w1", NOW + timedelta(minutes=6), 10, timedelta(minutes=1)
        )
        session.commit()
    monkeypatch.setattr("app.cli.ops.utcnow", lambda: NOW + timedelta(minutes=7))
    assert hook_app.test_cli_runner().invoke(args=["reorders", "cancel", "1"]).exit_code == 0
    with hook_app.app_context():
        session = get_session()
        # The attempt on its way fails: no retry follows the cancel.
        failed = outbox.mark_failed(session, claimed.id, "w1", NOW + timedelta(minutes=8),
                                    "HTTP 503", timedelta(hours=24))  # fmt: skip
        session.commit()
        assert failed is None
        row = session.get_one(Outbox, claimed.id)
        assert row.status is OutboxStatus.CANCELLED


def test_a_receiver_that_redirects_has_not_received_the_event(hook_app, receiver, monkeypatch):
    # Followed, the redirect would turn the POST into a body-less GET, answered 200.
    _confirm(hook_app, monkeypatch, at=datetime.now(UTC) - timedelta(minutes=10))
    receiver.moved_to = receiver.url.replace("/hooks/", "/new-hooks/")
    assert _deliver_at(hook_app, datetime.now(UTC)).failed == 1
    assert receiver.gets == []
    with hook_app.app_context():
        [row] = get_session().query(Outbox).filter_by(kind=OutboxKind.WEBHOOK).all()
        assert row.status is OutboxStatus.PENDING
        assert row.last_error is not None and "redirects are not followed" in row.last_error
        assert receiver.moved_to in row.last_error


def test_the_retry_window_counts_from_the_hand_off_not_from_the_confirm(
    make_app, database_url, receiver, monkeypatch, app
):
    # (``app``: its teardown empties the shared database for the next test.)
    # An undo window as long as the retry window: counted from the confirm, the first
    # failure would dead-letter the event at once.
    app = make_app(database_url, KAIDOKI_WEBHOOK_URL=receiver.url,
                   KAIDOKI_WEBHOOK_SECRET=SECRET, KAIDOKI_UNDO_MINUTES="60",
                   KAIDOKI_WEBHOOK_RETRY_HOURS="1")  # fmt: skip
    _confirm(app, monkeypatch)
    receiver.fail_with = 503
    handoff = NOW + timedelta(minutes=60)
    moment = handoff
    while True:
        assert _deliver_at(app, moment).failed == 1
        with app.app_context():
            row = get_session().query(Outbox).filter_by(kind="webhook").one()
        if row.status is OutboxStatus.DEAD:
            break
        moment = row.available_at
    assert moment - handoff == timedelta(hours=1)
    assert row.attempts > 1
