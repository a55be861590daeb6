"""Prompt emails through a real SMTP server (aiosmtpd), including while it is down."""

from datetime import timedelta

import pytest
from sqlalchemy import create_engine, func, select
from sqlmodel import col

from app.config import current_settings
from app.db import get_session
from app.mail.transport import SmtpTransport
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


def _plans_for(app, *emails):
    with app.app_context():
        for n, email in enumerate(emails, 1):
            make_plan(get_session(), customer=f"c-{n}", email=email)
        get_session().commit()


def test_an_address_the_server_cannot_take_is_dead_lettered_at_once(smtp_app, smtp_server):
    """A local part outside ASCII needs SMTPUTF8, which this server does not offer: no retry
    can help, so that email is dead at once, and the others go out."""
    _plans_for(smtp_app, "jösé@example.com", "hanako@例え.jp", "c-3@example.jp")
    assert dispatch(smtp_app).emails == 3
    result = deliver(smtp_app)
    assert (result.delivered, result.failed, result.dead) == (2, 1, 1)
    assert sorted(smtp_server.inbox.recipients) == [["c-3@example.jp"], ["hanako@xn--r8jz45g.jp"]]
    with smtp_app.app_context():
        dead_letters = select(Outbox).where(col(Outbox.status) == OutboxStatus.DEAD)
        [dead] = get_session().scalars(dead_letters).all()
    assert dead.recipient == "jösé@example.com"
    assert "needs SMTPUTF8, which the SMTP server does not offer" in (dead.last_error or "")


@pytest.mark.parametrize("smtp_server", [True], indirect=True)
def test_a_server_offering_smtputf8_gets_a_local_part_outside_ascii(smtp_app, smtp_server):
    _plans_for(smtp_app, "jösé@example.com")
    dispatch(smtp_app)
    assert deliver(smtp_app).delivered == 1
    assert smtp_server.inbox.recipients == [["jösé@example.com"]]
    message = parse(smtp_server.inbox.messages[0])
    assert message["To"].addresses[0].addr_spec == "jösé@example.com"
    assert message["Subject"] == "洗剤 p-1がそろそろなくなる頃です"


def test_a_connection_the_server_dropped_while_idle_is_reopened(smtp_app, smtp_server):
    with smtp_app.app_context():
        settings = current_settings().smtp_url
    assert settings is not None
    with SmtpTransport(settings) as smtp:
        smtp.send("shop@example.jp", "a@example.jp", "Subject: one\r\n\r\nfirst\r\n")
        smtp_server.stop()  # closes the idle connection
        smtp_server.start()
        smtp.send("shop@example.jp", "b@example.jp", "Subject: two\r\n\r\nsecond\r\n")
    assert smtp_server.inbox.recipients == [["a@example.jp"], ["b@example.jp"]]


def test_a_server_hanging_up_after_taking_the_message_is_not_sent_it_again_at_once(
    smtp_app, smtp_server, monkeypatch
):
    """Hanging up before its reply, the server may have taken the message: it is not sent
    again on the spot, but recorded as a failed attempt for the outbox to retry later."""
    _one_prompt(smtp_app)
    dispatch(smtp_app)
    real_handle = smtp_server.inbox.handle_DATA

    async def take_and_hang_up(server, session, envelope):
        await real_handle(server, session, envelope)
        server.transport.close()
        return "250 OK"

    monkeypatch.setattr(smtp_server.inbox, "handle_DATA", take_and_hang_up)
    result = deliver(smtp_app)
    assert (result.delivered, result.failed) == (0, 1)
    assert len(smtp_server.inbox.messages) == 1
    with smtp_app.app_context():
        [row] = get_session().query(Outbox).all()
        assert (row.status, row.attempts) == (OutboxStatus.PENDING, 1)


def test_a_sender_named_in_japanese_needs_no_smtputf8(make_app, database_url, smtp_server, app):
    named = make_app(database_url, KAIDOKI_SMTP_URL=smtp_server.url,
                     KAIDOKI_MAIL_FROM="買い時 <no-reply@例え.jp>")  # fmt: skip
    _one_prompt(named)
    dispatch(named)
    assert deliver(named).delivered == 1
    assert smtp_server.inbox.senders == ["no-reply@xn--r8jz45g.jp"]
    sender = parse(smtp_server.inbox.messages[0])["From"].addresses[0]
    assert (sender.display_name, sender.addr_spec) == ("買い時", "no-reply@xn--r8jz45g.jp")


def test_a_server_closing_an_idle_connection_with_421_gets_the_email_on_a_new_one(
    smtp_app, smtp_server, monkeypatch
):
    """Postfix and Exim answer 421 to the next command after an idle timeout: nothing of the
    email was taken, so it goes at once on a new connection, not as a failed attempt."""
    _one_prompt(smtp_app)
    dispatch(smtp_app)
    refused: list[str] = []

    async def handle_mail(server, session, envelope, address, options):
        if not refused:
            refused.append(address)
            return "421 4.4.2 idle too long, closing"
        envelope.mail_from = address
        return "250 OK"

    monkeypatch.setattr(smtp_server.inbox, "handle_MAIL", handle_mail, raising=False)
    result = deliver(smtp_app)
    assert (result.delivered, result.failed) == (1, 0)
    assert len(refused) == 1 and len(smtp_server.inbox.messages) == 1
