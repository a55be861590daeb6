"""The vectorised customer features and the collinearity screen match their direct versions."""

import numpy as np

from app.forecast import features as ft
from app.forecast.features import BatchInput, empty_answers
from app.forecast.model import _independent_columns


def _batch(seed: int) -> BatchInput:
    rng = np.random.default_rng(seed)
    n, lines = 200, 2000
    return BatchInput(
        rng.integers(0, 10, n), rng.integers(0, 30, n), tuple(f"p{i}" for i in range(10)),
        rng.integers(0, n, lines), rng.integers(800, 1010, lines), np.ones(lines),
        *empty_answers(),
    )  # fmt: skip


def test_customer_features_match_direct_counts() -> None:
    today = 1000
    for seed in range(3):
        b = _batch(seed)
        pur = ft.purchases_before(b, today)
        has = pur.count > 0
        last = np.where(has, pur.day[np.where(has, pur.start + pur.count - 1, 0)], -1)
        since, recency, n_vis = ft.visits_since(pur, b.pair_customer, last, today)
        ((v28, p28),) = ft.recent_counts(pur, b.pair_customer, today, (28,))
        nv, span = ft.customer_visits(pur, b.pair_customer, 30)
        for i in range(b.n_pairs):
            c = b.pair_customer[i]
            days = np.unique(pur.day[b.pair_customer[pur.pair] == c])
            assert n_vis[i] == days.size == nv[c]
            assert since[i] == int((days > last[i]).sum())
            assert v28[i] == int((days >= today - 28).sum())
            assert p28[i] == int(((pur.pair == i) & (pur.day >= today - 28)).sum())
            if days.size:
                assert recency[i] == today - days.max()
                assert span[c] == days.max() - days.min()


def test_independent_columns_drops_collinear_and_constant() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=500), rng.normal(size=500)
    x = np.column_stack([np.ones(500), a, np.zeros(500), b, 2 * a - b + 1, rng.normal(size=500)])
    assert _independent_columns(x).tolist() == [True, True, False, True, False, True]
