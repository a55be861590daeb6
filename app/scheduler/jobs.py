"""The job list: each sweep is an entry point that owns its transactions and reads the clock."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy.orm import Session

from app.config import current_settings
from app.db import get_engine, utcnow
from app.services import answers, delivery, dispatch, forecasting, idempotency, prompts

logger = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Timing:
    """How often sweeps run and how long claims last (shortened in tests)."""

    every_seconds: float = 15
    lease: timedelta = timedelta(minutes=5)
    batch: int = 200
    # SMTP connections (and threads) delivering the outbox. Each has one message in flight,
    # which a crash may repeat: one connection keeps that to a single message.
    connections: int = 1


def _session() -> Session:
    return Session(get_engine(), expire_on_commit=False)


def dispatch_due_prompts(timing: Timing) -> int:
    """Schedule prompts whose day has come, then email the due ones until none are left."""
    settings = current_settings()
    sent = 0
    with _session() as session:
        while prompts.schedule_prompts(session, settings, utcnow()) > 0:
            session.commit()
        session.commit()
        while True:
            result = dispatch.dispatch_due_prompts(
                session, settings, WORKER, utcnow(), limit=timing.batch, lease=timing.lease
            )
            session.commit()
            sent += result.emails
            if result.emails + result.postponed + result.cancelled + result.failed == 0:
                return sent


def deliver_outbox(timing: Timing) -> int:
    """Deliver due emails and webhooks until none are left."""
    settings = current_settings()
    done = 0
    with _session() as session:
        while True:
            result = delivery.deliver_outbox(
                session, settings, WORKER, utcnow, limit=timing.batch, lease=timing.lease,
                connections=timing.connections,
            )  # fmt: skip
            done += result.delivered
            if result.delivered + result.failed == 0:
                return done


def expire_prompts(timing: Timing) -> int:
    settings = current_settings()
    with _session() as session:
        expired = prompts.expire_prompts(session, settings.default_timezone, utcnow())
        session.commit()
        return expired


def _in_chunks(step: Callable[[Session], int], chunk: int) -> int:
    """Run ``step`` and commit, again while it did a whole ``chunk``; returns the total."""
    done = 0
    with _session() as session:
        while True:
            n = step(session)
            session.commit()
            done += n
            if n < chunk:
                return done


def rescore_answered_plans(timing: Timing) -> int:
    """Re-score the plans whose prompts customers answered since the last sweep, and learn
    those customers' send hours from when they answer."""
    settings = current_settings()

    def serve(session: Session) -> int:
        requests = forecasting.rescore_requests(session)
        # Customers before plans, the order an order sync locks them in (PostgreSQL): the
        # sweep and a sync of the same customer wait for each other instead of deadlocking.
        answers.learn_send_hours(session, settings, {r.customer_id: r.timezone for r in requests})
        return forecasting.rescore(session, requests, utcnow())

    return _in_chunks(serve, forecasting.RESCORE_BATCH)


def purge_idempotency_records(timing: Timing) -> int:
    """Forget ``Idempotency-Key`` responses older than ``KAIDOKI_IDEMPOTENCY_HOURS``, a chunk
    per transaction."""
    keep = timedelta(hours=current_settings().idempotency_hours)
    return _in_chunks(
        lambda session: idempotency.purge_expired(session, utcnow(), keep), idempotency.PURGE_CHUNK
    )


def refit_forecasts(timing: Timing) -> int:
    """Nightly: fit the population again on all history and re-score every plan."""
    settings = current_settings()
    now = utcnow()
    with _session() as session:
        try:
            today = now.astimezone(ZoneInfo(settings.default_timezone)).date()
            result = forecasting.refit(session, today, now)
        except ValueError as exc:  # no history yet
            logger.info("refit skipped: %s", exc)
            return 0
        session.commit()
        return result.n_plans_written


Job = Callable[[Timing], int]
INTERVAL_JOBS: tuple[Job, ...] = (
    dispatch_due_prompts,
    deliver_outbox,
    expire_prompts,
    rescore_answered_plans,
    purge_idempotency_records,
)
NIGHTLY_JOBS: tuple[Job, ...] = (refit_forecasts,)
ALL_JOBS = {job.__name__: job for job in (*INTERVAL_JOBS, *NIGHTLY_JOBS)}


def run_job(app: Flask, job: Job, timing: Timing) -> None:
    """Run one sweep in an app context; a failing sweep is logged and tried again next time."""
    with app.app_context():
        try:
            count = job(timing)
        except Exception:
            logger.exception("job %s failed", job.__name__)
            return
        if count:
            logger.info("job %s: %d", job.__name__, count)
