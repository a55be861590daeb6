"""Metrics of the evaluation protocol (FORECAST_EVAL.md), on day-ordinal arrays.

``truth`` is the first purchase day in [origin, origin + H) or -1 for none (right-censored at
``end = origin + H``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from app.forecast.features import F64, I64

ON_TIME_DAYS = 7


def interval_coverage(q10: I64, q90: I64, truth: I64, end: int) -> tuple[float, int]:
    """Coverage of [q10, q90] where determinable, and the number of determinable pairs.

    A re-purchaser is covered when q10 <= truth <= q90. A pair without a purchase before ``end``
    is a determinable miss when q90 < end (it had not bought by q90); otherwise its outcome is
    unknown and it is left out.
    """
    bought = truth >= 0
    hit = bought & (q10 <= truth) & (truth <= q90)
    miss_censored = ~bought & (q90 < end)
    n = int(bought.sum() + miss_censored.sum())
    return (float(hit.sum()) / n if n else float("nan")), n


def auc(score: F64, label: NDArray[np.bool_]) -> float:
    """Area under the ROC curve (rank formula, ties averaged); NaN with one class only."""
    n_pos = int(label.sum())
    n_neg = int(label.shape[0] - n_pos)
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    s = score[order]
    ranks = np.empty(s.shape[0], dtype=np.float64)
    # Average ranks over ties.
    bounds = np.flatnonzero(np.r_[True, s[1:] != s[:-1], True])
    for_ranks = (bounds[:-1] + bounds[1:] + 1) / 2.0
    ranks_sorted = np.repeat(for_ranks, np.diff(bounds))
    ranks[order] = ranks_sorted
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def brier(prob: F64, label: NDArray[np.bool_]) -> float:
    return float(np.mean((prob - label.astype(np.float64)) ** 2))


def timing(median_day: I64, truth: I64) -> tuple[float, float]:
    """MAE (days) and share within +-7 days of the median date, among re-purchasers."""
    bought = truth >= 0
    if not bought.any():
        return float("nan"), float("nan")
    err = np.abs(median_day[bought] - truth[bought]).astype(np.float64)
    return float(err.mean()), float(np.mean(err <= ON_TIME_DAYS))


def prompt_outcomes(prompt_day: I64, truth: I64, origin: int, end: int) -> dict[str, float]:
    """Prompts sent in [origin, end - 7] (so the 7 days after each are observed).

    late: the customer re-bought before the prompt; on time: a purchase within 7 days from the
    prompt day; too early: neither. ``prompt_day`` -1 means no prompt. Returns per-100 rates,
    counts, and prompts per active (re-purchasing) pair.
    """
    sent = (prompt_day >= origin) & (prompt_day <= end - ON_TIME_DAYS)
    bought = truth >= 0
    late = sent & bought & (truth < prompt_day)
    on_time = sent & bought & (truth >= prompt_day) & (truth < prompt_day + ON_TIME_DAYS)
    n_sent = int(sent.sum())
    n_active = int(bought.sum())
    per100 = 100.0 / n_sent if n_sent else float("nan")
    return {
        "sent": float(n_sent),
        "late_per_100": late.sum() * per100,
        "too_early_per_100": (n_sent - late.sum() - on_time.sum()) * per100,
        "on_time_per_100": on_time.sum() * per100,
        "on_time_reached": float(on_time.sum()),
        "prompts_per_active_pair": n_sent / n_active if n_active else float("nan"),
    }
