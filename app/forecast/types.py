"""Frozen values that go in and out of the forecaster.

Dates are ``datetime.date``; inside the vectorised code a date is its proleptic ordinal
(``date.toordinal()``), so day arithmetic is integer arithmetic and needs no time zone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Literal

AnswerKind = Literal["skip", "snooze", "confirm"]
ANSWER_CODES: dict[str, int] = {"skip": 0, "snooze": 1, "confirm": 2}
"""Integer codes for answer kinds in the flat arrays of the batch scorer."""

Method = Literal["model", "population"]
"""``model``: the pair has >= 2 purchase days (its own intervals, shrunk toward the product).
``population``: cold start (exactly one purchase day); the product's population distribution."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A customer's answer to an earlier prompt.

    ``skip`` on ``answered_on`` means stock remained that day; ``snooze`` means stock will last at
    least until ``answered_on + snooze_days``; both right-censor the open interval. ``confirm``
    marks a run-out on ``answered_on`` (an observed event); an order placed within 7 days after it
    is taken as its fulfilment and dated on the confirm day.
    """

    answered_on: date
    kind: AnswerKind
    snooze_days: int = 0


@dataclass(frozen=True, slots=True)
class PairHistory:
    """One customer x product: purchase days with units, and the customer's answers.

    ``purchases`` are (day, units) tuples in any order; same-day lines are summed.
    ``customer_order_days`` are the distinct days the customer ordered anything (any product);
    they give the customer's visit cadence, recency and the visits since this pair's last
    purchase. Empty means "use this pair's own purchase days". ``customer_repeat_share`` is the
    share of the customer's purchase days (per product, any product) that were followed by
    another purchase of the same product (``features.customer_repeat_share``); None: the
    population's share. Rows dated on or after ``today`` are ignored by the forecaster.
    """

    purchases: tuple[tuple[date, float], ...]
    answers: tuple[Answer, ...] = ()
    customer_order_days: tuple[date, ...] = ()
    customer_repeat_share: float | None = None


@dataclass(frozen=True, slots=True)
class ProductSettings:
    """Ops settings of one product.

    ``default_interval_days`` is the prior interval for a product the fitted population has never
    seen (None: use the global fallback). The prompt is clamped so that the days between the last
    purchase and the prompt lie within [min_interval_days, max_interval_days].
    ``target_stockout_risk`` is the accepted chance that the reorder arrives after run-out.
    ``min_active_probability``: below this P(still active) no prompt is proposed (the plan looks
    stopped; ``Forecast.prompt_on`` is None).
    ``min_prompt_probability``: below this P(a purchase within 7 days from the prompt day) no
    prompt is proposed (it would likely be spam); None: the population's default
    (``PopulationParams.prompt_threshold``, chosen from data before the fit date).
    """

    default_interval_days: int | None = None
    min_interval_days: int = 1
    max_interval_days: int = 365
    lead_time_days: int = 3
    target_stockout_risk: float = 0.1
    min_active_probability: float = 0.5
    min_prompt_probability: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.target_stockout_risk < 0.5:
            raise ValueError("target_stockout_risk must be in (0, 0.5)")
        if not 1 <= self.min_interval_days <= self.max_interval_days:
            raise ValueError("need 1 <= min_interval_days <= max_interval_days")
        if self.lead_time_days < 0:
            raise ValueError("lead_time_days must be >= 0")
        if not 0.0 <= self.min_active_probability <= 1.0:
            raise ValueError("min_active_probability must be in [0, 1]")
        p = self.min_prompt_probability
        if p is not None and not 0.0 <= p <= 1.0:
            raise ValueError("min_prompt_probability must be in [0, 1] or None")


@dataclass(frozen=True, slots=True)
class Explanation:
    """The numbers the one-sentence explanation is built from (for localisation)."""

    n_purchases: int
    units_per_purchase: float
    interval_days: float
    runout_quantile: float
    runout_on: date
    lead_time_days: int
    method: Method


@dataclass(frozen=True, slots=True)
class Forecast:
    """The forecast for one pair at ``today``, conditional on the days already elapsed.

    Dates ``median_on``, ``q10_on``, ``q90_on`` describe the next purchase (run-out) date given the
    customer is still active; ``p_within_horizon`` is the unconditional P(a purchase in
    [today, today + horizon_days)) and ``p_active`` the posterior P(still active).
    ``prompt_on`` is None when ``p_active`` is below the product's ``min_active_probability``.
    ``n_intervals`` is the number of closed intervals the estimate rests on; ``rate_units_per_day``
    the pair's consumption rate.
    """

    last_purchased_on: date
    median_on: date
    q10_on: date
    q90_on: date
    p_within_horizon: float
    p_active: float
    prompt_on: date | None
    method: Method
    n_purchases: int
    n_intervals: int
    rate_units_per_day: float
    explanation: str
    explanation_values: Explanation
    horizon_days: int = field(default=28)
