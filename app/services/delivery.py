"""Delivering the outbox: emails over SMTP (or into the mailbox) and webhooks to the backend."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.mail.transport import SmtpTransport, store_in_mailbox
from app.models import OutboxKind, OutboxStatus
from app.services import outbox
from app.services.webhooks import WebhookFailed, post_webhook

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryResult:
    delivered: int = 0
    failed: int = 0
    dead: int = 0


def deliver_outbox(
    session: Session,
    settings: Settings,
    worker: str,
    clock: Callable[[], datetime],
    limit: int = 100,
    lease: timedelta = timedelta(minutes=2),
) -> DeliveryResult:
    """Claim up to ``limit`` due messages and deliver them one by one.

    Each outcome is committed as soon as it is known, so a crash repeats at most the message in
    flight. ``clock`` gives the time of each step (deliveries take a while).
    """
    claimed = outbox.claim(session, worker, clock(), limit, lease)
    session.commit()
    delivered = failed = dead = 0
    with ExitStack() as stack:
        smtp: SmtpTransport | None = None
        for message in claimed:
            try:
                if message.kind is OutboxKind.EMAIL and settings.smtp_url is None:
                    store_in_mailbox(session, message.id, message.recipient, message.payload,
                                     clock())  # fmt: skip
                elif message.kind is OutboxKind.EMAIL:
                    if smtp is None:
                        smtp = stack.enter_context(SmtpTransport(settings.smtp_url))  # type: ignore[arg-type]
                    smtp.send(settings.mail_from, message.recipient, message.payload)
                else:
                    _post(settings, message, clock())
            except (smtplib.SMTPException, OSError, WebhookFailed) as exc:
                session.rollback()
                if smtp is not None:
                    smtp.close()
                error = f"{type(exc).__name__}: {exc}"
                status = outbox.mark_failed(
                    session, message.id, worker, clock(), error,
                    timedelta(hours=settings.webhook_retry_hours),
                )  # fmt: skip
                session.commit()
                failed += 1
                dead += status is OutboxStatus.DEAD
                logger.warning("outbox %s (%s) failed: %s", message.id, message.event_type, error)
                continue
            if outbox.mark_delivered(session, message.id, worker, clock()):
                delivered += 1
            session.commit()
    return DeliveryResult(delivered, failed, dead)


def _post(settings: Settings, message: outbox.Claimed, now: datetime) -> None:
    if not settings.webhook_url or not settings.webhook_secret:
        raise WebhookFailed("no KAIDOKI_WEBHOOK_URL / KAIDOKI_WEBHOOK_SECRET configured")
    post_webhook(settings.webhook_url, settings.webhook_secret, message.dedupe_key,
                 message.payload, now)  # fmt: skip
