"""Prompt emails through a real SMTP server (aiosmtpd), including while it is down."""

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select
from sqlmodel import col

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


def test_each_email_is_recorded_as_delivered_before_the_next_is_handed_over(
    smtp_app, smtp_server, database_url, monkeypatch
):
    """An email's delivery is committed while the server reads the next one's sender: when
    any email arrives, every earlier one is recorded, so a crash repeats at most one."""
    with smtp_app.app_context():
        for customer in ("c-1", "c-2", "c-3"):
            make_plan(get_session(), customer=customer)
        get_session().commit()
    dispatch(smtp_app)
    reader = create_engine(database_url)
    recorded_on_arrival = []
    real_handle = smtp_server.inbox.handle_DATA

    async def handle_data(server, session, envelope):
        with reader.connect() as conn:
            delivered = select(func.count()).where(col(Outbox.status) == OutboxStatus.DELIVERED)
            recorded_on_arrival.append(conn.scalar(delivered))
        return await real_handle(server, session, envelope)

    monkeypatch.setattr(smtp_server.inbox, "handle_DATA", handle_data)
    assert deliver(smtp_app).delivered == 3
    reader.dispose()
    assert recorded_on_arrival == [0, 1, 2]
    with smtp_app.app_context():
        statuses = {row.status for row in get_session().query(Outbox).all()}
    assert statuses == {OutboxStatus.DELIVERED}
