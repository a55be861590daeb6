"""What the admin pages read (no writes here: changes go through ``app.services``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.models import (
    AuditLog,
    Outbox,
    OutboxStatus,
    Plan,
    PlanStatus,
    Prompt,
    PromptStatus,
)

PAGE_SIZE = 50
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    pages: int
    total: int


def paginate(session: Session, query: Select[Any], page: int) -> Page:
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    pages = max(-(-total // PAGE_SIZE), 1)
    page = min(max(page, 1), pages)
    items = list(session.scalars(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)))
    return Page(items, page, pages, total)


@dataclass(frozen=True)
class AnswerRates:
    days: int
    sent: int
    confirmed: int
    skipped: int
    snoozed: int
    expired: int

    def rate(self, count: int) -> str:
        return f"{100 * count / self.sent:.0f} %" if self.sent else "–"


def answer_rates(session: Session, now: datetime, days: int) -> AnswerRates:
    """Prompts sent in the last ``days`` days and what became of them."""
    rows = session.execute(
        select(col(Prompt.status), func.count())
        .where(col(Prompt.sent_at) >= now - timedelta(days=days))
        .group_by(col(Prompt.status))
    ).all()
    counts = {status: n for status, n in rows}
    return AnswerRates(
        days,
        sum(counts.values()),
        counts.get(PromptStatus.CONFIRMED, 0),
        counts.get(PromptStatus.SKIPPED, 0),
        counts.get(PromptStatus.SNOOZED, 0),
        counts.get(PromptStatus.EXPIRED, 0),
    )


def active_plans(session: Session) -> int:
    query = select(func.count()).select_from(Plan).where(col(Plan.status) == PlanStatus.ACTIVE)
    return session.scalar(query) or 0


def prompts_per_day(session: Session, today: date, days: int = 30) -> list[int]:
    """Active plans by prompt date for the next ``days`` days (overdue ones count today)."""
    end = today + timedelta(days=days)
    rows = session.execute(
        select(col(Plan.prompt_on), func.count())
        .where(col(Plan.status) == PlanStatus.ACTIVE, col(Plan.prompt_on) < end)
        .group_by(col(Plan.prompt_on))
    ).all()
    counts = [0] * days
    for day, n in rows:
        if day is not None:
            counts[max((day - today).days, 0)] += n
    return counts


def outbox_backlog(session: Session) -> dict[tuple[str, str], int]:
    rows = session.execute(
        select(col(Outbox.kind), col(Outbox.status), func.count()).group_by(
            col(Outbox.kind), col(Outbox.status)
        )
    )
    return {(kind.value, status.value): n for kind, status, n in rows}


def deliveries(status: OutboxStatus | None, kind: str | None) -> Select[Any]:
    query = select(Outbox).order_by(col(Outbox.id).desc())
    if status is not None:
        query = query.where(col(Outbox.status) == status)
    if kind:
        query = query.where(col(Outbox.kind) == kind)
    return query


def audit_entries(actor: str | None, entity_type: str | None, action: str | None) -> Select[Any]:
    query = select(AuditLog).order_by(col(AuditLog.id).desc())
    if actor:
        query = query.where(col(AuditLog.actor).contains(actor))
    if entity_type:
        query = query.where(col(AuditLog.entity_type) == entity_type)
    if action:
        query = query.where(col(AuditLog.action) == action)
    return query
