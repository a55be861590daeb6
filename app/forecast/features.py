"""Flat-array preparation shared by the population fit and the batch scorer.

Everything here is vectorised numpy over all pairs at once: lines are (pair, day, units) with
days as date ordinals; answers are (pair, day, kind, snooze_days). Only rows dated before
``today`` are used.

Evidence from answers (see ``types.Answer``):

* a confirm on day t is an observed run-out: an order within ``CONFIRM_FULFIL_DAYS`` after it is
  re-dated to t (it is the confirm's fulfilment); without one, a purchase of the pair's previous
  units is assumed on day t;
* a skip on day t censors the open interval at "no run-out through day t" (T >= t + 1 - last);
* a snooze of n days on day t censors it at T >= t + n - last;
* a skip or snooze is also evidence that the pair is still active: the scorer sets P(active) to 1
  for the open interval (a customer who answers "not yet" still uses the product).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

CONFIRM_FULFIL_DAYS = 7
_DAY_BITS = 22  # keys are pair << 22 | (day - first day): days span < 11,000 years

# Shrinkage pseudo-counts: a pair's own mean log interval is weighted k / (k + PAIR_PRIOR) against
# its product's norm after k intervals; product norms likewise against the global mean.
PAIR_PRIOR = 2.0
PRODUCT_PRIOR = 5.0
CUSTOMER_PRIOR = 1.0

X_NAMES = (
    "const",
    "product_norm",
    "pair_dev",
    "first_log_units",
    "units_vs_usual",
    "log_cadence",
    "log_n",
)
Z_NAMES = ("const", "product_repeat", "log_n", "log_cadence", "pair_dev", "product_norm")
W_NAMES = ("const", "log_n")
V_NAMES = (
    "const", "logit_p_timing", "log_n", "customer_repeat", "log_customer_recency",
    "log_visits_since", "log_customer_visits", "log_visits_28d", "log_visits_56d",
    "elapsed_vs_mean", "log_pair_frequency", "product_repeat", "elapsed_vs_norm",
    "log_pair_28d", "log_pair_56d", "pair_visit_share", "log_cadence", "recency_vs_cadence",
    "product_momentum",
)  # fmt: skip
MOMENTUM_DAYS = 28
"""The product's momentum compares its purchase days in the last ``MOMENTUM_DAYS`` with its
rate over the ``MOMENTUM_BASE_DAYS`` before them (seasons, launches, fading lines)."""
MOMENTUM_BASE_DAYS = 56
MOMENTUM_PRIOR = 2.0


@dataclass(frozen=True, slots=True)
class BatchInput:
    """Flat arrays for many pairs.

    ``pair_product[i]`` / ``pair_customer[i]`` are integer codes of pair i (products index
    ``product_ids``). Lines and answers refer to pairs by index 0..n_pairs-1. ``answer_kind``
    uses ``types.ANSWER_CODES``. Arrays need no particular order.
    """

    pair_product: I64
    pair_customer: I64
    product_ids: tuple[str, ...]
    line_pair: I64
    line_day: I64
    line_qty: F64
    answer_pair: I64
    answer_day: I64
    answer_kind: NDArray[np.int8]
    answer_snooze_days: I64

    @property
    def n_pairs(self) -> int:
        return int(self.pair_product.shape[0])


@dataclass(frozen=True, slots=True)
class Purchases:
    """Purchase days before ``today``, one row per pair and day, sorted by (pair, day)."""

    pair: I64
    day: I64
    units: F64
    start: I64  # per pair: index of its first purchase (undefined when count == 0)
    count: I64  # per pair: number of purchase days
    censor_ge: I64  # per pair: the open interval T satisfies T >= censor_ge (days since last)
    answered: NDArray[np.bool_]  # per pair: a skip / snooze since the last purchase


def empty_answers() -> tuple[I64, I64, NDArray[np.int8], I64]:
    e = np.zeros(0, dtype=np.int64)
    return e, e.copy(), np.zeros(0, dtype=np.int8), e.copy()


def _aggregate(pair: I64, day: I64, units: F64, base: int) -> tuple[I64, I64, F64]:
    key = (pair << _DAY_BITS) | (day - base)
    ukey, inv = np.unique(key, return_inverse=True)
    summed: F64 = np.bincount(inv, weights=units, minlength=ukey.shape[0]).astype(np.float64)
    pair_out: I64 = (ukey >> _DAY_BITS).astype(np.int64)
    day_out: I64 = ((ukey & ((1 << _DAY_BITS) - 1)) + base).astype(np.int64)
    return pair_out, day_out, summed


def purchases_before(batch: BatchInput, today: int) -> Purchases:
    """Aggregate lines (and confirms) before ``today`` into purchase days; censor from answers."""
    keep = batch.line_day < today
    pair, day, units = batch.line_pair[keep], batch.line_day[keep], batch.line_qty[keep]
    base = int(min(day.min(initial=today), batch.answer_day.min(initial=today))) - 1
    pair, day, units = _aggregate(pair, day, units, base)

    a_keep = batch.answer_day < today
    a_pair, a_day = batch.answer_pair[a_keep], batch.answer_day[a_keep]
    a_kind, a_snooze = batch.answer_kind[a_keep], batch.answer_snooze_days[a_keep]
    confirm = a_kind == 2
    if confirm.any():
        pair, day, units = _apply_confirms(pair, day, units, a_pair[confirm], a_day[confirm], base)

    n = batch.n_pairs
    count = np.bincount(pair, minlength=n).astype(np.int64)
    start = np.zeros(n, dtype=np.int64)
    start[1:] = np.cumsum(count)[:-1]
    has = count > 0
    last_day = np.full(n, today, dtype=np.int64)
    last_day[has] = day[start[has] + count[has] - 1]
    censor_ge = today - last_day
    answered = np.zeros(n, dtype=bool)
    other = ~confirm
    if other.any():
        o_pair, o_day = a_pair[other], a_day[other]
        c_day = np.where(a_kind[other] == 1, o_day + a_snooze[other], o_day + 1)
        after = (o_day > last_day[o_pair]) & has[o_pair]
        np.maximum.at(censor_ge, o_pair[after], c_day[after] - last_day[o_pair[after]])
        answered[o_pair[after]] = True
    return Purchases(pair, day, units, start, count, censor_ge, answered)


def _apply_confirms(
    pair: I64, day: I64, units: F64, c_pair: I64, c_day: I64, base: int
) -> tuple[I64, I64, F64]:
    key = (pair << _DAY_BITS) | (day - base)
    ckey = (c_pair << _DAY_BITS) | (c_day - base)
    idx = np.searchsorted(key, ckey, side="left")
    inb = idx < key.shape[0]
    idx_c = np.minimum(idx, key.shape[0] - 1)
    matched = inb & (key[idx_c] - ckey <= CONFIRM_FULFIL_DAYS) & (key.shape[0] > 0)
    day = day.copy()
    if matched.any():
        np.minimum.at(day, idx_c[matched], c_day[matched])
    new = ~matched
    prev = np.maximum(idx - 1, 0)
    same_pair = (idx > 0) & (pair[prev] == c_pair) if key.shape[0] else np.zeros_like(new)
    new_units = np.where(same_pair, units[prev] if key.shape[0] else 1.0, 1.0)
    pair = np.concatenate([pair, c_pair[new]])
    day = np.concatenate([day, c_day[new]])
    units = np.concatenate([units, new_units[new]])
    # Re-aggregating also merges a confirm with an order on the same day.
    return _aggregate(pair, day, units, base)


@dataclass(frozen=True, slots=True)
class RowStats:
    """Per purchase row k of a pair: what is known at that purchase (no look-ahead)."""

    k: I64  # 0-based position within the pair = number of closed intervals before it
    log_gap_cumsum: F64  # sum of log intervals before purchase k
    mean_log_units_before: F64  # mean log units of purchases before k (0 when k == 0)
    next_gap: I64  # interval to the next purchase, -1 when the interval is still open
    is_last: NDArray[np.bool_]


def row_stats(pur: Purchases) -> RowStats:
    """Running per-pair sums for every purchase row."""
    n = pur.pair.shape[0]
    k = np.arange(n, dtype=np.int64) - pur.start[pur.pair]
    same_next = np.zeros(n, dtype=bool)
    same_next[:-1] = pur.pair[1:] == pur.pair[:-1]
    gap = np.full(n, -1, dtype=np.int64)
    gap[:-1] = np.where(same_next[:-1], pur.day[1:] - pur.day[:-1], -1)
    log_gap = np.where(gap > 0, np.log(np.maximum(gap, 1)), 0.0)
    # Cumulative sums of the *previous* rows' values, restarted at each pair.
    cs = np.concatenate([[0.0], np.cumsum(log_gap)])
    lg_before = cs[:-1] - cs[pur.start[pur.pair]]
    lu = np.log(np.maximum(pur.units, 1e-9))
    cu = np.concatenate([[0.0], np.cumsum(lu)])
    lu_before = cu[:-1] - cu[pur.start[pur.pair]]
    mean_lu = np.where(k > 0, lu_before / np.maximum(k, 1), 0.0)
    return RowStats(k, lg_before, mean_lu, gap, ~same_next)


@dataclass(frozen=True, slots=True)
class CustomerVisits:
    """Distinct (customer, day) visits (any product), sorted by customer then day, with each
    customer's slice [first, end). Built once per ``Purchases`` and shared by the features."""

    customer: I64
    day: I64
    first: I64  # per customer: index of the first visit (== end when none)
    end: I64  # per customer: one past the last visit

    @property
    def count(self) -> I64:
        return self.end - self.first


def _sorted_unique(key: I64) -> I64:
    # Sort-based: numpy's hash-based ``np.unique`` is several times slower on millions of ints.
    key = np.sort(key)
    if key.shape[0] == 0:
        return key
    return key[np.r_[True, key[1:] != key[:-1]]]


def visit_days(pur: Purchases, pair_customer: I64, n_customers: int) -> CustomerVisits:
    """The customers' distinct visit days (any product) in ``pur``."""
    cust = pair_customer[pur.pair]
    base = int(pur.day.min(initial=0))
    key = _sorted_unique((cust << _DAY_BITS) | (pur.day - base))
    c = (key >> _DAY_BITS).astype(np.int64)
    d = ((key & ((1 << _DAY_BITS) - 1)) + base).astype(np.int64)
    nv = np.bincount(c, minlength=n_customers).astype(np.int64)
    end = np.cumsum(nv)
    return CustomerVisits(c, d, end - nv, end)


def customer_visits(
    pur: Purchases, pair_customer: I64, n_customers: int, visits: CustomerVisits | None = None
) -> tuple[I64, I64]:
    """Per customer: number of distinct order days (any product) and first-to-last span."""
    cv = visits if visits is not None else visit_days(pur, pair_customer, n_customers)
    nv = cv.count
    has = nv > 0
    span = np.zeros(n_customers, dtype=np.int64)
    span[has] = cv.day[cv.end[has] - 1] - cv.day[cv.first[has]]
    return nv, span


def log_cadence_from_counts(n_visits: I64, span_days: I64, global_log_cadence: float) -> F64:
    """Shrunk log cadence from a customer's number of visit days and first-to-last span:
    log((span + CUSTOMER_PRIOR * global) / (n_visits - 1 + CUSTOMER_PRIOR))."""
    g = np.exp(global_log_cadence)
    gaps = np.maximum(n_visits - 1, 0)
    return np.asarray(
        np.log((span_days + CUSTOMER_PRIOR * g) / (gaps + CUSTOMER_PRIOR)), dtype=np.float64
    )


def pooled_log_cadence(n_visits: I64, span_days: I64) -> float:
    """Global cadence: all customers' spans over all their gaps (days between visits)."""
    ok = n_visits >= 2
    total_gaps = float((n_visits[ok] - 1).sum())
    if total_gaps == 0:
        return float(np.log(30.0))
    return float(np.log(max(float(span_days[ok].sum()) / total_gaps, 1.0)))


def design(
    k: I64,
    log_gap_before: F64,
    log_units: F64,
    mean_log_units_before: F64,
    product_norm: F64,
    product_repeat: F64,
    log_cadence: F64,
) -> tuple[F64, F64, F64]:
    """Covariate matrices (X timing location, Z activity logit, W log-scale) for rows at a purchase.

    ``pair_dev`` is the pair's own mean log interval shrunk toward the product norm in proportion
    to its evidence, minus the norm: (sum log gaps - k * norm) / (k + PAIR_PRIOR).
    """
    kf = k.astype(np.float64)
    pair_dev = (log_gap_before - kf * product_norm) / (kf + PAIR_PRIOR)
    units_vs_usual = np.where(k > 0, log_units - mean_log_units_before, 0.0)
    # How many units: after the first purchase only. With history, the pair's own gaps say how
    # long its usual purchase lasts, and only a purchase bigger or smaller than usual moves it;
    # the absolute count would read a case buyer's 150 every 30 days as months of stock.
    first_units = np.where(k > 0, 0.0, log_units)
    log_n = np.log1p(kf)
    ones = np.ones_like(kf)
    x = np.column_stack(
        [ones, product_norm, pair_dev, first_units, units_vs_usual, log_cadence, log_n]
    )
    z = np.column_stack([ones, product_repeat, log_n, log_cadence, pair_dev, product_norm])
    w = np.column_stack([ones, log_n])
    return x, z, w


def customer_repeat_logit(
    pur: Purchases, stats: RowStats, pair_customer: I64, n_customers: int, global_share: float
) -> F64:
    """Per customer: logit of the share of their purchase days (any product) followed by another
    purchase of the same product, shrunk toward ``global_share`` with PRODUCT_PRIOR pseudo-rows."""
    cust = pair_customer[pur.pair]
    closed = (stats.next_gap > 0).astype(np.float64)
    rep = np.bincount(cust, weights=closed, minlength=n_customers)
    buy = np.bincount(cust, minlength=n_customers).astype(np.float64)
    share = (rep + PRODUCT_PRIOR * global_share) / (buy + PRODUCT_PRIOR)
    return np.asarray(np.log(share) - np.log1p(-share), dtype=np.float64)


def visits_since(
    pur: Purchases,
    pair_customer: I64,
    last_day: I64,
    today: int,
    visits: CustomerVisits | None = None,
) -> tuple[I64, I64, I64]:
    """Per pair: the customer's visit days after the pair's last purchase, the customer's days
    since their last visit (any product), and their number of visit days; all before ``today``."""
    n_cust = int(pair_customer.max(initial=-1)) + 1
    cv = visits if visits is not None else visit_days(pur, pair_customer, n_cust)
    pc = pair_customer
    n_vis = cv.count[pc]
    last_visit = np.where(n_vis > 0, cv.day[np.maximum(cv.end[pc] - 1, 0)], today)
    recency = np.where(n_vis > 0, today - last_visit, 0)
    # Visits after the pair's last purchase: one search per pair in the (customer, day) keys,
    # with the queries sorted (numpy's search then walks the keys forward: cache-friendly).
    base = int(cv.day.min(initial=today)) - 1
    key = (cv.customer << _DAY_BITS) | (cv.day - base)
    q = (pc << _DAY_BITS) | (np.clip(last_day, base, None) - base)
    order = np.argsort(q, kind="stable")
    after = np.empty(pc.shape[0], dtype=np.int64)
    after[order] = np.searchsorted(key, q[order], side="right")
    since = np.maximum(cv.end[pc] - after, 0)
    return since.astype(np.int64), recency.astype(np.int64), n_vis.astype(np.int64)


def recent_counts(
    pur: Purchases,
    pair_customer: I64,
    today: int,
    windows: tuple[int, ...],
    visits: CustomerVisits | None = None,
) -> list[tuple[I64, I64]]:
    """Per window of ``days``: per pair, the customer's visit days (any product) and the pair's
    purchase days in [today - days, today)."""
    n_cust = int(pair_customer.max(initial=-1)) + 1
    cv = visits if visits is not None else visit_days(pur, pair_customer, n_cust)
    out = []
    for days in windows:
        recent_v = (cv.day >= today - days) & (cv.day < today)
        cust_n = np.bincount(cv.customer[recent_v], minlength=n_cust)
        recent = (pur.day >= today - days) & (pur.day < today)
        pair_n = np.bincount(pur.pair[recent], minlength=pair_customer.shape[0])
        out.append((cust_n[pair_customer].astype(np.int64), pair_n.astype(np.int64)))
    return out


def product_momentum(pur: Purchases, pair_product: I64, n_products: int, today: int) -> F64:
    """Per product (by code): log of its purchase days (all customers) in the last
    ``MOMENTUM_DAYS`` before ``today`` over the number its rate in the ``MOMENTUM_BASE_DAYS``
    before those predicts, both with ``MOMENTUM_PRIOR`` added; 0 (no change) everywhere when
    the history does not reach ``MOMENTUM_DAYS`` into the base period."""
    recent_from = today - MOMENTUM_DAYS
    base_from = max(int(pur.day.min(initial=today)), recent_from - MOMENTUM_BASE_DAYS)
    base_days = recent_from - base_from
    if base_days < MOMENTUM_DAYS:
        return np.zeros(n_products)
    prod = pair_product[pur.pair]
    recent = np.bincount(prod[(pur.day >= recent_from) & (pur.day < today)], minlength=n_products)
    base = np.bincount(prod[(pur.day >= base_from) & (pur.day < recent_from)], minlength=n_products)
    expected = base * (MOMENTUM_DAYS / base_days)
    return np.asarray(np.log((recent + MOMENTUM_PRIOR) / (expected + MOMENTUM_PRIOR)))


@dataclass(frozen=True, slots=True)
class WhetherInputs:
    """Per pair, what is known at the scoring date for the whether-layer (``V_NAMES``)."""

    n_purchases: I64
    elapsed: I64  # days since the pair's last purchase
    first_age: I64  # days since the pair's first purchase
    customer_repeat: F64  # logit
    recency: I64  # days since the customer's last visit (any product)
    since: I64  # customer visit days after the pair's last purchase
    n_visits: I64  # customer visit days
    visits_28: I64
    visits_56: I64
    pair_28: I64
    pair_56: I64
    product_repeat: F64  # logit
    product_norm: F64  # mean log interval of the product
    log_cadence: F64  # the customer's shrunk log visit cadence
    product_momentum: F64  # see product_momentum()


def activity_design(w: WhetherInputs) -> F64:
    """Covariates (``V_NAMES``) of the whether-layer; column 1 (the timing model's logit
    P(purchase within H)) is filled in by the scorer, which knows H."""
    n = np.maximum(w.n_purchases, 1).astype(np.float64)
    elapsed = w.elapsed.astype(np.float64) + 0.5
    mean_gap = w.first_age.astype(np.float64) - w.elapsed
    mean_gap = np.maximum(mean_gap / np.maximum(n - 1.0, 1.0), 1.0)
    elapsed_vs_mean = np.where(w.n_purchases >= 2, np.log(elapsed / mean_gap), 0.0)
    log_rec = np.log1p(w.recency)
    return np.column_stack(
        [
            np.ones_like(n), np.zeros_like(n), np.log(n), w.customer_repeat, log_rec,
            np.log1p(w.since), np.log1p(w.n_visits), np.log1p(w.visits_28),
            np.log1p(w.visits_56), elapsed_vs_mean, np.log(n / (w.first_age + 7.0)),
            w.product_repeat, np.log(elapsed) - w.product_norm, np.log1p(w.pair_28),
            np.log1p(w.pair_56), np.log((n + 0.5) / (w.n_visits + 1.0)), w.log_cadence,
            log_rec - w.log_cadence, w.product_momentum,
        ]
    )  # fmt: skip


def customer_repeat_share(
    purchase_days_by_product: dict[str, list[int]] | list[list[int]],
) -> float:
    """Raw share for ``PairHistory.customer_repeat_share``: of a customer's purchase days
    (distinct per product), the share followed by another purchase of the same product."""
    groups = (
        purchase_days_by_product.values()
        if isinstance(purchase_days_by_product, dict)
        else purchase_days_by_product
    )
    buys = closed = 0
    for days in groups:
        n = len(set(days))
        buys += n
        closed += max(n - 1, 0)
    return closed / buys if buys else float("nan")
