"""The audit log: every change made by a person or an API client."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert
from sqlalchemy.orm import Session

from app.db import Prepared, table_of
from app.models import ActorType, AuditLog

_COLUMNS = ("at", "actor_type", "actor", "action", "entity_type", "entity_id", "before", "after")
_INSERT_ONE = Prepared(
    # inline: no RETURNING of the new id (PostgreSQL would add one), nobody reads it.
    insert(table_of(AuditLog)).values({name: bindparam(name) for name in _COLUMNS}).inline()
)


def record(
    session: Session,
    at: datetime,
    actor_type: ActorType,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """One audit row, inserted at once (on the driver's cursor: every answer writes one)."""
    _INSERT_ONE.execute(session, {
        "at": at, "actor_type": actor_type, "actor": actor, "action": action,
        "entity_type": entity_type, "entity_id": entity_id, "before": before, "after": after,
    })  # fmt: skip


def record_many(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert audit rows at once (the keys of AuditLog); batch syncs write many.

    Plain Core executemany, not ``insert_many``: the JSON columns need the driver-specific
    casts SQLAlchemy adds, and a batch writes only a handful of audit rows.
    """
    if rows:
        session.execute(table_of(AuditLog).insert(), rows)
