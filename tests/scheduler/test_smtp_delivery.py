"""Prompt emails through a real SMTP server (aiosmtpd), including while it is down."""

from datetime import timedelta

import pytest

from app.db import get_session
from app.models import Outbox, OutboxStatus
from tests.factories import NOW, make_plan
from tests.scheduler.helpers import deliver, dispatch, parse

pytestmark = pytest.mark.slow


@pytest.fixture
def smtp_app(make_app, database_url, smtp_server, app):
    # ``app`` first: its teardown empties the shared database afterwards.
    return make_app(database_url, KAIDOKI_SMTP_URL=smtp_server.url)


def _one_prompt(app):
    with app.app_context():
        make_plan(get_session())
        get_session().commit()


def test_prompt_email_arrives_with_both_parts_and_one_click_unsubscribe(smtp_app, smtp_server):
    _one_prompt(smtp_app)
    dispatch(smtp_app)
    assert deliver(smtp_app).delivered == 1
    [raw] = smtp_server.inbox.messages
    message = parse(raw)
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert message["List-Unsubscribe"].startswith("<https://kaidoki.example.test/l/u/")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"].startswith("<prompt-1.")
    assert message["Subject"] == "洗剤 p-1がそろそろなくなる頃です"


def test_smtp_down_then_back_loses_nothing(smtp_app, smtp_server):
    _one_prompt(smtp_app)
    dispatch(smtp_app)
    smtp_server.stop()
    result = deliver(smtp_app)
    assert (result.delivered, result.failed) == (0, 1)
    with smtp_app.app_context():
        [row] = get_session().query(Outbox).all()
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1)
        assert "Connection refused" in (row.last_error or "")
    assert deliver(smtp_app, NOW + timedelta(seconds=10)).delivered == 0  # backing off
    smtp_server.start()
    assert deliver(smtp_app, NOW + timedelta(seconds=31)).delivered == 1
    assert len(smtp_server.inbox.messages) == 1
    assert deliver(smtp_app, NOW + timedelta(hours=1)).delivered == 0
