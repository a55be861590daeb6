"""Small synthetic populations with a known interval distribution."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from app.forecast import PopulationParams, fit_population
from app.forecast.features import BatchInput, empty_answers

START = date(2023, 1, 1).toordinal()
TODAY = date(2024, 1, 1)
SIGMA = 0.35


def synthetic_batch(n_pairs: int, seed: int, days: int = 365, stop_p: float = 0.05) -> BatchInput:
    """Pairs over two products (10 and 30 days per unit); intervals are units / rate times
    log-normal noise (SIGMA); after each purchase the pair stops with probability ``stop_p``."""
    rng = np.random.default_rng(seed)
    pair_product = rng.integers(0, 2, n_pairs)
    per_unit = np.where(pair_product == 0, 10.0, 30.0) * np.exp(rng.normal(0, 0.3, n_pairs))
    lp, ld, lq = [], [], []
    for i in range(n_pairs):
        day = START + int(rng.integers(0, 120))
        while day < START + days:
            units = int(rng.integers(1, 4))
            lp.append(i)
            ld.append(day)
            lq.append(units)
            if rng.random() < stop_p:
                break
            day += max(1, round(units * per_unit[i] * np.exp(rng.normal(0, SIGMA))))
    a_pair, a_day, a_kind, a_snooze = empty_answers()
    return BatchInput(
        pair_product=pair_product.astype(np.int64),
        pair_customer=np.arange(n_pairs, dtype=np.int64),
        product_ids=("fast", "slow"),
        line_pair=np.array(lp, dtype=np.int64),
        line_day=np.array(ld, dtype=np.int64),
        line_qty=np.array(lq, dtype=np.float64),
        answer_pair=a_pair,
        answer_day=a_day,
        answer_kind=a_kind,
        answer_snooze_days=a_snooze,
    )


@pytest.fixture(scope="session")
def synthetic() -> BatchInput:
    return synthetic_batch(3000, seed=1)


@pytest.fixture(scope="session")
def params(synthetic: BatchInput) -> PopulationParams:
    return fit_population(synthetic, TODAY, seed=0)
