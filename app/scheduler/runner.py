"""APScheduler 3 wiring: the sweeps of ``jobs`` on intervals, the refit nightly."""

from __future__ import annotations

import logging
import signal
from datetime import datetime
from types import FrameType
from zoneinfo import ZoneInfo

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from app.config import SETTINGS_KEY, Settings
from app.scheduler.jobs import INTERVAL_JOBS, NIGHTLY_JOBS, WORKER, Timing, run_job

logger = logging.getLogger(__name__)

REFIT_HOUR = 3
"""Local hour (``KAIDOKI_DEFAULT_TIMEZONE``) of the nightly refit."""


class _BusySweepFilter(logging.Filter):
    """A sweep still busy when its next interval comes is normal (it loops until its work is
    done); APScheduler would warn about it every interval."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


def build(app: Flask, timing: Timing) -> BlockingScheduler:
    settings: Settings = app.extensions[SETTINGS_KEY]
    zone = ZoneInfo(settings.default_timezone)
    scheduler = BlockingScheduler(
        # One thread per sweep: a slow delivery round does not hold up dispatching.
        executors={"default": ThreadPoolExecutor(len(INTERVAL_JOBS) + len(NIGHTLY_JOBS))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        timezone=zone,
    )
    for job in INTERVAL_JOBS:
        scheduler.add_job(run_job, "interval", seconds=timing.every_seconds, id=job.__name__,
                          args=(app, job, timing), next_run_time=datetime.now(zone))  # fmt: skip
    for job in NIGHTLY_JOBS:
        scheduler.add_job(run_job, "cron", hour=REFIT_HOUR, id=job.__name__,
                          args=(app, job, timing))  # fmt: skip
    return scheduler


def run(app: Flask, timing: Timing) -> None:
    """Run until SIGTERM or SIGINT; in-flight sweeps finish (their claims are leased anyway)."""
    scheduler = build(app, timing)
    logging.getLogger("apscheduler.scheduler").addFilter(_BusySweepFilter())

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("scheduler %s stopping (signal %d)", WORKER, signum)
        scheduler.shutdown(wait=False)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("scheduler %s started: sweeps every %ss", WORKER, timing.every_seconds)
    scheduler.start()
