"""The outbox: emails and webhooks written with the change that caused them, delivered later.

A row is written in the same transaction as its cause (a prompt sent, a reorder confirmed), so
either both happen or neither. Deliverers claim rows with a lease; a delivered row is marked in
its own short transaction right after the remote side accepted it, so a crash can repeat at most
the one message in flight, and that one with the same ``dedupe_key`` (the email's Message-ID,
the webhook's ``webhook-id``), which lets the receiver drop the repeat.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import Prepared, table_of
from app.models import ActorType, Outbox, OutboxKind, OutboxStatus, Reorder, ReorderStatus
from app.services.audit import record

CONFIRMED_EVENT = "reorder.confirmed"
"""The webhook of a confirmed reorder (its dedupe key ``msg_reorder.confirmed_<reorder id>``)."""

logger = logging.getLogger(__name__)

FIRST_RETRY = timedelta(seconds=30)
MAX_RETRY = timedelta(hours=6)


@dataclass(frozen=True)
class Claimed:
    id: int
    kind: OutboxKind
    event_type: str
    recipient: str
    payload: str
    dedupe_key: str
    attempts: int
    created_at: datetime


def enqueue(
    session: Session,
    kind: OutboxKind,
    dedupe_key: str,
    event_type: str,
    recipient: str,
    payload: str,
    now: datetime,
    available_at: datetime | None = None,
    customer_id: int | None = None,
) -> int:
    """Add a message to deliver (in the caller's transaction) no earlier than ``available_at``;
    returns its id."""
    message = NewMessage(kind, dedupe_key, event_type, recipient, payload, customer_id,
                         available_at)  # fmt: skip
    return enqueue_many(session, [message], now)[0]


@dataclass(frozen=True)
class NewMessage:
    kind: OutboxKind
    dedupe_key: str
    event_type: str
    recipient: str
    payload: str
    customer_id: int | None = None
    available_at: datetime | None = None  # default: now


def enqueue_many(session: Session, messages: list[NewMessage], now: datetime) -> list[int]:
    """Add several messages in one statement; returns their ids in order."""
    outbox = table_of(Outbox)
    rows = [
        {"kind": m.kind.value, "dedupe_key": m.dedupe_key, "status": OutboxStatus.PENDING.value,
         "event_type": m.event_type, "recipient": m.recipient, "customer_id": m.customer_id,
         "payload": m.payload, "attempts": 0, "available_at": m.available_at or now,
         "created_at": now,
         "updated_at": now}
        for m in messages
    ]  # fmt: skip
    result = session.execute(
        insert(outbox).returning(outbox.c.id, sort_by_parameter_order=True), rows
    )
    return list(result.scalars())


def claim(
    session: Session, worker: str, now: datetime, limit: int, lease: timedelta
) -> list[Claimed]:
    """Claim up to ``limit`` messages that are due, or whose previous claim's lease ran out.

    One guarded ``UPDATE ... RETURNING``; on PostgreSQL its row choice skips rows another
    deliverer is claiming at the same moment (``FOR UPDATE SKIP LOCKED``).
    """
    outbox = table_of(Outbox)
    due = (
        select(outbox.c.id)
        .where(
            or_(
                and_(outbox.c.status == OutboxStatus.PENDING.value, outbox.c.available_at <= now),
                and_(outbox.c.status == OutboxStatus.SENDING.value, outbox.c.lease_until < now),
            )
        )
        .order_by(outbox.c.available_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    statement = (
        update(outbox)
        .where(outbox.c.id.in_(due.scalar_subquery()))
        .values(
            status=OutboxStatus.SENDING.value,
            claimed_by=worker,
            lease_until=now + lease,
            updated_at=now,
        )
        .returning(
            outbox.c.id,
            outbox.c.kind,
            outbox.c.event_type,
            outbox.c.recipient,
            outbox.c.payload,
            outbox.c.dedupe_key,
            outbox.c.attempts,
            outbox.c.created_at,
        )
    )
    rows = session.execute(statement).all()
    claimed = [
        Claimed(
            r.id,
            OutboxKind(r.kind),
            r.event_type,
            r.recipient,
            r.payload,
            r.dedupe_key,
            r.attempts,
            r.created_at,
        )
        for r in rows
    ]
    return sorted(claimed, key=lambda c: c.id)


def mark_delivered(session: Session, outbox_id: int, worker: str, now: datetime) -> bool:
    """Record a delivery; False if the claim was lost (the lease ran out and another took it)."""
    params = {"outbox_id": outbox_id, "worker": worker, "now": now}
    return bool(_MARK_DELIVERED.execute(session, params))


def _mark_delivered_statement() -> Prepared:
    # Built once, and run on the driver's cursor: this runs after every single delivery.
    outbox = table_of(Outbox)
    return Prepared(
        update(outbox)
        .where(
            outbox.c.id == bindparam("outbox_id"),
            outbox.c.status == OutboxStatus.SENDING.value,
            outbox.c.claimed_by == bindparam("worker"),
        )
        .values(
            status=OutboxStatus.DELIVERED.value,
            attempts=outbox.c.attempts + 1,
            delivered_at=bindparam("now"),
            lease_until=None,
            last_error=None,
            updated_at=bindparam("now"),
        )
    )


_MARK_DELIVERED = _mark_delivered_statement()


def mark_failed(
    session: Session,
    outbox_id: int,
    worker: str,
    now: datetime,
    error: str,
    retry_for: timedelta,
    permanent: bool = False,
) -> OutboxStatus | None:
    """Record a failed attempt: retry later with exponential backoff, the last try at
    ``retry_for`` after the message was first due; a failure then (or a ``permanent`` one,
    which no retry can mend) dead-letters it. None if the claim was lost."""
    row = session.get(Outbox, outbox_id, with_for_update=True)
    if row is None or row.status is not OutboxStatus.SENDING or row.claimed_by != worker:
        return None
    if row.attempts == 0 and row.available_at > row.created_at:
        # Written ahead of its time (a confirm's webhook waits out the undo window): the
        # retry window counts from when it was due, as from a replay (``created_at``).
        row.created_at = row.available_at
    row.attempts += 1
    row.last_error = error[:1000]
    row.lease_until = None
    row.updated_at = now
    give_up_at = row.created_at + retry_for
    if permanent or now >= give_up_at:
        row.status = OutboxStatus.DEAD
        logger.warning("outbox %s (%s) dead after %d attempts: %s", row.id, row.event_type,
                       row.attempts, error)  # fmt: skip
    else:
        row.status = OutboxStatus.PENDING
        row.available_at = min(now + backoff(row.attempts), give_up_at)
    return row.status


def backoff(attempts: int, first: timedelta = FIRST_RETRY, cap: timedelta = MAX_RETRY) -> timedelta:
    """Wait after the ``attempts``-th failure: ``first``, doubling each time, at most ``cap``
    (a delivery's: 30 s, 1 min, 2 min, ... capped at 6 h)."""
    wait: timedelta = first * 2 ** min(attempts - 1, 20)
    return min(wait, cap)


def replay(session: Session, outbox_id: int, now: datetime, actor: str) -> Outbox:
    """Send a dead (or delivered) message again, from now, with a fresh retry window.

    Raises LookupError for an unknown id and ValueError for a message still on its way.
    """
    row = session.get(Outbox, outbox_id, with_for_update=True)
    if row is None:
        raise LookupError(f"no outbox message {outbox_id}")
    if row.status not in (OutboxStatus.DEAD, OutboxStatus.DELIVERED):
        raise ValueError(f"outbox message {outbox_id} is {row.status.value}, not dead or delivered")
    if row.event_type == CONFIRMED_EVENT:
        # A confirm sent again after the cancel would have the backend ship a cancelled order.
        reorder = session.get(Reorder, int(row.dedupe_key.rsplit("_", 1)[1]))
        if reorder is not None and reorder.status is ReorderStatus.CANCELLED:
            raise ValueError(f"outbox message {outbox_id} confirms a reorder cancelled since")
    before = {"status": row.status.value, "attempts": row.attempts}
    row.status = OutboxStatus.PENDING
    row.attempts = 0
    row.available_at = now
    # The retry window counts from here: a replay gets the full window again.
    row.created_at = now
    row.updated_at = now
    row.last_error = None
    record(session, now, ActorType.USER, actor, "replay", "outbox", str(row.id), before,
           {"status": row.status.value, "attempts": 0})  # fmt: skip
    return row


def withdraw(session: Session, dedupe_key: str, now: datetime) -> bool:
    """Withdraw a message that is not delivered: waiting, dead, or on its way (its sender's
    claim is then lost, so a failed attempt is not retried). An undone confirm's webhook (still
    waiting for its hand-off), or the confirm of a reorder cancelled by ops, which must not
    reach the backend after the cancel by a retry or a replay."""
    result = session.execute(
        update(Outbox)
        .where(col(Outbox.dedupe_key) == dedupe_key, col(Outbox.status).in_(WAITING_OR_DEAD))
        .values(status=OutboxStatus.CANCELLED, lease_until=None, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


WAITING_OR_DEAD = (OutboxStatus.PENDING, OutboxStatus.SENDING, OutboxStatus.DEAD)


def backlog(
    session: Session, statuses: tuple[OutboxStatus, ...] | None = None
) -> dict[tuple[str, str], int]:
    """Message counts by (kind, status), of every status or only ``statuses`` (a few statuses
    are answered by the status index alone; delivered messages are the bulk of the table)."""
    query = select(col(Outbox.kind), col(Outbox.status), func.count()).group_by(
        col(Outbox.kind), col(Outbox.status)
    )
    if statuses is not None:
        query = query.where(col(Outbox.status).in_(statuses))
    return {(kind.value, status.value): n for kind, status, n in session.execute(query)}


def dead_letters(session: Session, limit: int = 50) -> list[Outbox]:
    """The most recent dead messages, newest first."""
    query = (
        select(Outbox)
        .where(col(Outbox.status) == OutboxStatus.DEAD)
        .order_by(col(Outbox.updated_at).desc(), col(Outbox.id).desc())
        .limit(limit)
    )
    return list(session.scalars(query))
