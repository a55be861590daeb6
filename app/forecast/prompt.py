"""The prompt date and its one-sentence explanation.

The prompt reads the predictive distribution, not the median: with lead time L and target
stock-out risk r, prompt_on = quantile_r(run-out date) - L, so that in (1 - r) of cases the
reorder can arrive before run-out. It is then clamped so that the days since the last purchase
lie within [min_interval_days, max_interval_days], and never before ``today``. No prompt (-1 /
None) when P(still active) is below the product's ``min_active_probability``, and (in the scorer)
when P(a purchase in the ``PROMPT_WINDOW_DAYS`` from the prompt day, more for a lead time
longer than the default: ``useful_window_days``) is below the product's
``min_prompt_probability`` (default: the population's ``prompt_threshold``, learned before
``today``): a prompt that is unlikely to be useful is spam.
"""

from __future__ import annotations

from datetime import date

import numpy as np

from app.forecast.features import F64, I64
from app.forecast.types import Explanation, ProductSettings

NO_PROMPT = -1
PROMPT_WINDOW_DAYS = 7
DEFAULT_LEAD_TIME_DAYS = ProductSettings().lead_time_days

# Why a pair with purchases has no prompt (``BatchForecast.no_prompt``).
PROMPTED = 0
LOOKS_STOPPED = 1  # P(still active) below the product's min_active_probability
UNLIKELY = 2  # P(a purchase within useful_window_days of the prompt day) below the threshold


def prompt_days(
    runout_risk_day: I64,
    last_day: I64,
    today: int,
    lead_time_days: I64,
    min_interval_days: I64,
    max_interval_days: I64,
    p_active: F64,
    min_active_probability: F64,
) -> I64:
    """Vectorised prompt day ordinals; ``NO_PROMPT`` where the pair looks stopped."""
    day = runout_risk_day - lead_time_days
    day = np.clip(day, last_day + min_interval_days, last_day + max_interval_days)
    day = np.maximum(day, today)
    return np.where(p_active >= min_active_probability, day, NO_PROMPT).astype(np.int64)


def fixed_interval_prompt_days(
    last_day: I64 | int, preferred_interval_days: I64 | int, lead_time_days: I64 | int, today: int
) -> I64:
    """Prompt day ordinals of plans with a fixed interval (set by the customer or ops), which
    replaces the estimated date: the lead time before the interval since the last purchase
    ends, never before ``today``."""
    day = np.maximum(last_day + preferred_interval_days - lead_time_days, today)
    return np.asarray(day, dtype=np.int64)


def prompt_clause(v: Explanation, prompt_on: date | None, last_on: date, today: date) -> str:
    """Why the prompt is not on its natural day (risk-quantile run-out minus lead time), as a
    clause to append to ``explain``; empty when it is, or when there is no prompt."""
    if prompt_on is None:
        return ""
    natural = v.runout_on.toordinal() - v.lead_time_days
    if prompt_on.toordinal() == natural:
        return ""
    since = (prompt_on - last_on).days
    if prompt_on == today and natural < today.toordinal():
        # Dated, not "today": the text is shown for days after it was written, and the prompt
        # may wait for the customer's send hour or a rest.
        passed = date.fromordinal(natural)
        return f"; that day ({_day_month(passed)}) had passed on {_day_month(today)}, so asking at the first chance"  # noqa: E501
    if prompt_on.toordinal() > natural:
        return f"; asking on {_day_month(prompt_on)}, the product's minimum of {since} days after the last order"  # noqa: E501
    if prompt_on == today:
        # The maximum's day may have passed (the prompt is at the first chance since).
        return f"; asking on {_day_month(prompt_on)}, {since} days after the last order: the product's maximum interval has been reached"  # noqa: E501
    return f"; asking on {_day_month(prompt_on)}, the product's maximum of {since} days after the last order"  # noqa: E501


def useful_window_days(lead_time_days: I64) -> I64:
    """The days from the prompt day in which a purchase makes a prompt useful (the gate):
    ``PROMPT_WINDOW_DAYS``, plus the lead time beyond the default one, since a longer
    delivery prompts that much earlier before the run-out (the threshold is learnt at the
    default lead time)."""
    extra = np.maximum(np.asarray(lead_time_days) - DEFAULT_LEAD_TIME_DAYS, 0)
    return np.asarray(PROMPT_WINDOW_DAYS + extra, dtype=np.int64)


def no_prompt_clause(reason: int, value: float, limit: float, window_days: int) -> str:
    """Why there is no prompt, as a clause to append to ``explain``: ``value`` is the
    probability that fell short of ``limit`` (``LOOKS_STOPPED``: P(still active) against the
    product's minimum; ``UNLIKELY``: P(a purchase in the ``window_days`` from the prompt
    day) against the product's or the population's threshold). Empty for ``PROMPTED``."""
    if reason == LOOKS_STOPPED:
        return (f"; no prompt: the customer looks to have stopped buying it (still buying: "
                f"{value:.0%}, below the product's {limit:.0%})")  # fmt: skip
    if reason == UNLIKELY:
        return (f"; no prompt: a purchase in the {window_days} days from the prompt day "
                f"is {value:.0%} likely, below the {limit:.0%} a prompt needs")  # fmt: skip
    return ""


def _day_month(d: date) -> str:
    return f"{d.day} {d.strftime('%b')}"


def explain(v: Explanation) -> str:
    """English sentence, e.g. "7 purchases, about 1 unit every 24 days; 90 % chance of running
    out after 3 Dec; delivery takes 3 days"."""
    units = f"{v.units_per_purchase:.3g}"
    unit_word = "unit" if units == "1" else "units"
    if v.method == "population":
        head = f"1 purchase so far, so typical for this product: {units} {unit_word} lasts about "
        head += f"{v.interval_days:.0f} days"
    else:
        head = f"{v.n_purchases} purchases, about {units} {unit_word} every "
        head += f"{v.interval_days:.0f} days"
    chance = round(100 * (1 - v.runout_quantile))
    return (
        f"{head}; {chance} % chance of running out after {_day_month(v.runout_on)}; "
        f"delivery takes {v.lead_time_days} days"
    )
