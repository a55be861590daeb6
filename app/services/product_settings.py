"""A product's ops settings: preview what a change does to its prompts, then save it."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session
from sqlmodel import col

from app.forecast.prompt import NO_PROMPT, fixed_interval_prompt_days
from app.forecast.score import score_batch
from app.forecast.types import ProductSettings
from app.models import (
    OPEN_PROMPT_CONDITION,
    ActorType,
    Plan,
    PlanStatus,
    Product,
    Prompt,
    PromptStatus,
)
from app.services import forecasting
from app.services.audit import record
from app.services.plans import customer_zones
from app.services.prompts import cancel_open

PREVIEW_DAYS = 30


@dataclass(frozen=True)
class SettingsChange:
    default_interval_days: int
    min_interval_days: int
    max_interval_days: int
    lead_time_days: int
    target_stockout_risk: float
    prompt_expiry_days: int

    @classmethod
    def of(cls, product: Product) -> SettingsChange:
        return cls(product.default_interval_days, product.min_interval_days,
                   product.max_interval_days, product.lead_time_days,
                   product.target_stockout_risk, product.prompt_expiry_days)  # fmt: skip

    def for_forecaster(self) -> ProductSettings:
        return ProductSettings(
            default_interval_days=self.default_interval_days,
            min_interval_days=self.min_interval_days,
            max_interval_days=self.max_interval_days,
            lead_time_days=self.lead_time_days,
            target_stockout_risk=self.target_stockout_risk,
        )


@dataclass(frozen=True)
class Preview:
    """Prompts per day for the next ``PREVIEW_DAYS`` days with the current and the new
    settings, and how many of the product's active plans move."""

    days: list[date]
    before: list[int]
    after: list[int]
    earlier: int
    later: int
    unchanged: int
    gained: int  # plans that get a prompt date only with the new settings
    lost: int  # plans that lose theirs
    expiry_days_before: int
    expiry_days_after: int
    open_prompts: int  # sent, unanswered: they keep the expiry they were sent with

    @property
    def expiry_changes(self) -> bool:
        return self.expiry_days_before != self.expiry_days_after


def preview(session: Session, product: Product, change: SettingsChange, today: date) -> Preview:
    """What saving ``change`` would do, from the stored forecast parameters (nothing is
    written). Paused and stopped plans do not move; plans with a fixed interval move with
    the lead time only."""
    assert product.id is not None
    days = [today + timedelta(days=i) for i in range(PREVIEW_DAYS)]
    current = forecasting.current_params(session)
    plans = session.execute(
        select(col(Plan.customer_id), col(Plan.preferred_interval_days)).where(
            col(Plan.product_id) == product.id, col(Plan.status) == PlanStatus.ACTIVE
        )
    ).all()
    customers = [customer for customer, _ in plans]
    expiry = (product.prompt_expiry_days, change.prompt_expiry_days,
              _open_prompts(session, product.id))  # fmt: skip
    if current is None or not customers:
        return Preview(days, [0] * PREVIEW_DAYS, [0] * PREVIEW_DAYS, 0, 0, 0, 0, 0, *expiry)
    history = forecasting.load_history(session, set(customers))
    settings = forecasting.product_settings(session, history.batch.product_ids)
    origin = today + timedelta(days=1)  # as the service scores: today's events count
    this_product = history.pair_product_ids == product.id
    preferred = dict(plans)
    fixed_days = np.array(
        [preferred.get(int(c)) or 0 for c in history.pair_customer_ids[this_product]],
        dtype=np.int64,
    )
    fixed = fixed_days > 0

    def prompt_days(product_settings: dict[str, ProductSettings]) -> np.ndarray:
        scored = score_batch(history.batch, current[1], origin, forecasting.HORIZON_DAYS,
                             settings=product_settings, earliest_prompt=today)  # fmt: skip
        days: np.ndarray = scored.prompt_day[this_product].copy()
        days[fixed] = fixed_interval_prompt_days(
            scored.last_day[this_product][fixed], fixed_days[fixed],
            scored.lead_time[this_product][fixed], today.toordinal(),
        )  # fmt: skip
        return days

    old = prompt_days(settings)
    new = prompt_days(settings | {str(product.id): change.for_forecaster()})
    both = (old != NO_PROMPT) & (new != NO_PROMPT)
    return Preview(
        days=days,
        before=_per_day(old, today),
        after=_per_day(new, today),
        earlier=int(np.sum(both & (new < old))),
        later=int(np.sum(both & (new > old))),
        unchanged=int(np.sum(both & (new == old))),
        gained=int(np.sum((old == NO_PROMPT) & (new != NO_PROMPT))),
        lost=int(np.sum((old != NO_PROMPT) & (new == NO_PROMPT))),
        expiry_days_before=expiry[0],
        expiry_days_after=expiry[1],
        open_prompts=expiry[2],
    )


def _open_prompts(session: Session, product_id: int) -> int:
    """The product's sent, unanswered prompts (their expiry was fixed when they were sent)."""
    # From the product's plans to each one's open prompt, through the partial index.
    return session.scalar(
        select(func.count())
        .select_from(Plan)
        .join(Prompt, col(Prompt.plan_id) == col(Plan.id))
        .where(col(Plan.product_id) == product_id, text(f"prompt.{OPEN_PROMPT_CONDITION}"),
               col(Prompt.status) == PromptStatus.SENT)
    ) or 0  # fmt: skip


def _per_day(prompt_day: np.ndarray, today: date) -> list[int]:
    # A prompt date already past is due today.
    first = today.toordinal()
    counts = Counter(max(int(d), first) for d in prompt_day if d != NO_PROMPT)
    return [counts.get(first + i, 0) for i in range(PREVIEW_DAYS)]


def save(
    session: Session,
    product: Product,
    change: SettingsChange,
    actor: str,
    now: datetime,
    default_timezone: str,
) -> int:
    """Apply ``change``, audit it, and re-score the product's plans, each on its customer's
    own day; returns how many.

    Prompts not yet sent are withdrawn: they were timed by the old settings, and the
    scheduler makes them again from the new forecasts (a sent one stays answerable)."""
    before = asdict(SettingsChange.of(product))
    after = asdict(change)
    if before == after:
        return 0
    for name, value in after.items():
        setattr(product, name, value)
    product.updated_at = now
    record(session, now, ActorType.USER, actor, "update_settings", "product",
           product.external_id, before, after)  # fmt: skip
    session.flush()
    plans = session.execute(
        select(col(Plan.id), col(Plan.customer_id), col(Plan.product_id)).where(
            col(Plan.product_id) == product.id
        )
    ).all()
    cancel_open(session, [p.id for p in plans], "product settings changed", now,
                unsent_only=True)  # fmt: skip
    pairs = {(p.customer_id, p.product_id) for p in plans}
    zones = customer_zones(session, {c for c, _ in pairs}, default_timezone)
    return forecasting.reestimate_on_their_days(session, pairs, now, zones)
