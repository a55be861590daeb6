import json
import re
from dataclasses import replace
from datetime import date, timedelta

import numpy as np
import pytest
from numpy.typing import NDArray
from statsmodels.tools.numdiff import approx_fprime

from app.forecast import (
    Answer,
    PairHistory,
    PopulationParams,
    ProductSettings,
    fit_population,
    forecast_pair,
    score_batch,
)
from app.forecast.features import (
    MOMENTUM_PRIOR,
    V_NAMES,
    X_NAMES,
    Z_NAMES,
    BatchInput,
    Purchases,
    empty_answers,
    product_momentum,
    purchases_before,
)
from app.forecast.metrics import interval_coverage
from app.forecast.model import MODEL_VERSION, CensoredCureLogNormal

from .conftest import TODAY, synthetic_batch

D = timedelta(days=1)
SETTINGS = ProductSettings(
    lead_time_days=3, target_stockout_risk=0.1, min_active_probability=0.0,
    min_prompt_probability=0.0,
)  # fmt: skip


def _history(last: date, units: float = 1.0, answers: tuple[Answer, ...] = ()) -> PairHistory:
    days = [last - 40 * D, last - 20 * D]
    return PairHistory(purchases=(*((d, 1.0) for d in days), (last, units)), answers=answers)


def test_params_round_trip_through_json(params: PopulationParams) -> None:
    again = PopulationParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert again == params


def test_model_analytic_score_matches_numerical_gradient() -> None:
    rng = np.random.default_rng(0)
    n = 400
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    z = np.column_stack([np.ones(n), rng.normal(size=n)])
    w = np.ones((n, 1))
    model = CensoredCureLogNormal(
        rng.normal(3, 0.5, n), (rng.random(n) < 0.6).astype(float), x, z, w,
        x_names=("a", "b"), z_names=("c", "d"), w_names=("e",),
    )  # fmt: skip
    p = np.array([3.0, 0.2, 0.5, -0.3, -0.5])
    np.testing.assert_allclose(
        model.score(p), approx_fprime(p, model.loglike, centered=True), rtol=1e-5, atol=1e-6
    )


def test_a_small_shop_where_nobody_stops_keeps_its_regular_buyers_active() -> None:
    # Few pairs and no stopped one: the activity part is not identified, and unpenalised its
    # slopes ran to hundreds, calling regular buyers "stopped" (no prompt for them at all).
    small = synthetic_batch(150, seed=5, stop_p=0.0)
    params = fit_population(small, TODAY, seed=0)
    kx, kz = len(X_NAMES), len(Z_NAMES)
    slopes = np.asarray(params.params[kx + 1 : kx + kz])
    assert np.abs(slopes).max() < 10
    f = score_batch(small, params, TODAY, 28)
    regular = (f.n_purchases >= 5) & (TODAY.toordinal() - f.last_day < 20)
    assert regular.sum() > 10
    assert f.p_active[regular].min() > 0.95


def test_longer_elapsed_open_interval_pushes_median_later(params: PopulationParams) -> None:
    early = forecast_pair(_history(TODAY - 5 * D), "fast", SETTINGS, params, TODAY, 28)
    late = forecast_pair(_history(TODAY - 40 * D), "fast", SETTINGS, params, TODAY, 28)
    assert (late.median_on - late.last_purchased_on) > (early.median_on - early.last_purchased_on)
    assert late.median_on >= TODAY


def test_bigger_last_purchase_pushes_run_out_later(params: PopulationParams) -> None:
    last = TODAY - 2 * D
    one = forecast_pair(_history(last, units=1), "fast", SETTINGS, params, TODAY, 28)
    three = forecast_pair(_history(last, units=3), "fast", SETTINGS, params, TODAY, 28)
    assert three.median_on > one.median_on


def test_skip_keeps_run_out_after_skip_day_and_marks_pair_active(
    params: PopulationParams,
) -> None:
    last = TODAY - 60 * D
    plain = forecast_pair(_history(last), "fast", SETTINGS, params, TODAY, 28)
    skipped = forecast_pair(
        _history(last, answers=(Answer(TODAY - 1 * D, "skip"),)), "fast", SETTINGS, params,
        TODAY, 28,
    )  # fmt: skip
    assert skipped.q10_on >= TODAY
    assert skipped.median_on >= plain.median_on
    assert skipped.p_active == 1.0 > plain.p_active


def test_snooze_moves_run_out_past_snooze_end(params: PopulationParams) -> None:
    last = TODAY - 15 * D
    answer = Answer(TODAY - 1 * D, "snooze", snooze_days=20)
    f = forecast_pair(_history(last, answers=(answer,)), "fast", SETTINGS, params, TODAY, 28)
    assert f.q10_on >= TODAY + 19 * D


def test_confirm_marks_a_run_out_and_restarts_the_interval(params: PopulationParams) -> None:
    last = TODAY - 30 * D
    confirm = Answer(TODAY - 2 * D, "confirm")
    f = forecast_pair(_history(last, answers=(confirm,)), "fast", SETTINGS, params, TODAY, 28)
    assert f.last_purchased_on == TODAY - 2 * D
    assert f.n_purchases == 4


def test_cold_start_uses_product_population(params: PopulationParams) -> None:
    one = PairHistory(purchases=((TODAY - 1 * D, 1.0),))
    fast = forecast_pair(one, "fast", SETTINGS, params, TODAY, 28)
    slow = forecast_pair(one, "slow", SETTINGS, params, TODAY, 28)
    assert fast.method == slow.method == "population"
    assert fast.n_intervals == 0
    assert slow.median_on > fast.median_on


def test_prompt_reads_risk_quantile_minus_lead(params: PopulationParams) -> None:
    h = _history(TODAY - 1 * D)
    base = forecast_pair(h, "slow", SETTINGS, params, TODAY, 28)
    riskier = forecast_pair(
        h, "slow", replace(SETTINGS, target_stockout_risk=0.3), params, TODAY, 28
    )
    longer = forecast_pair(h, "slow", replace(SETTINGS, lead_time_days=5), params, TODAY, 28)
    assert base.prompt_on is not None and riskier.prompt_on is not None
    assert base.prompt_on == base.explanation_values.runout_on - 3 * D
    assert riskier.prompt_on > base.prompt_on
    assert longer.prompt_on == base.prompt_on - 2 * D


def test_run_out_at_the_default_risk_is_the_80_percent_intervals_lower_end(
    synthetic, params: PopulationParams
) -> None:
    # "90 % chance of running out after X" and the 80 % interval "X to Y" agree, whatever the
    # calibration did to the interval's tail level.
    calibrated = replace(params, interval_alpha={"model": 0.07, "population": 0.13})
    f = score_batch(synthetic, calibrated, TODAY, 28)
    has = f.n_purchases > 0
    assert has.sum() > 100
    assert (f.risk_day[has] == f.q10_day[has]).all()
    riskier = score_batch(synthetic, calibrated, TODAY, 28, default_settings=replace(
        ProductSettings(), target_stockout_risk=0.3))  # fmt: skip
    assert (riskier.risk_day[has] >= f.risk_day[has]).all()
    assert (riskier.risk_day[has] > f.risk_day[has]).mean() > 0.5


def test_prompt_is_clamped_to_min_and_max_interval(params: PopulationParams) -> None:
    last = TODAY - 1 * D
    h = _history(last)
    low = forecast_pair(h, "slow", replace(SETTINGS, max_interval_days=5), params, TODAY, 28)
    high = forecast_pair(h, "slow", replace(SETTINGS, min_interval_days=300), params, TODAY, 28)
    assert low.prompt_on == last + 5 * D
    assert high.prompt_on == last + 300 * D


def test_prompt_is_never_before_today(params: PopulationParams) -> None:
    f = forecast_pair(_history(TODAY - 200 * D), "fast", SETTINGS, params, TODAY, 28)
    assert f.prompt_on == TODAY


def test_no_prompt_when_pair_looks_stopped(params: PopulationParams) -> None:
    strict = replace(SETTINGS, min_active_probability=0.999)
    f = forecast_pair(_history(TODAY - 300 * D), "fast", strict, params, TODAY, 28)
    assert f.prompt_on is None
    still = round(100 * f.p_active)
    assert f.explanation.endswith(
        f"; no prompt: the customer looks to have stopped buying it (still buying: {still}%, "
        "below the product's 100%)"
    )


def test_explanation_names_purchases_rate_and_delivery(params: PopulationParams) -> None:
    f = forecast_pair(_history(TODAY - 1 * D), "fast", SETTINGS, params, TODAY, 28)
    assert f.explanation.startswith("3 purchases, about 1 unit every")
    assert "90 % chance of running out after" in f.explanation
    assert f.explanation.endswith("delivery takes 3 days")


def test_single_pair_matches_batch_scorer(synthetic, params: PopulationParams) -> None:
    batch = score_batch(synthetic, params, TODAY, 28)
    rows = synthetic.line_pair == 0
    h = PairHistory(
        purchases=tuple(
            (date.fromordinal(int(d)), float(q))
            for d, q in zip(synthetic.line_day[rows], synthetic.line_qty[rows], strict=True)
        )
    )
    product = synthetic.product_ids[int(synthetic.pair_product[0])]
    single = forecast_pair(h, product, ProductSettings(), params, TODAY, 28)
    assert single.median_on == date.fromordinal(int(batch.median_day[0]))


def test_intervals_are_calibrated_on_held_out_synthetic_data() -> None:
    # Pairs never stop here: with stopped pairs the determinable-coverage count treats them as
    # misses of an interval that is conditional on being active (see the report).
    params = fit_population(synthetic_batch(3000, seed=3, stop_p=0.0), TODAY, seed=0)
    held_out = synthetic_batch(3000, seed=7, days=365 + 60, stop_p=0.0)
    f = score_batch(held_out, params, TODAY, 60)
    t = TODAY.toordinal()
    win = (held_out.line_day >= t) & (held_out.line_day < t + 60)
    first = np.full(held_out.n_pairs, 10**9)
    np.minimum.at(first, held_out.line_pair[win], held_out.line_day[win])
    truth = np.where(first < 10**9, first, -1)
    m = f.n_purchases >= 2
    cov, n = interval_coverage(f.q10_day[m], f.q90_day[m], truth[m], t + 60)
    assert n > 500
    assert 0.75 <= cov <= 0.85


def test_forecast_pair_rejects_empty_history(params: PopulationParams) -> None:
    with pytest.raises(ValueError, match="no purchase"):
        forecast_pair(PairHistory(purchases=()), "fast", SETTINGS, params, TODAY, 28)


def test_whether_layer_is_fitted_before_today_and_round_trips(params: PopulationParams) -> None:
    assert len(params.activity) == 2 * len(V_NAMES)
    assert 0.0 <= params.prompt_threshold <= 1.0
    again = PopulationParams.from_dict(json.loads(json.dumps(params.to_dict())))
    assert again.activity == params.activity
    assert again.prompt_threshold == params.prompt_threshold


def test_whether_layer_ignores_data_on_or_after_today(synthetic) -> None:
    from dataclasses import replace as dc_replace

    t = TODAY.toordinal()
    late = synthetic.line_day >= t
    extra = dc_replace(
        synthetic,
        line_pair=np.r_[synthetic.line_pair, synthetic.line_pair[:50]],
        line_day=np.r_[synthetic.line_day, np.full(50, t + 3)],
        line_qty=np.r_[synthetic.line_qty, np.ones(50)],
    )
    assert not late.any()
    a = fit_population(synthetic, TODAY, seed=0)
    b = fit_population(extra, TODAY, seed=0)
    assert a.activity == b.activity and a.prompt_threshold == b.prompt_threshold


def test_prompt_gate_drops_unlikely_prompts(params: PopulationParams) -> None:
    h = _history(TODAY - 1 * D)
    open_gate = forecast_pair(
        h, "slow", replace(SETTINGS, min_prompt_probability=0.0), params, TODAY, 28
    )
    closed = forecast_pair(
        h, "slow", replace(SETTINGS, min_prompt_probability=1.0), params, TODAY, 28
    )
    assert open_gate.prompt_on is not None
    assert closed.prompt_on is None
    assert "no prompt" not in open_gate.explanation
    assert re.search(r"; no prompt: a purchase in the 7 days from the prompt day is \d+% likely, "
                     r"below the 100% a prompt needs$", closed.explanation)  # fmt: skip


def test_min_prompt_probability_is_validated() -> None:
    with pytest.raises(ValueError, match="min_prompt_probability"):
        ProductSettings(min_prompt_probability=1.5)


def test_explanation_says_when_the_minimum_interval_holds_the_prompt_back() -> None:
    from datetime import date

    from app.forecast.prompt import prompt_clause
    from app.forecast.types import Explanation

    values = Explanation(
        n_purchases=5, units_per_purchase=1, interval_days=6, runout_quantile=0.1,
        runout_on=date(2026, 11, 24), lead_time_days=3, method="model",
    )  # fmt: skip
    last, today = date(2026, 11, 20), date(2026, 11, 22)
    assert prompt_clause(values, date(2026, 11, 21), last, today) == ""
    assert prompt_clause(values, date(2026, 11, 27), last, today) == (
        "; asking on 27 Nov, the product's minimum of 7 days after the last order"
    )
    assert prompt_clause(values, today, last, date(2026, 11, 22)) == (
        "; that day (21 Nov) had passed on 22 Nov, so asking at the first chance"
    )
    assert prompt_clause(values, None, last, today) == ""


def test_explanation_says_when_the_maximum_interval_brings_the_prompt_forward() -> None:
    from datetime import date

    from app.forecast.prompt import prompt_clause
    from app.forecast.types import Explanation

    values = Explanation(
        n_purchases=4, units_per_purchase=1, interval_days=30, runout_quantile=0.1,
        runout_on=date(2026, 12, 31), lead_time_days=3, method="model",
    )  # fmt: skip
    last = date(2026, 12, 1)
    assert prompt_clause(values, date(2026, 12, 15), last, date(2026, 12, 3)) == (
        "; asking on 15 Dec, the product's maximum of 14 days after the last order"
    )
    # Its day has passed (no prompt was worth it before the maximum applied): not "a maximum
    # of 23 days", which the product does not have.
    assert prompt_clause(values, date(2026, 12, 24), last, date(2026, 12, 24)) == (
        "; asking on 24 Dec, 23 days after the last order: the product's maximum interval has"
        " been reached"
    )


def _purchases(product_days: list[tuple[int, list[int]]]) -> tuple[Purchases, NDArray[np.int64]]:
    """One pair per (product code, purchase days)."""
    pair_product = np.array([p for p, _ in product_days], dtype=np.int64)
    pairs = np.concatenate([np.full(len(d), i) for i, (_, d) in enumerate(product_days)])
    days = np.concatenate([np.array(d) for _, d in product_days])
    batch = BatchInput(
        pair_product, np.arange(len(product_days)), ("steady", "rising"), pairs.astype(np.int64),
        days.astype(np.int64), np.ones(len(days)), *empty_answers(),
    )  # fmt: skip
    return purchases_before(batch, 1000), pair_product


def test_product_momentum_compares_the_last_4_weeks_with_the_8_before() -> None:
    # Customers of product 0 buy every 7 days throughout; product 1's start buying 4 weeks ago.
    steady = [(0, list(range(900, 1000, 7))) for _ in range(5)]
    rising = [(1, list(range(972, 1000, 7))) for _ in range(5)]
    pur, pair_product = _purchases(steady + rising)
    momentum = product_momentum(pur, pair_product, 2, 1000)
    assert abs(momentum[0]) < 0.15
    assert momentum[1] == pytest.approx(np.log((20 + MOMENTUM_PRIOR) / MOMENTUM_PRIOR))
    # With less than 4 weeks of history before the last 4 there is nothing to compare with.
    pur, pair_product = _purchases([(0, [960, 980]), (1, [990])])
    assert np.all(product_momentum(pur, pair_product, 2, 1000) == 0.0)


def test_a_case_buyer_on_a_steady_cadence_is_forecast_by_it(params: PopulationParams) -> None:
    # The same 30-day cadence, 2 or 150 units at a time: the pair's own gaps say how long its
    # usual purchase lasts (the absolute count read 150 as months of stock, and no prompt).
    days = [TODAY - d * D for d in (95, 65, 35, 5)]
    by_units = {}
    for units in (2.0, 150.0):
        h = PairHistory(purchases=tuple((d, units) for d in days))
        by_units[units] = forecast_pair(h, "slow", SETTINGS, params, TODAY, 28)
    assert by_units[150.0].median_on == by_units[2.0].median_on
    assert by_units[150.0].prompt_on == by_units[2.0].prompt_on
    # A purchase bigger than the pair's usual still lasts longer.
    bigger = PairHistory(purchases=(*((d, 2.0) for d in days[:-1]), (days[-1], 6.0)))
    assert forecast_pair(bigger, "slow", SETTINGS, params, TODAY, 28).median_on > (
        by_units[2.0].median_on
    )


def test_parameters_stored_by_lncure_4_still_load(params: PopulationParams) -> None:
    old = params.to_dict() | {"model_version": "lncure-4"}
    assert PopulationParams.from_dict(old) == params
    with pytest.raises(ValueError, match="unsupported model_version 'lncure-2'"):
        PopulationParams.from_dict(old | {"model_version": "lncure-2"})


def test_parameters_stored_before_momentum_score_as_they_did(
    synthetic, params: PopulationParams
) -> None:
    k = len(V_NAMES)
    old = params.to_dict()
    old["model_version"] = "lncure-3"
    old["product_norms"] = {p: v[:2] for p, v in old["product_norms"].items()}
    old["activity"] = [*old["activity"][: k - 1], *old["activity"][k : 2 * k - 1]]
    upgraded = PopulationParams.from_dict(old)
    assert upgraded.model_version == MODEL_VERSION
    assert [v[2] for v in upgraded.product_norms.values()] == [0.0, 0.0]
    # Their momentum coefficients are 0: what momentum is stored changes nothing.
    assert upgraded.activity[k - 1] == upgraded.activity[2 * k - 1] == 0.0
    assert upgraded.activity[: k - 1] == params.activity[: k - 1]
    shifted = replace(upgraded, product_norms={p: (*v[:2], 3.0) for p, v in
                                               upgraded.product_norms.items()})  # fmt: skip
    a = score_batch(synthetic, upgraded, TODAY, 28)
    b = score_batch(synthetic, shifted, TODAY, 28)
    assert np.array_equal(a.p_within, b.p_within)
    # With a coefficient, the momentum stored with the parameters is what the scorer reads
    # (a single customer's pairs, as an order sync scores them, could not tell it).
    weighted = list(params.activity)
    weighted[k - 1] = weighted[2 * k - 1] = 0.5
    fitted = replace(params, activity=tuple(weighted))
    moved = replace(fitted, product_norms={p: (*v[:2], 3.0) for p, v in
                                           fitted.product_norms.items()})  # fmt: skip
    assert np.all(
        score_batch(synthetic, moved, TODAY, 28).p_within
        >= score_batch(synthetic, fitted, TODAY, 28).p_within
    )
    assert not np.array_equal(
        score_batch(synthetic, fitted, TODAY, 28).p_within,
        score_batch(synthetic, moved, TODAY, 28).p_within,
    )
    with pytest.raises(ValueError, match="unsupported model_version"):
        PopulationParams.from_dict(old | {"model_version": "lncure-2"})


@pytest.mark.parametrize(
    "history",
    [
        _history(TODAY - 1 * D, units=1_000_000.0),
        PairHistory(purchases=((TODAY - 1 * D, 50_000.0),)),  # a first purchase, in bulk
    ],
)
def test_a_huge_purchase_lasts_at_most_a_century(params: PopulationParams, history) -> None:
    f = forecast_pair(history, "fast", SETTINGS, params, TODAY, 28)
    assert TODAY < f.median_on <= f.q90_on <= TODAY + timedelta(days=36_525)
