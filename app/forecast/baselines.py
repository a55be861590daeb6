"""Back-test baselines (FORECAST_EVAL.md), all fitted on data before the origin only.

Each returns a ``Predictions`` for every pair with a purchase before the origin. Point baselines
predict one date d (an overdue date counts as the origin), give P(within H) = 1 if d < origin + H
else 0, no interval, and prompt on d - lead time (never before the origin). Where a pair has no
interval of its own (cold start) the pair baselines fall back to the product median interval.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from statsmodels.duration.survfunc import SurvfuncRight

from app.forecast import features as ft
from app.forecast.btyd import fit_bgnbd
from app.forecast.features import F64, I64, BatchInput

KM_MIN_INTERVALS = 30  # products with fewer observed intervals use the global Kaplan-Meier
NONE = -1


@dataclass(frozen=True, slots=True)
class Predictions:
    """Per pair arrays; days as ordinals, -1 where undefined (no interval / no prompt)."""

    p_within: F64
    median_day: I64
    q10_day: I64
    q90_day: I64
    prompt_day: I64


@dataclass(frozen=True, slots=True)
class _State:
    pur: ft.Purchases
    stats: ft.RowStats
    last_day: I64
    first_day: I64
    has: np.ndarray
    product_median: F64  # per pair


def _state(batch: BatchInput, origin: int) -> _State:
    pur = ft.purchases_before(batch, origin)
    stats = ft.row_stats(pur)
    has = pur.count > 0
    last = np.where(has, pur.day[np.where(has, pur.start + pur.count - 1, 0)], NONE)
    first = np.where(has, pur.day[np.where(has, pur.start, 0)], NONE)
    closed = stats.next_gap > 0
    prod_rows = batch.pair_product[pur.pair[closed]]
    gaps = stats.next_gap[closed].astype(np.float64)
    n_prod = len(batch.product_ids)
    med = np.full(n_prod, np.median(gaps) if gaps.size else 30.0)
    if gaps.size:
        order = np.lexsort((gaps, prod_rows))
        sp, sg = prod_rows[order], gaps[order]
        bounds = np.flatnonzero(np.r_[True, sp[1:] != sp[:-1], True])
        for lo, hi in itertools.pairwise(bounds):
            med[sp[lo]] = np.median(sg[lo:hi])
    return _State(pur, stats, last, first, has, med[batch.pair_product])


def _point(st: _State, interval: F64, origin: int, horizon: int, lead: int) -> Predictions:
    d = st.last_day + np.rint(interval).astype(np.int64)
    d = np.maximum(d, origin)
    p = (d < origin + horizon).astype(np.float64)
    prompt = np.maximum(d - lead, origin)
    none = np.full(d.shape[0], NONE, dtype=np.int64)
    return Predictions(
        np.where(st.has, p, np.nan), np.where(st.has, d, NONE), none, none.copy(),
        np.where(st.has, prompt, NONE),
    )  # fmt: skip


def fixed_cadence(
    batch: BatchInput, origin: int, horizon: int, lead: int, days: int = 30
) -> Predictions:
    """A subscription every ``days`` days from the last purchase: the first one on/after origin."""
    st = _state(batch, origin)
    k = np.maximum(np.ceil((origin - st.last_day) / days), 1)
    return _point(st, k * days, origin, horizon, lead)


def last_interval(batch: BatchInput, origin: int, horizon: int, lead: int) -> Predictions:
    st = _state(batch, origin)
    last_row = np.where(st.has, st.pur.start + st.pur.count - 2, 0)
    gap = np.where(st.pur.count >= 2, st.pur.day[last_row + 1] - st.pur.day[last_row], 0)
    interval = np.where(st.pur.count >= 2, gap, st.product_median)
    return _point(st, interval.astype(np.float64), origin, horizon, lead)


def mean_interval(batch: BatchInput, origin: int, horizon: int, lead: int) -> Predictions:
    st = _state(batch, origin)
    n = st.pur.count
    mean = (st.last_day - st.first_day) / np.maximum(n - 1, 1)
    return _point(st, np.where(n >= 2, mean, st.product_median), origin, horizon, lead)


def product_median(batch: BatchInput, origin: int, horizon: int, lead: int) -> Predictions:
    st = _state(batch, origin)
    return _point(st, st.product_median, origin, horizon, lead)


def _km_curve(times: F64, events: F64, max_day: int) -> F64:
    """Kaplan-Meier survival at days 0..max_day (statsmodels SurvfuncRight)."""
    sf = SurvfuncRight(times, events)
    grid = np.arange(max_day + 1)
    idx = np.searchsorted(sf.surv_times, grid, side="right") - 1
    return np.where(idx >= 0, sf.surv_prob[np.maximum(idx, 0)], 1.0)


def product_km(
    batch: BatchInput, origin: int, horizon: int, lead: int, risk: float = 0.1
) -> Predictions:
    """Per-product Kaplan-Meier of intervals (open ones censored at the origin), read
    conditionally on the days elapsed: median, 80 % interval, P(within H), prompt at the risk
    quantile - lead. Products with few intervals use the global curve."""
    st = _state(batch, origin)
    pur, stats = st.pur, st.stats
    closed = stats.next_gap > 0
    open_ = stats.is_last
    t = np.where(closed, stats.next_gap, origin - pur.day).astype(np.float64)
    ev = closed.astype(np.float64)
    prod_rows = batch.pair_product[pur.pair]
    max_day = int(max(t.max(initial=1), 1) + horizon + 1)
    curves = {-1: _km_curve(t, ev, max_day)}
    n_closed = np.bincount(prod_rows[closed], minlength=len(batch.product_ids))
    for p in np.flatnonzero(n_closed >= KM_MIN_INTERVALS):
        m = prod_rows == p
        curves[int(p)] = _km_curve(t[m], ev[m], max_day)
    del open_
    pair_prod = batch.pair_product
    use = np.where(n_closed[pair_prod] >= KM_MIN_INTERVALS, pair_prod, -1)
    n = batch.n_pairs
    out = {k: np.full(n, NONE, dtype=np.int64) for k in ("q10", "q50", "q90", "qr")}
    p_within = np.full(n, np.nan)
    elapsed = origin - st.last_day
    for key, curve in curves.items():
        m = st.has & (use == key)
        if not m.any():
            continue
        e = np.minimum(elapsed[m], max_day)
        s_e = curve[e]
        s_end = curve[np.minimum(e + horizon, max_day)]
        p_within[m] = np.where(s_e > 0, (s_e - s_end) / np.maximum(s_e, 1e-12), 0.0)
        for name, q in (("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("qr", risk)):
            target = s_e * (1 - q)
            # First day t >= e with S(t) <= target: -curve is non-decreasing.
            t_q = np.searchsorted(-curve, -target, side="left")
            t_q = np.maximum(t_q, e)
            # Beyond the curve's support (a plateau above the target): the last day it covers.
            out[name][m] = st.last_day[m] + np.minimum(t_q, max_day)
    prompt = np.where(out["qr"] >= 0, np.maximum(out["qr"] - lead, origin), NONE)
    return Predictions(p_within, out["q50"], out["q10"], out["q90"], prompt)


def pair_bgnbd(
    batch: BatchInput, origin: int, horizon: int, lead: int, risk: float = 0.1
) -> Predictions:
    """BG/NBD fitted across pairs (x repeat days, t_x, T in days since the first purchase)."""
    st = _state(batch, origin)
    h = st.has
    x = (st.pur.count[h] - 1).astype(np.float64)
    t_x = (st.last_day[h] - st.first_day[h]).astype(np.float64)
    age = (origin - st.first_day[h]).astype(np.float64)
    params, _ = fit_bgnbd(x, t_x, age, polish=False)
    n = batch.n_pairs
    p_within = np.full(n, np.nan)
    p_within[h] = params.p_any_within(x, t_x, age, float(horizon))
    alive = params.p_alive(x, t_x, age)
    days = {}
    for name, q in (("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("qr", risk)):
        d = np.full(n, NONE, dtype=np.int64)
        w = params.wait_quantile(x, age, q)
        d[h] = origin + np.minimum(np.rint(w), 10**5).astype(np.int64)
        days[name] = d
    prompt = np.full(n, NONE, dtype=np.int64)
    prompt[h] = np.where(alive >= 0.5, np.maximum(days["qr"][h] - lead, origin), NONE)
    return Predictions(p_within, days["q50"], days["q10"], days["q90"], prompt)
