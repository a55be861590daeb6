"""Scoring with stored population parameters: vectorised for all pairs, and for one pair.

Every forecast is conditional on what is known at ``today``: the open interval since the last
purchase (and any skip / snooze after it) is right-censored, so with p the activity probability
and S the timing survival,

* P(still active) = p S(c) / (1 - p + p S(c)),
* P(purchase in [today, today + H)) = p (S(c) - S(e + H)) / (1 - p + p S(c)),
* quantiles of the next purchase given active: S(t) = (1 - q) S(c),

with e the days elapsed and c >= e the censoring point (both minus the half-day continuity
correction). The 80 % interval uses the calibrated tail level
(``PopulationParams.interval_alpha``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray
from scipy import special

from app.forecast import features as ft
from app.forecast.features import F64, I64, BatchInput
from app.forecast.model import PopulationParams
from app.forecast.prompt import (
    LOOKS_STOPPED,
    NO_PROMPT,
    PROMPTED,
    UNLIKELY,
    explain,
    no_prompt_clause,
    prompt_clause,
    prompt_days,
    useful_window_days,
)
from app.forecast.types import (
    ANSWER_CODES,
    Explanation,
    Forecast,
    Method,
    PairHistory,
    ProductSettings,
)

METHOD_NONE, METHOD_POPULATION, METHOD_MODEL = -1, 0, 1
METHOD_NAMES = {METHOD_POPULATION: "population", METHOD_MODEL: "model"}


@dataclass(frozen=True, slots=True)
class Prepared:
    """Per pair (all arrays of length n_pairs): state at ``today`` and the model's parameters."""

    today: int
    n_purchases: I64
    last_day: I64
    last_units: F64
    censor_ge: I64
    mu: F64
    sigma: F64
    eta: F64
    rate: F64
    alpha: F64  # calibrated tail level of the 80 % interval [q_alpha, q_(1-alpha)], per pair
    answered: NDArray[np.bool_]  # skip / snooze since the last purchase: active
    activity_x: F64  # covariates of the activity recalibration (column 1 filled by activity())
    activity: F64  # its coefficients (empty: none)


def _product_arrays(
    params: PopulationParams, product_ids: tuple[str, ...], default_interval: F64 | None
) -> tuple[F64, F64, F64]:
    """Per product code: norm, repeat logit and momentum as fitted (``product_norms``)."""
    norm = np.full(len(product_ids), params.global_norm)
    repeat = np.full(len(product_ids), params.global_repeat)
    momentum = np.zeros(len(product_ids))
    for i, pid in enumerate(product_ids):
        got = params.product_norms.get(pid)
        if got is not None:
            norm[i], repeat[i], momentum[i] = got
        elif default_interval is not None and np.isfinite(default_interval[i]):
            norm[i] = np.log(default_interval[i])
    return norm, repeat, momentum


def prepare(
    batch: BatchInput,
    params: PopulationParams,
    today: int,
    default_interval: F64 | None = None,
    customer_repeat: F64 | None = None,
) -> Prepared:
    """State of every pair at ``today`` (day ordinal) and its model parameters.

    ``default_interval`` (per product code, NaN for none) is the prior interval for products the
    parameters have never seen. ``customer_repeat`` (per pair, logit) overrides the customer
    repeat habit computed from the batch.
    """
    pur = ft.purchases_before(batch, today)
    stats = ft.row_stats(pur)
    has = pur.count > 0
    last_row = np.where(has, pur.start + pur.count - 1, 0)
    if pur.pair.shape[0] == 0:
        last_row = np.zeros(batch.n_pairs, dtype=np.int64)
        pur = ft.Purchases(
            np.zeros(1, np.int64), np.zeros(1, np.int64), np.ones(1), pur.start, pur.count,
            pur.censor_ge, pur.answered,
        )  # fmt: skip
        stats = ft.row_stats(pur)
    # Momentum as of the fit, computed from every customer's purchases: a batch of one
    # customer's pairs (an order sync) could not tell it.
    norm, repeat, momentum = _product_arrays(params, batch.product_ids, default_interval)
    n_cust = int(batch.pair_customer.max(initial=-1)) + 1
    cv = ft.visit_days(pur, batch.pair_customer, n_cust)
    nv, span = ft.customer_visits(pur, batch.pair_customer, n_cust, cv)
    lcad = ft.log_cadence_from_counts(nv, span, params.global_log_cadence)[batch.pair_customer]
    prod = batch.pair_product
    last_units = pur.units[last_row]
    x, z, w = ft.design(
        stats.k[last_row],
        stats.log_gap_cumsum[last_row],
        np.log(np.maximum(last_units, 1e-9)),
        stats.mean_log_units_before[last_row],
        norm[prod],
        repeat[prod],
        lcad,
    )
    beta, gamma, delta = params.split()
    mu = x @ beta
    # A floor on the log-scale: fitted on a few clockwork pairs (every 30 days exactly) the
    # scale collapses, and one day late would read as certainly stopped.
    sigma = np.maximum(np.exp(w @ delta), SIGMA_FLOOR)
    eta = z @ gamma
    last_day = pur.day[last_row]
    first_day = pur.day[np.where(has, pur.start, 0)]
    # Units per day: units consumed over the pair's span (the last purchase is still in use);
    # with one purchase, its units over the model's median interval.
    units_all = np.bincount(pur.pair, weights=pur.units, minlength=batch.n_pairs)
    units_before_last = units_all - last_units
    span_days = (last_day - first_day).astype(np.float64)
    rate = np.where(
        pur.count >= 2, units_before_last / np.maximum(span_days, 1.0), last_units / np.exp(mu)
    )
    alpha = np.where(
        pur.count >= 2, params.interval_alpha["model"], params.interval_alpha["population"]
    )
    if customer_repeat is None:
        customer_repeat = ft.customer_repeat_logit(
            pur, stats, batch.pair_customer, n_cust, params.global_customer_share
        )[batch.pair_customer]
    since, recency, n_visits = ft.visits_since(pur, batch.pair_customer, last_day, today, cv)
    (v28, p28), (v56, p56) = ft.recent_counts(pur, batch.pair_customer, today, (28, 56), cv)
    vx = ft.activity_design(
        ft.WhetherInputs(
            pur.count, today - last_day, today - first_day, customer_repeat, recency, since,
            n_visits, v28, v56, p28, p56, repeat[prod], norm[prod], lcad, momentum[prod],
        )
    )  # fmt: skip
    return Prepared(
        today, pur.count, np.where(has, last_day, -1), last_units, pur.censor_ge, mu, sigma, eta,
        np.where(has, rate, np.nan), alpha, pur.answered, vx,
        np.asarray(params.activity, dtype=np.float64),
    )  # fmt: skip


SIGMA_FLOOR = 0.1
"""Least log-scale of a pair's timing (about +/- 10 % of its interval); real data: 0.4-0.9."""

NOMINAL_TAIL = 0.1
"""Each tail of the nominal 80 % interval."""


MAX_WAIT_DAYS = 36_525
"""The longest predicted wait for a next purchase (a hundred years)."""


def quantile_days(
    prep: Prepared, mask: NDArray[np.bool_], qs: tuple[float, ...]
) -> tuple[I64, ...]:
    """Day ordinals of quantiles ``qs`` of the next purchase given active and not yet bought."""
    mu, last = prep.mu[mask], prep.last_day[mask]
    c = prep.censor_ge[mask]
    sig = prep.sigma[mask]
    log_s_c = special.log_ndtr(-(np.log(np.maximum(c, 1) - 0.5) - mu) / sig)
    out = []
    for q in qs:
        zq = -special.ndtri_exp(np.log1p(-q) + log_s_c)
        # At most a century: a huge last purchase (40,000 units) would otherwise last past
        # the year 9999, which no date can hold.
        t = np.minimum(np.exp(mu + sig * zq), MAX_WAIT_DAYS)
        out.append(last + np.maximum(np.rint(t).astype(np.int64), c))
    return tuple(out)


def activity(prep: Prepared, horizon_days: int) -> tuple[F64, F64]:
    """P(still active) and P(purchase within ``horizon_days`` from today), per pair.

    With a fitted whether-layer (``PopulationParams.activity``: coefficients for pairs with
    history, then for cold starts), P(within) = expit(V lambda), V holding the timing model's
    logit P(within) and customer-level activity (``features.V_NAMES``); P(active) is the
    implied P(within) / P(within | active), at most 1. A skip or snooze since the last
    purchase keeps the pair active (the timing model's P(within | active)).
    """
    p_model, q = model_activity(prep, horizon_days)
    if prep.activity.shape[0] == 0:
        return p_model, p_model * q
    v = prep.activity_x.copy()
    v[:, 1] = special.logit(np.clip(p_model * q, 1e-9, 1 - 1e-9))
    k = v.shape[1]
    lam = np.where((prep.n_purchases >= 2)[:, None], prep.activity[:k], prep.activity[k : 2 * k])
    p_within = special.expit(np.einsum("ij,ij->i", v, lam))
    p_within = np.where(prep.answered, q, p_within)
    p_active = np.clip(p_within / np.maximum(q, 1e-12), 0.0, 1.0)
    return p_active, p_within


def purchase_probability(prep: Prepared, p_active: F64, day: I64, days: int | I64) -> F64:
    """P(a purchase in [day, day + days)) per pair: P(active) times the timing mass of that
    window given no purchase through the censoring point."""
    c = np.maximum(prep.censor_ge, 1) - 0.5
    lo = np.maximum(day - prep.last_day - 0.5, c)
    hi = np.maximum(day + days - prep.last_day - 0.5, c)
    log_s_c = special.log_ndtr(-(np.log(c) - prep.mu) / prep.sigma)
    log_s_lo = special.log_ndtr(-(np.log(lo) - prep.mu) / prep.sigma)
    log_s_hi = special.log_ndtr(-(np.log(hi) - prep.mu) / prep.sigma)
    mass = np.exp(log_s_lo - log_s_c) - np.exp(log_s_hi - log_s_c)
    return np.asarray(p_active * np.clip(mass, 0.0, 1.0), dtype=np.float64)


def model_activity(prep: Prepared, horizon_days: int) -> tuple[F64, F64]:
    """The timing model's own P(still active) and P(purchase within H | active), per pair."""
    elapsed = prep.today - prep.last_day
    c = np.maximum(prep.censor_ge, 1) - 0.5
    end = elapsed + horizon_days - 0.5
    log_s_c = special.log_ndtr(-(np.log(c) - prep.mu) / prep.sigma)
    log_s_end = special.log_ndtr(-(np.log(np.maximum(end, 0.5)) - prep.mu) / prep.sigma)
    eta = np.where(prep.answered, np.inf, prep.eta)
    log_p = -np.logaddexp(0.0, -eta)
    log_1mp = -np.logaddexp(0.0, eta)
    log_a = np.logaddexp(log_1mp, log_p + log_s_c)
    p_active = np.exp(log_p + log_s_c - log_a)
    drop = np.where(end > c, -np.expm1(np.minimum(log_s_end - log_s_c, 0.0)), 0.0)
    return p_active, drop


@dataclass(frozen=True, slots=True)
class SettingsArrays:
    """Product settings as arrays aligned with ``BatchInput.product_ids``."""

    default_interval: F64
    min_interval: I64
    max_interval: I64
    lead_time: I64
    risk: F64
    min_active: F64
    min_prompt: F64  # NaN: the population's learned default

    @classmethod
    def build(
        cls,
        product_ids: tuple[str, ...],
        settings: Mapping[str, ProductSettings] | None = None,
        default: ProductSettings | None = None,
    ) -> SettingsArrays:
        default = default or ProductSettings()
        chosen = [(settings or {}).get(pid, default) for pid in product_ids]
        return cls(
            np.array([np.nan if s.default_interval_days is None else s.default_interval_days
                      for s in chosen], dtype=np.float64),
            np.array([s.min_interval_days for s in chosen], dtype=np.int64),
            np.array([s.max_interval_days for s in chosen], dtype=np.int64),
            np.array([s.lead_time_days for s in chosen], dtype=np.int64),
            np.array([s.target_stockout_risk for s in chosen], dtype=np.float64),
            np.array([s.min_active_probability for s in chosen], dtype=np.float64),
            np.array([np.nan if s.min_prompt_probability is None else s.min_prompt_probability
                      for s in chosen], dtype=np.float64),
        )  # fmt: skip


@dataclass(frozen=True, slots=True)
class BatchForecast:
    """Per-pair arrays (length n_pairs). Days are ordinals; -1 where undefined (no purchase, or
    no prompt). ``method`` is METHOD_MODEL / METHOD_POPULATION / METHOD_NONE (no purchase)."""

    today: int
    horizon_days: int
    n_purchases: I64
    last_day: I64
    median_day: I64
    q10_day: I64
    q90_day: I64
    risk_day: I64  # quantile(target risk) of the run-out day
    risk: F64
    lead_time: I64
    p_within: F64
    p_active: F64
    prompt_day: I64
    method: NDArray[np.int8]
    rate: F64
    last_units: F64
    no_prompt: NDArray[np.int8]
    """Why a pair with purchases has no prompt: PROMPTED, LOOKS_STOPPED or UNLIKELY."""
    gate_value: F64
    """The probability that kept the prompt back (P(still active), or P(a purchase in the
    week from the prompt day)), and the limit it fell short of; NaN where prompted."""
    gate_limit: F64
    gate_window: I64
    """The days from the prompt day a purchase had to fall in (``useful_window_days``)."""

    def forecast(self, i: int) -> Forecast:
        """The ``Forecast`` of pair ``i``; raises ValueError when it has no purchase."""
        if self.method[i] == METHOD_NONE:
            raise ValueError(f"pair {i} has no purchase before today")
        method: Method = "model" if self.method[i] == METHOD_MODEL else "population"
        n = int(self.n_purchases[i])
        rate = float(self.rate[i])
        units = float(self.last_units[i])
        values = Explanation(
            n_purchases=n,
            units_per_purchase=units,
            interval_days=units / rate if rate > 0 else float("nan"),
            runout_quantile=float(self.risk[i]),
            runout_on=date.fromordinal(int(self.risk_day[i])),
            lead_time_days=int(self.lead_time[i]),
            method=method,
        )
        prompt = int(self.prompt_day[i])
        prompt_on = None if prompt == NO_PROMPT else date.fromordinal(prompt)
        last_on = date.fromordinal(int(self.last_day[i]))
        clause = prompt_clause(values, prompt_on, last_on, date.fromordinal(self.today))
        clause += no_prompt_clause(self.no_prompt[i], self.gate_value[i], self.gate_limit[i],
                                   int(self.gate_window[i]))  # fmt: skip
        return Forecast(
            last_purchased_on=last_on,
            median_on=date.fromordinal(int(self.median_day[i])),
            q10_on=date.fromordinal(int(self.q10_day[i])),
            q90_on=date.fromordinal(int(self.q90_day[i])),
            p_within_horizon=float(self.p_within[i]),
            p_active=float(self.p_active[i]),
            prompt_on=prompt_on,
            method=method,
            n_purchases=n,
            n_intervals=n - 1,
            rate_units_per_day=rate,
            explanation=explain(values) + clause,
            explanation_values=values,
            horizon_days=self.horizon_days,
        )


def score_batch(
    batch: BatchInput,
    params: PopulationParams,
    today: date,
    horizon_days: int,
    settings: Mapping[str, ProductSettings] | None = None,
    default_settings: ProductSettings | None = None,
    customer_repeat: F64 | None = None,
    earliest_prompt: date | None = None,
) -> BatchForecast:
    """Forecast every pair of ``batch`` at ``today`` from data dated before it (vectorised).

    ``settings`` maps product id -> settings (others get ``default_settings`` or the defaults).
    No prompt day is before ``earliest_prompt`` (default ``today``): the service scores as of
    tomorrow so that today's orders and answers count, and an overdue prompt is still today's.
    """
    t = today.toordinal()
    sa = SettingsArrays.build(batch.product_ids, settings, default_settings)
    prep = prepare(batch, params, t, sa.default_interval, customer_repeat)
    has = prep.n_purchases > 0
    prod = batch.pair_product
    risk = sa.risk[prod]
    n = batch.n_pairs
    q10, q50, q90, qr = (np.full(n, -1, dtype=np.int64) for _ in range(4))
    # The run-out risk quantile at the calibrated tail level: the 80 % interval's calibration
    # (tail a for the nominal 0.1) scales the risk the same way, so the risk's day is the
    # interval's lower end at the default risk of 0.1, and as well calibrated.
    tail = np.clip(risk * prep.alpha / NOMINAL_TAIL, 1e-4, 0.5)
    for r in np.unique(tail[has]):
        m = has & (tail == r)
        q50[m], qr[m] = quantile_days(prep, m, (0.5, float(r)))
    for a in np.unique(prep.alpha[has]):
        m = has & (prep.alpha == a)
        q10[m], q90[m] = quantile_days(prep, m, (float(a), 1.0 - float(a)))
    p_active, p_within = activity(prep, horizon_days)
    floor = t if earliest_prompt is None else earliest_prompt.toordinal()
    prompt = prompt_days(
        qr, prep.last_day, floor, sa.lead_time[prod], sa.min_interval[prod], sa.max_interval[prod],
        p_active, sa.min_active[prod],
    )  # fmt: skip
    # Gate: a prompt is only worth sending when a purchase in the days after it is likely enough.
    threshold = np.where(np.isnan(sa.min_prompt), params.prompt_threshold, sa.min_prompt)[prod]
    window = useful_window_days(sa.lead_time[prod])
    p_useful = purchase_probability(prep, p_active, prompt, window)
    # Unless the product's maximum interval brought the prompt forward: ops want the customer
    # asked by then, likely or not (a customer who looks stopped is still not asked).
    capped = has & (qr - sa.lead_time[prod] > prep.last_day + sa.max_interval[prod])
    useful = (p_useful >= threshold) | capped
    stopped = has & (prompt == NO_PROMPT)
    unlikely = has & ~stopped & ~useful
    prompt = np.where((prompt != NO_PROMPT) & useful, prompt, NO_PROMPT)
    no_prompt = np.select([stopped, unlikely], [LOOKS_STOPPED, UNLIKELY], PROMPTED)
    gate_value = np.select([stopped, unlikely], [p_active, p_useful], np.nan)
    gate_limit = np.select([stopped, unlikely], [sa.min_active[prod], threshold], np.nan)
    method = np.where(
        prep.n_purchases >= 2, METHOD_MODEL, np.where(has, METHOD_POPULATION, METHOD_NONE)
    ).astype(np.int8)
    prompt = np.where(has, prompt, NO_PROMPT)
    return BatchForecast(
        t, horizon_days, prep.n_purchases, prep.last_day, q50, q10, q90, qr, risk,
        sa.lead_time[prod], np.where(has, p_within, np.nan), np.where(has, p_active, np.nan),
        prompt, method, prep.rate, prep.last_units, no_prompt.astype(np.int8), gate_value,
        gate_limit, window,
    )  # fmt: skip


def _single_batch(history: PairHistory, product_id: str) -> BatchInput:
    days = [d.toordinal() for d, _ in history.purchases]
    qty = [float(q) for _, q in history.purchases]
    visit_days = [d.toordinal() for d in history.customer_order_days]
    a_day = [a.answered_on.toordinal() for a in history.answers]
    return BatchInput(
        # Pair 1 is a stand-in carrying the customer's other order days (cadence only).
        pair_product=np.array([0, 1], dtype=np.int64),
        pair_customer=np.zeros(2, dtype=np.int64),
        product_ids=(product_id, "\x00customer-visits"),
        line_pair=np.array([0] * len(days) + [1] * len(visit_days), dtype=np.int64),
        line_day=np.array(days + visit_days, dtype=np.int64),
        line_qty=np.array(qty + [1.0] * len(visit_days), dtype=np.float64),
        answer_pair=np.zeros(len(a_day), dtype=np.int64),
        answer_day=np.array(a_day, dtype=np.int64),
        answer_kind=np.array([ANSWER_CODES[a.kind] for a in history.answers], dtype=np.int8),
        answer_snooze_days=np.array([a.snooze_days for a in history.answers], dtype=np.int64),
    )


def forecast_pair(
    history: PairHistory,
    product_id: str,
    settings: ProductSettings,
    params: PopulationParams,
    today: date,
    horizon_days: int,
) -> Forecast:
    """Forecast one pair (the per-order re-estimation path; same code as the batch scorer).

    Raises ValueError when the history has no purchase before ``today``.
    """
    batch = _single_batch(history, product_id)
    share = history.customer_repeat_share
    share = params.global_customer_share if share is None or not np.isfinite(share) else share
    # Shrunk like the batch path would, assuming a handful of purchases behind the share.
    logit = float(special.logit(np.clip(share, 1e-6, 1 - 1e-6)))
    out = score_batch(
        batch, params, today, horizon_days, {product_id: settings}, settings,
        np.full(2, logit),
    )  # fmt: skip
    return out.forecast(0)
