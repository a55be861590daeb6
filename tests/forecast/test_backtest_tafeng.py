"""The accuracy targets of issue 3 on the Ta Feng half (FORECAST_EVAL.md)."""

from datetime import date
from pathlib import Path

import pytest

from app.forecast.evaluate import run_backtest

TAFENG = Path("/work/shared/data/tafeng_dev.csv.gz")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not TAFENG.exists(), reason="evaluation data not present"),
]
NAIVE = ("fixed 30-day cadence", "pair last interval", "pair mean interval",
         "product median interval", "product Kaplan-Meier")  # fmt: skip


@pytest.fixture(scope="module")
def repeat() -> dict[str, dict[str, float]]:
    report = run_backtest(TAFENG, date(2001, 2, 1), 28)
    assert report["seconds"]["total"] < 120
    results: dict[str, dict[str, float]] = report["results"]["repeat (>=2)"]
    return results


def _kaidoki(r: dict[str, dict[str, float]]) -> dict[str, float]:
    return next(v for k, v in r.items() if k.startswith("kaidoki"))


def test_auc_beats_pair_bgnbd(repeat) -> None:
    assert _kaidoki(repeat)["auc"] > repeat["pair BG/NBD"]["auc"]


def test_brier_beats_base_rate(repeat) -> None:
    k = _kaidoki(repeat)
    base = k["base_rate"] * (1 - k["base_rate"])
    assert k["brier"] < base


def test_interval_coverage_is_calibrated(repeat) -> None:
    assert 0.75 <= _kaidoki(repeat)["coverage_80"] <= 0.85


@pytest.mark.xfail(strict=True, reason="not reached yet: AUC 0.678 with lncure-5 (target 0.70)")
def test_auc_reaches_target(repeat) -> None:
    assert _kaidoki(repeat)["auc"] >= 0.70


def test_brier_beats_pair_bgnbd(repeat) -> None:
    assert _kaidoki(repeat)["brier"] < repeat["pair BG/NBD"]["brier"]


@pytest.mark.xfail(
    strict=True, reason="not reached yet: 6.8 on time per 100 vs 3 x 5.7 (reach 685 vs 653 is met)"
)
def test_on_time_prompts_triple_best_naive_and_reach_as_many_as_fixed_cadence(repeat) -> None:
    k = _kaidoki(repeat)
    best = max(repeat[n]["on_time_per_100"] for n in NAIVE)
    assert k["on_time_per_100"] >= 3 * best
    assert k["on_time_reached"] >= repeat["fixed 30-day cadence"]["on_time_reached"]
