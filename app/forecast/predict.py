"""Forecasts for every pair of an order file, as the rows of the ``predict`` CSV."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from app.forecast.data import read_orders
from app.forecast.model import fit_population
from app.forecast.score import METHOD_NAMES, score_batch
from app.forecast.types import ProductSettings

PREDICT_COLUMNS = [
    "customer_id", "product_id", "n_purchases", "last_purchased_on", "median_on", "q10_on",
    "q90_on", "p_within_horizon", "prompt_on", "method",
]  # fmt: skip
_EPOCH_ORDINAL = 719163


def _iso(days: np.ndarray) -> pd.Series:
    """Day ordinals -> ISO strings; -1 -> empty."""
    ok = days > 0
    out = np.full(days.shape[0], "", dtype=object)
    out[ok] = (days[ok] - _EPOCH_ORDINAL).astype("datetime64[D]").astype(str)
    return pd.Series(out)


def predict_frame(orders: str | Path, as_of: date, horizon: int, lead_days: int) -> pd.DataFrame:
    """Fit on rows dated before ``as_of`` and forecast every pair with >= 1 purchase before it."""
    data = read_orders(orders)
    params = fit_population(data.batch, as_of, calibration_days=horizon)
    f = score_batch(
        data.batch,
        params,
        as_of,
        horizon,
        default_settings=ProductSettings(lead_time_days=lead_days),
    )
    keep = f.n_purchases > 0
    frame = pd.DataFrame(
        {
            "customer_id": data.customer_ids[keep],
            "product_id": data.product_of_pair[keep],
            "n_purchases": f.n_purchases[keep],
            "last_purchased_on": _iso(f.last_day[keep]).to_numpy(),
            "median_on": _iso(f.median_day[keep]).to_numpy(),
            "q10_on": _iso(f.q10_day[keep]).to_numpy(),
            "q90_on": _iso(f.q90_day[keep]).to_numpy(),
            "p_within_horizon": np.round(f.p_within[keep], 6),
            "prompt_on": _iso(f.prompt_day[keep]).to_numpy(),
            "method": [METHOD_NAMES[int(m)] for m in f.method[keep]],
        }
    )
    return frame.loc[:, PREDICT_COLUMNS]
