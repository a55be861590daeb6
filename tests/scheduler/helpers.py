"""Running the sweeps in-process at a chosen time, and reading what they sent."""

from __future__ import annotations

from datetime import datetime
from email import message_from_string, policy
from email.message import EmailMessage

from flask import Flask
from sqlalchemy import select

from app.config import current_settings
from app.db import get_session, pk
from app.models import MailboxMessage, Prompt
from app.services import delivery, prompts
from app.services import dispatch as dispatching
from app.services.delivery import DeliveryResult
from app.services.dispatch import DispatchResult
from tests.factories import NOW


def schedule(app: Flask, now: datetime = NOW) -> int:
    with app.app_context():
        session = get_session()
        created = prompts.schedule_prompts(session, current_settings(), now)
        session.commit()
        return created


def dispatch(app: Flask, now: datetime = NOW) -> DispatchResult:
    """Schedule, then claim and send due prompts, as the scheduler's sweep does."""
    schedule(app, now)
    with app.app_context():
        session = get_session()
        result = dispatching.dispatch_due_prompts(session, current_settings(), "test-worker", now)
        session.commit()
        return result


def deliver(app: Flask, now: datetime = NOW) -> DeliveryResult:
    with app.app_context():
        return delivery.deliver_outbox(get_session(), current_settings(), "test-worker",
                                       lambda: now)  # fmt: skip


def mailbox(app: Flask) -> list[EmailMessage]:
    with app.app_context():
        rows = get_session().scalars(select(MailboxMessage).order_by(pk(MailboxMessage))).all()
        return [parse(row.raw) for row in rows]


def parse(raw: str | bytes) -> EmailMessage:
    text = raw.decode() if isinstance(raw, bytes) else raw
    message = message_from_string(text, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def text_part(message: EmailMessage) -> str:
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content())


def prompt_rows(app: Flask) -> list[Prompt]:
    with app.app_context():
        return list(get_session().scalars(select(Prompt).order_by(pk(Prompt))).all())
