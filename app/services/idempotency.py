"""Remembered first responses to ``Idempotency-Key`` requests, for a limited time.

A key is remembered for ``KAIDOKI_IDEMPOTENCY_HOURS``: long enough for any sane retry, short
enough that the stored responses (a batch answer is ~100 kB) do not pile up for ever. A
record past that age is treated as gone even before the scheduler's sweep deletes it, so a
key behaves the same whenever the sweep last ran.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import add_unless_taken
from app.models import IdempotencyRecord

logger = logging.getLogger(__name__)

PURGE_CHUNK = 2000
"""Records deleted per statement: a first sweep over a large backlog must not hold SQLite's
write lock (and so every sync and answer) for long."""


def find_record(
    session: Session, api_client_id: int, key: str, now: datetime, keep: timedelta
) -> IdempotencyRecord | None:
    """The client's live record for ``key``; None when there is none or it is older than
    ``keep`` (an old one is deleted, so that the key can be recorded afresh)."""
    found = session.scalars(
        select(IdempotencyRecord).where(
            col(IdempotencyRecord.api_client_id) == api_client_id,
            col(IdempotencyRecord.key) == key,
        )
    ).one_or_none()
    if found is not None and found.created_at <= now - keep:
        # A statement, not ``session.delete``: a concurrent retry may delete the same record
        # first, and the ORM would call its delete of no row an error.
        session.execute(delete(IdempotencyRecord).where(col(IdempotencyRecord.id) == found.id))
        session.expunge(found)
        return None
    return found


def claim_key(
    session: Session,
    api_client_id: int,
    key: str,
    method: str,
    path: str,
    request_sha256: str,
    now: datetime,
) -> IdempotencyRecord | None:
    """Record, before the request does anything, that it is the one answering ``key``;
    returns the record, whose response the caller fills in. None when another request
    recorded the key first: look its record up again with ``find_record``.

    Retries sent at the same moment all find no record. The unique key makes the others wait
    here (on PostgreSQL) until the first commits, and then fail, instead of each applying the
    request and failing only at commit; if the first rolls back, the next one goes ahead.
    """
    claimed = IdempotencyRecord(
        api_client_id=api_client_id,
        key=key,
        method=method,
        path=path,
        request_sha256=request_sha256,
        response_status=0,  # filled in before commit; the record is not seen before then
        response_body="",
        created_at=now,
    )
    if add_unless_taken(session, claimed) is not None:
        logger.info(
            "idempotency key %r of client %s was claimed by a concurrent request",
            key,
            api_client_id,
        )
        return None
    return claimed


def purge_expired(session: Session, now: datetime, keep: timedelta) -> int:
    """Delete up to ``PURGE_CHUNK`` records older than ``keep``; returns how many (call again
    while it returns ``PURGE_CHUNK``)."""
    oldest = (
        select(col(IdempotencyRecord.id))
        .where(col(IdempotencyRecord.created_at) <= now - keep)
        .order_by(col(IdempotencyRecord.created_at))
        .limit(PURGE_CHUNK)
    )
    ids = list(session.scalars(oldest))
    if ids:
        session.execute(delete(IdempotencyRecord).where(col(IdempotencyRecord.id).in_(ids)))
        logger.info("deleted %d idempotency records older than %s", len(ids), keep)
    return len(ids)
