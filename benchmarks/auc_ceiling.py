"""What a model trained for AUC alone reaches on the same history: a bound for issue 3's target.

FORECAST_EVAL.md asks for an AUC of P(purchase within H) >= 0.70 (Ta Feng, origin 2001-02-01,
H = 28, pairs with >= 2 purchase days). The forecaster is a survival model; this fits the
question directly instead: a logistic regression, then a GAM (statsmodels ``GLMGam``, cubic
B-splines on every input), trained on the outcome in [C, C + H) itself, which the forecaster
never sees, and scored out of fold (5 folds by customer, so no customer is in its own training
data). Inputs are what the pair's history before C can tell: its purchase days, days since the
last, mean interval and their ratio, units in all and last time, the customer's visits, days
since the last and the pair's share of them, the product's buyers and repeat rate.

If a model fitted to the very outcome, with these inputs, stays near the forecaster's AUC, the
target needs information this history does not hold, not a better fit.

    .venv/bin/python benchmarks/auc_ceiling.py [--orders ../shared/data/tafeng_dev.csv.gz]
        [--origin 2001-02-01] [--horizon 28]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.gam.api import BSplines, GLMGam

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.forecast.data import read_frame  # noqa: E402
from app.forecast.metrics import auc  # noqa: E402

FOLDS = 5
SEED = 0


def pair_features(lines: pd.DataFrame, origin: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """One row per pair with >= 2 purchase days before ``origin``: inputs and outcome ``y``."""
    lines = lines.assign(
        day=(pd.to_datetime(lines["ordered_at"].str.slice(0, 10)) - origin).dt.days
    )
    before = lines[lines["day"] < 0]
    days = before.groupby(["customer_id", "product_id", "day"])["quantity"].sum().reset_index()
    by_pair = days.sort_values("day").groupby(["customer_id", "product_id"])
    f = by_pair.agg(n=("day", "size"), first=("day", "min"), last=("day", "max"),
                    units=("quantity", "sum"), last_units=("quantity", "last"))  # fmt: skip
    f = f[f["n"] >= 2]
    visits = before.groupby("customer_id")["day"].agg(visits="nunique", last_visit="max")
    products = days.groupby("product_id").agg(
        buyers=("customer_id", "nunique"), days=("day", "size")
    )
    f = f.join(visits, on="customer_id").join(products, on="product_id")
    window = lines[(lines["day"] >= 0) & (lines["day"] < horizon)]
    bought = window.groupby(["customer_id", "product_id"]).size()
    mean_interval = (f["last"] - f["first"]) / (f["n"] - 1)
    return pd.DataFrame(
        {
            "ln_purchases": np.log(f["n"]),
            "ln_elapsed": np.log1p(-f["last"]),
            "ln_interval": np.log1p(mean_interval),
            "ln_overdue": np.log1p(-f["last"]) - np.log1p(mean_interval),
            "ln_units": np.log(f["units"]),
            "ln_last_units": np.log(f["last_units"]),
            "ln_visits": np.log(f["visits"]),
            "ln_since_visit": np.log1p(-f["last_visit"]),
            "share_of_visits": f["n"] / f["visits"],
            "ln_buyers": np.log(f["buyers"]),
            "ln_repeat_rate": np.log(f["days"] / f["buyers"]),
            "y": f.index.isin(bought.index).astype(float),
        },
        index=f.index,
    )


def out_of_fold(x: np.ndarray, y: np.ndarray, folds: np.ndarray, gam: bool) -> np.ndarray:
    """P(y) for every row from a model fitted on the other folds."""
    predicted = np.zeros(len(y))
    for k in range(FOLDS):
        train, test = folds != k, folds == k
        if gam:
            low, high = x[train].min(axis=0), x[train].max(axis=0)
            splines = BSplines(x[train], df=[6] * x.shape[1], degree=[3] * x.shape[1])
            binomial = sm.families.Binomial()
            fitted = GLMGam(y[train], exog=np.ones((train.sum(), 1)), smoother=splines,
                            family=binomial, alpha=[1.0] * x.shape[1]).fit()  # fmt: skip
            predicted[test] = fitted.predict(
                exog=np.ones((test.sum(), 1)), exog_smooth=np.clip(x[test], low, high)
            )
        else:
            model = sm.Logit(y[train], sm.add_constant(x[train])).fit(disp=0)
            predicted[test] = model.predict(sm.add_constant(x[test]))
    return predicted


def protocol_args(doc: str) -> argparse.Namespace:
    """``--orders``, ``--origin`` and ``--horizon`` (FORECAST_EVAL.md's Ta Feng defaults)."""
    parser = argparse.ArgumentParser(description=doc.split("\n", maxsplit=1)[0])
    parser.add_argument("--orders", default=str(ROOT.parent / "shared/data/tafeng_dev.csv.gz"))
    parser.add_argument("--origin", default="2001-02-01")
    parser.add_argument("--horizon", type=int, default=28)
    return parser.parse_args()


def customer_folds(table: pd.DataFrame) -> np.ndarray:
    """A fold 0..FOLDS-1 per row of a pair table, the same for all of a customer's pairs."""
    customers = table.index.get_level_values("customer_id")
    unique = np.unique(customers)
    fold_of = dict(
        zip(unique, np.random.default_rng(SEED).integers(0, FOLDS, len(unique)), strict=True)
    )
    return np.array([fold_of[c] for c in customers])


def main() -> None:
    args = protocol_args(__doc__)
    table = pair_features(read_frame(args.orders), pd.Timestamp(args.origin), args.horizon)
    y = table.pop("y").to_numpy()
    folds = customer_folds(table)
    x = table.to_numpy()
    print(f"{len(y)} pairs with >= 2 purchase days, base rate {y.mean():.3f}, "
          f"{FOLDS} folds by customer")  # fmt: skip
    for label, gam in (("logistic regression", False), ("GAM (cubic splines)", True)):
        score = out_of_fold(x, y, folds, gam)
        print(f"{label:<22} out-of-fold AUC {auc(score, y == 1):.3f}")
    print("target 0.70; compare the forecaster's AUC in `forecast backtest` (same data, origin)")


if __name__ == "__main__":
    main()
