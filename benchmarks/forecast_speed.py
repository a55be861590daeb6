"""Scoring speed: one pair (median ms) and the batch scorer on 1M pairs / 5M lines in memory.

    python benchmarks/forecast_speed.py [--pairs 1000000] [--lines 5000000]

Ratios are against a trivial numpy baseline measured in the same run (mean interval per pair).
"""

import argparse
import statistics
import time
from datetime import date, timedelta

import numpy as np

from app.forecast import PairHistory, ProductSettings, fit_population, forecast_pair, score_batch
from app.forecast.features import BatchInput, empty_answers

TODAY = date(2024, 1, 1)


def synthetic(n_pairs: int, n_lines: int, seed: int = 0) -> BatchInput:
    rng = np.random.default_rng(seed)
    pair = np.sort(rng.integers(0, n_pairs, n_lines))
    day = TODAY.toordinal() - rng.integers(1, 365, n_lines)
    a_pair, a_day, a_kind, a_snooze = empty_answers()
    n_products = 5000
    return BatchInput(
        pair_product=rng.integers(0, n_products, n_pairs),
        pair_customer=rng.integers(0, n_pairs // 5, n_pairs),
        product_ids=tuple(f"p{i}" for i in range(n_products)),
        line_pair=pair, line_day=day.astype(np.int64),
        line_qty=rng.integers(1, 4, n_lines).astype(np.float64),
        answer_pair=a_pair, answer_day=a_day, answer_kind=a_kind, answer_snooze_days=a_snooze,
    )  # fmt: skip


def trivial(batch: BatchInput) -> np.ndarray:
    order = np.lexsort((batch.line_day, batch.line_pair))
    d, p = batch.line_day[order], batch.line_pair[order]
    span = np.zeros(batch.n_pairs)
    np.maximum.at(span, p, d)
    first = np.full(batch.n_pairs, np.inf)
    np.minimum.at(first, p, d)
    n = np.bincount(p, minlength=batch.n_pairs)
    result: np.ndarray = (span - first) / np.maximum(n - 1, 1)
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--lines", type=int, default=5_000_000)
    args = ap.parse_args()
    batch = synthetic(args.pairs, args.lines)
    t0 = time.perf_counter()
    params = fit_population(batch, TODAY, seed=0, max_fit_pairs=200_000)
    t_fit = time.perf_counter() - t0
    t0 = time.perf_counter()
    trivial(batch)
    t_triv = time.perf_counter() - t0
    t0 = time.perf_counter()
    score_batch(batch, params, TODAY, 28)
    t_score = time.perf_counter() - t0
    print(f"batch: {args.pairs} pairs / {args.lines} lines")
    print(
        f"  fit_population {t_fit:.1f} s, score_batch {t_score:.1f} s, "
        f"fit+score {t_fit + t_score:.1f} s (budget 60 s)"
    )
    print(
        f"  trivial mean-interval {t_triv:.2f} s; score_batch / trivial = {t_score / t_triv:.1f}x"
    )

    hist = PairHistory(
        purchases=tuple((TODAY - timedelta(days=d), 1.0) for d in (90, 61, 33, 5)),
        customer_order_days=tuple(TODAY - timedelta(days=d) for d in range(5, 120, 7)),
    )
    settings = ProductSettings()
    times, triv = [], []
    for _ in range(300):
        t0 = time.perf_counter()
        forecast_pair(hist, "p1", settings, params, TODAY, 28)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        days = np.array([d.toordinal() for d, _ in hist.purchases])
        float(np.diff(np.sort(days)).mean())
        triv.append(time.perf_counter() - t0)
    med, med_t = statistics.median(times) * 1e3, statistics.median(triv) * 1e3
    print(
        f"single pair: median {med:.2f} ms (budget 5 ms); trivial {med_t:.3f} ms; "
        f"ratio {med / med_t:.0f}x"
    )


if __name__ == "__main__":
    main()
