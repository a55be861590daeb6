"""Scheduler processes against one database: exactly-once sending, and recovery from kill -9.

Real parts throughout: ``flask scheduler run`` subprocesses, aiosmtpd as the SMTP server, and
(with ``--db=postgres``) a real PostgreSQL server.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlmodel import col

from app.db import get_engine, get_session
from app.models import Outbox, OutboxStatus, Prompt, PromptStatus
from tests.conftest import app_environ
from tests.scheduler.conftest import SmtpServer, insert_due_prompts

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FLASK = str(Path(sys.executable).with_name("flask"))


def _start_scheduler(
    database_url: str, smtp_url: str, log: Path, lease: int
) -> subprocess.Popen[bytes]:
    env = os.environ | app_environ(database_url, KAIDOKI_SMTP_URL=smtp_url)
    command = [FLASK, "--app", "wsgi", "scheduler", "run", "--every", "0.3",
               "--lease", str(lease), "--batch", "100"]  # fmt: skip
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _expected_ids(app) -> set[str]:
    with app.app_context():
        keys = get_session().scalars(select(col(Outbox.dedupe_key))).all()
    return {f"<{k}>" for k in keys}


def test_two_schedulers_send_each_of_2000_due_prompts_exactly_once(app, database_url, tmp_path):
    smtp = SmtpServer()
    smtp.start()
    with app.app_context():
        insert_due_prompts(get_engine(), 2000, datetime.now(UTC))
    workers = [
        _start_scheduler(database_url, smtp.url, tmp_path / f"scheduler{i}.log", lease=60)
        for i in range(2)
    ]
    try:
        _wait_for(lambda: len(smtp.inbox.messages) >= 2000, 240, "2,000 emails")
        time.sleep(2)  # a late duplicate would arrive now
    finally:
        for worker in workers:
            _stop(worker)
        smtp.stop()
    ids = smtp.inbox.message_ids()
    assert len(ids) == 2000
    assert len(set(ids)) == 2000
    assert set(ids) == _expected_ids(app)
    with app.app_context():
        session = get_session()
        sent = session.scalar(
            select(func.count()).where(Prompt.status == PromptStatus.SENT)  # type: ignore[arg-type]
        )
        assert sent == 2000
        claimed_by = session.scalars(select(col(Outbox.claimed_by))).all()
    # Both processes did part of the work.
    assert len(set(claimed_by)) == 2, Counter(claimed_by)


def test_scheduler_killed_mid_dispatch_sends_everything_after_restart(app, database_url, tmp_path):
    smtp = SmtpServer()
    smtp.start()
    with app.app_context():
        insert_due_prompts(get_engine(), 2000, datetime.now(UTC))
    log = tmp_path / "scheduler.log"
    first = _start_scheduler(database_url, smtp.url, log, lease=3)
    try:
        _wait_for(lambda: len(smtp.inbox.messages) >= 300, 120, "the first emails")
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed_at = len(smtp.inbox.messages)
        second = _start_scheduler(database_url, smtp.url, log, lease=3)
        try:
            _wait_for(lambda: len(set(smtp.inbox.message_ids())) >= 2000, 240, "every email")
            time.sleep(4)  # past the lease: a reclaimed duplicate would arrive now
        finally:
            _stop(second)
    finally:
        if first.poll() is None:
            first.kill()
        smtp.stop()
    assert killed_at < 2000, "the kill came too late to test anything"
    ids = smtp.inbox.message_ids()
    assert set(ids) == _expected_ids(app)
    repeats = [mid for mid, n in Counter(ids).items() if n > 1]
    assert len(repeats) <= 1, repeats  # at most the message in flight, with its Message-ID
    with app.app_context():
        statuses = Counter(get_session().scalars(select(col(Outbox.status))).all())
    assert statuses == {OutboxStatus.DELIVERED: 2000}
