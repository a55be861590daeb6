"""The back-test protocol of FORECAST_EVAL.md: candidate and every baseline, one table.

Fit on everything before the origin C; the truth of a pair is its first purchase day in
[C, C + H) or none. Strata: pairs with >= 2 purchase days before C, and cold starts (exactly 1).
Prompts use the default ``ProductSettings`` (lead time ``lead_days``, stock-out risk 10 %).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from app.forecast import baselines as bl
from app.forecast.data import read_orders
from app.forecast.features import I64, BatchInput, purchases_before
from app.forecast.metrics import auc, brier, interval_coverage, prompt_outcomes, timing
from app.forecast.model import MODEL_VERSION, fit_population
from app.forecast.score import score_batch
from app.forecast.types import ProductSettings

SEED = 0
PACKAGES = ("numpy", "scipy", "statsmodels", "pandas")
STRATA = (("repeat (>=2)", 2, None), ("cold start (=1)", 1, 1))
COLUMNS = (
    ("n", "n", "{:.0f}"), ("base", "base_rate", "{:.3f}"), ("AUC", "auc", "{:.3f}"),
    ("Brier", "brier", "{:.4f}"), ("MAE d", "mae_days", "{:.1f}"), ("±7d", "within_7d", "{:.3f}"),
    ("cov80", "coverage_80", "{:.3f}"), ("late", "late_per_100", "{:.1f}"),
    ("early", "too_early_per_100", "{:.1f}"), ("ontime", "on_time_per_100", "{:.1f}"),
    ("reached", "on_time_reached", "{:.0f}"), ("prompts/act", "prompts_per_active_pair", "{:.2f}"),
)  # fmt: skip


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def truth_days(batch: BatchInput, origin: int, horizon: int) -> I64:
    """First purchase day in [origin, origin + horizon) per pair, -1 for none."""
    win = (batch.line_day >= origin) & (batch.line_day < origin + horizon)
    big = np.iinfo(np.int64).max
    first = np.full(batch.n_pairs, big)
    np.minimum.at(first, batch.line_pair[win], batch.line_day[win])
    return np.where(first < big, first, -1)


def _metrics(
    pred: bl.Predictions, truth: I64, mask: np.ndarray, origin: int, end: int
) -> dict[str, float]:
    y = truth[mask] >= 0
    p = pred.p_within[mask]
    mae, within = timing(pred.median_day[mask], truth[mask])
    q10, q90 = pred.q10_day[mask], pred.q90_day[mask]
    cov = interval_coverage(q10, q90, truth[mask], end)[0] if (q10 >= 0).all() else float("nan")
    out = {
        "n": float(mask.sum()),
        "base_rate": float(y.mean()) if y.size else float("nan"),
        "auc": auc(p, y),
        "brier": brier(p, y),
        "mae_days": mae,
        "within_7d": within,
        "coverage_80": cov,
    }
    out.update(prompt_outcomes(pred.prompt_day[mask], truth[mask], origin, end))
    return out


def run_backtest(
    orders: str | Path, origin: date, horizon: int, lead_days: int = 3
) -> dict[str, Any]:
    """Run the protocol; returns a JSON-safe dict (results per stratum and model, provenance)."""
    started = time.perf_counter()
    data = read_orders(orders)
    batch = data.batch
    c = origin.toordinal()
    truth = truth_days(batch, c, horizon)
    settings = ProductSettings(lead_time_days=lead_days)
    timings: dict[str, float] = {}

    def candidate() -> bl.Predictions:
        params = fit_population(batch, origin, seed=SEED, calibration_days=horizon)
        f = score_batch(batch, params, origin, horizon, default_settings=settings)
        return bl.Predictions(f.p_within, f.median_day, f.q10_day, f.q90_day, f.prompt_day)

    models: dict[str, Callable[[], bl.Predictions]] = {
        f"kaidoki ({MODEL_VERSION})": candidate,
        "fixed 30-day cadence": lambda: bl.fixed_cadence(batch, c, horizon, lead_days),
        "pair last interval": lambda: bl.last_interval(batch, c, horizon, lead_days),
        "pair mean interval": lambda: bl.mean_interval(batch, c, horizon, lead_days),
        "product median interval": lambda: bl.product_median(batch, c, horizon, lead_days),
        "product Kaplan-Meier": lambda: bl.product_km(batch, c, horizon, lead_days),
        "pair BG/NBD": lambda: bl.pair_bgnbd(batch, c, horizon, lead_days),
    }
    preds: dict[str, bl.Predictions] = {}
    for name, fn in models.items():
        t0 = time.perf_counter()
        preds[name] = fn()
        timings[name] = round(time.perf_counter() - t0, 2)
    count = purchases_before(batch, c).count
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, lo, hi in STRATA:
        mask = (count >= lo) & (count <= (hi if hi is not None else np.iinfo(np.int64).max))
        results[label] = {
            name: _metrics(p, truth, mask, c, c + horizon) for name, p in preds.items()
        }
    return {
        "orders": str(orders),
        "orders_sha256": sha256(orders),
        "origin": origin.isoformat(),
        "horizon_days": horizon,
        "lead_days": lead_days,
        "seed": SEED,
        "python": platform.python_version(),
        "packages": {p: importlib.metadata.version(p) for p in PACKAGES},
        "seconds": {**timings, "total": round(time.perf_counter() - started, 2)},
        "results": results,
    }


def json_safe(value: Any) -> Any:
    """NaN / inf -> None, recursively (JSON has no NaN)."""
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value


def format_table(report: dict[str, Any]) -> str:
    """The report as a plain-text table, one block per stratum."""
    lines = [
        f"orders {report['orders']}  sha256 {report['orders_sha256']}",
        f"origin {report['origin']}  horizon {report['horizon_days']} d  lead "
        f"{report['lead_days']} d  seed {report['seed']}  python {report['python']}  "
        + "  ".join(f"{k} {v}" for k, v in report["packages"].items()),
    ]
    width = max(len(n) for block in report["results"].values() for n in block) + 2
    for stratum, block in report["results"].items():
        lines.append("")
        lines.append(f"[{stratum}]")
        lines.append("model".ljust(width) + " ".join(h.rjust(8) for h, _, _ in COLUMNS))
        for name, m in block.items():
            cells = []
            for _, key, fmt in COLUMNS:
                v = m.get(key, float("nan"))
                cells.append(("-" if not np.isfinite(v) else fmt.format(v)).rjust(8))
            lines.append(name.ljust(width) + " ".join(cells))
    lines.append("")
    lines.append("seconds: " + ", ".join(f"{k} {v}" for k, v in report["seconds"].items()))
    return "\n".join(lines)
