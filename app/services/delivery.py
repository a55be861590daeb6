"""Delivering the outbox: emails over SMTP (or into the mailbox) and webhooks to the backend."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from app.config import Settings
from app.mail.addresses import UndeliverableAddress
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
    connections: int = 1,
) -> DeliveryResult:
    """Claim up to ``limit`` due messages and deliver them one by one.

    Each outcome is committed as soon as it is known (an email's while the server reads the
    next one's sender), so a crash repeats at most the message in flight (per connection).
    ``clock`` gives the time of each step (deliveries take a while). With ``connections`` > 1
    the claimed messages are shared among that many threads, each with its own SMTP
    connection and database session: the SMTP server's turn-around per message, not our
    side, is what limits one connection.
    """
    claimed = outbox.claim(session, worker, clock(), limit, lease)
    session.commit()
    shares = [claimed[i::connections] for i in range(max(1, min(connections, len(claimed))))]

    def deliver_share(share: list[outbox.Claimed]) -> DeliveryResult:
        # One database connection held for the whole share: each message's outcome is still
        # its own transaction, without a trip through the pool for every one.
        with (
            session.get_bind().engine.connect() as connection,
            Session(connection, expire_on_commit=False) as own,
        ):
            return _deliver_each(own, settings, worker, clock, share)

    if len(shares) == 1:
        return deliver_share(shares[0])
    with ThreadPoolExecutor(len(shares), thread_name_prefix="deliver") as pool:
        results = list(pool.map(deliver_share, shares))
    return DeliveryResult(
        sum(r.delivered for r in results),
        sum(r.failed for r in results),
        sum(r.dead for r in results),
    )


def _deliver_each(
    session: Session,
    settings: Settings,
    worker: str,
    clock: Callable[[], datetime],
    claimed: list[outbox.Claimed],
) -> DeliveryResult:
    delivered = failed = dead = 0
    # A message delivered, its outcome not committed yet. An email's is committed while the
    # server reads the next one's sender (``SmtpTransport.send``), or after the last; a
    # mailbox copy's or a webhook's at once (the copy in the same transaction).
    accepted: list[int] = []

    def record_accepted() -> None:
        nonlocal delivered
        while accepted:
            try:
                if outbox.mark_delivered(session, accepted[0], worker, clock()):
                    delivered += 1
                session.commit()
            except OSError as error:  # the database's (its lock file): not the email's failure
                raise RuntimeError(f"recording outbox {accepted[0]} as delivered") from error
            accepted.pop()

    with ExitStack() as stack:
        smtp: SmtpTransport | None = None
        for message in claimed:
            try:
                if message.kind is OutboxKind.EMAIL and settings.smtp_url is not None:
                    if smtp is None:
                        smtp = stack.enter_context(SmtpTransport(settings.smtp_url))
                    smtp.send(settings.mail_from, message.recipient, message.payload,
                              while_waiting=record_accepted)  # fmt: skip
                    accepted.append(message.id)
                    continue
                record_accepted()
                if message.kind is OutboxKind.EMAIL:
                    store_in_mailbox(session, message.id, message.recipient, message.payload,
                                     clock())  # fmt: skip
                else:
                    _post(settings, message, clock())
                accepted.append(message.id)
                record_accepted()
            except (smtplib.SMTPException, OSError, WebhookFailed, UndeliverableAddress) as exc:
                session.rollback()
                # An undeliverable address is refused before any command: keep the connection.
                if smtp is not None and not isinstance(exc, UndeliverableAddress):
                    smtp.close()
                error = f"{type(exc).__name__}: {exc}"
                status = outbox.mark_failed(
                    session, message.id, worker, clock(), error,
                    timedelta(hours=settings.webhook_retry_hours),
                    permanent=isinstance(exc, UndeliverableAddress),
                )  # fmt: skip
                session.commit()
                failed += 1
                dead += status is OutboxStatus.DEAD
                logger.warning("outbox %s (%s) failed: %s", message.id, message.event_type, error)
        record_accepted()
    return DeliveryResult(delivered, failed, dead)


def _post(settings: Settings, message: outbox.Claimed, now: datetime) -> None:
    if not settings.webhook_url or not settings.webhook_secret:
        raise WebhookFailed("no KAIDOKI_WEBHOOK_URL / KAIDOKI_WEBHOOK_SECRET configured")
    post_webhook(settings.webhook_url, settings.webhook_secret, message.dedupe_key,
                 message.payload, now)  # fmt: skip
