"""Forecasts on plans: the nightly refit and the re-estimation after every order sync.

The estimation itself is ``app.forecast`` (pure); this module reads purchase histories from
the database into its flat arrays, and writes the results back onto the plans. Population
parameters are fitted by ``refit`` and stored in ``forecast_model``; between refits, synced
orders re-score only their customers' pairs from the stored parameters.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import bulk_update_by_id, pk, table_of
from app.forecast import (
    BatchForecast,
    BatchInput,
    PopulationParams,
    ProductSettings,
    fit_population,
    score_batch,
)
from app.forecast.features import empty_answers
from app.models import ForecastModel, Order, OrderLine, OrderStatus, Plan, PlanStatus, Product
from app.services.plans import CHUNK, Pair

logger = logging.getLogger(__name__)

HORIZON_DAYS = 28
"""The horizon of the stored P(purchase within H days)."""

_params_cache: dict[int, PopulationParams] = {}


@dataclass(frozen=True)
class History:
    """Purchase histories as the forecaster's flat arrays, with the database keys of each pair."""

    batch: BatchInput
    pair_customer_ids: np.ndarray
    pair_product_ids: np.ndarray


@dataclass(frozen=True)
class RefitResult:
    model_id: int
    n_pairs: int
    n_plans_written: int


def load_history(session: Session, customer_ids: Iterable[int] | None = None) -> History:
    """Placed purchases per (customer, product, local day), all customers or only some.

    Every pair of a loaded customer is included: the forecaster reads the customer's visits
    across products (cadence, recency).
    """
    orders, lines = table_of(Order), table_of(OrderLine)
    query = (
        select(
            orders.c.customer_id,
            lines.c.product_id,
            orders.c.ordered_on,
            func.sum(lines.c.quantity),
        )
        .join(orders, orders.c.id == lines.c.order_id)
        .where(orders.c.status == OrderStatus.PLACED.value)
        .group_by(orders.c.customer_id, lines.c.product_id, orders.c.ordered_on)
    )
    rows: list[Any]
    if customer_ids is None:
        rows = list(session.execute(query).all())
    else:
        wanted = sorted(set(customer_ids))
        rows = []
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            rows.extend(session.execute(query.where(orders.c.customer_id.in_(chunk))).all())
    return _history_from_rows(rows)


def _history_from_rows(rows: list[Any]) -> History:
    n = len(rows)
    customer = np.fromiter((r[0] for r in rows), dtype=np.int64, count=n)
    product = np.fromiter((r[1] for r in rows), dtype=np.int64, count=n)
    day = np.fromiter((_ordinal(r[2]) for r in rows), dtype=np.int64, count=n)
    quantity = np.fromiter((r[3] for r in rows), dtype=np.float64, count=n)
    products, product_code = np.unique(product, return_inverse=True)
    pair_keys, pair_code = np.unique(np.stack([customer, product]), axis=1, return_inverse=True)
    _, customer_code = np.unique(pair_keys[0], return_inverse=True)
    pair_product = np.searchsorted(products, pair_keys[1])
    a_pair, a_day, a_kind, a_snooze = empty_answers()
    batch = BatchInput(
        pair_product=pair_product.astype(np.int64),
        pair_customer=customer_code.astype(np.int64),
        product_ids=tuple(str(p) for p in products),
        line_pair=pair_code.reshape(-1).astype(np.int64),
        line_day=day,
        line_qty=quantity,
        answer_pair=a_pair,
        answer_day=a_day,
        answer_kind=a_kind,
        answer_snooze_days=a_snooze,
    )
    del product_code
    return History(batch, pair_keys[0], pair_keys[1])


def _ordinal(value: date | str) -> int:
    # SQLite returns dates from a GROUP BY as text.
    return (value if isinstance(value, date) else date.fromisoformat(value)).toordinal()


def product_settings(session: Session) -> dict[str, ProductSettings]:
    """The forecaster's view of every product's ops settings, keyed by product id."""
    settings: dict[str, ProductSettings] = {}
    for product in session.scalars(select(Product)):
        settings[str(product.id)] = ProductSettings(
            default_interval_days=product.default_interval_days,
            min_interval_days=product.min_interval_days,
            max_interval_days=product.max_interval_days,
            lead_time_days=product.lead_time_days,
            target_stockout_risk=product.target_stockout_risk,
        )
    return settings


def current_params(session: Session) -> tuple[int, PopulationParams] | None:
    """The newest fitted parameters, or None before the first refit."""
    model_id = session.scalar(
        select(pk(ForecastModel)).order_by(col(ForecastModel.fitted_at).desc()).limit(1)
    )
    if model_id is None:
        return None
    if model_id not in _params_cache:
        model = session.get_one(ForecastModel, model_id)
        _params_cache[model_id] = PopulationParams.from_dict(model.params)
    return model_id, _params_cache[model_id]


def refit(session: Session, today: date, now: datetime) -> RefitResult:
    """Fit the population on all history before ``today`` and re-score every plan."""
    history = load_history(session)
    if history.batch.n_pairs == 0:
        raise ValueError("no purchases to fit a model on")
    params = fit_population(history.batch, today)
    model = ForecastModel(
        model_version=params.model_version,
        trained_until_on=today,
        n_pairs=history.batch.n_pairs,
        params=params.to_dict(),
        fitted_at=now,
    )
    session.add(model)
    session.flush()
    assert model.id is not None
    _params_cache[model.id] = params
    written = _score_and_store(session, history, params, today, now, only=None)
    logger.info("refit model %s on %d pairs; %d plans rescored", model.id, model.n_pairs, written)
    return RefitResult(model.id, model.n_pairs, written)


def reestimate(session: Session, pairs: Iterable[Pair], today: date, now: datetime) -> int:
    """Re-score ``pairs`` from the stored parameters (no-op before the first refit).

    Returns the number of plans written.
    """
    wanted = set(pairs)
    current = current_params(session)
    if not wanted or current is None:
        return 0
    history = load_history(session, {c for c, _ in wanted})
    return _score_and_store(session, history, current[1], today, now, only=wanted)


def _score_and_store(
    session: Session,
    history: History,
    params: PopulationParams,
    today: date,
    now: datetime,
    only: set[Pair] | None,
) -> int:
    plans = _plans_by_pair(session, history, only)
    if not plans:
        return 0
    forecasts = score_batch(
        history.batch, params, today, HORIZON_DAYS, settings=product_settings(session)
    )
    rows = []
    for index, (plan_id, status, preferred) in plans.items():
        rows.append(
            {"id": plan_id, **_plan_forecast(forecasts, index, status, preferred, today)}
            | {"model_version": params.model_version, "forecast_at": now, "updated_at": now}
        )
    bulk_update_by_id(session, Plan, rows)
    return len(rows)


def _plans_by_pair(
    session: Session, history: History, only: set[Pair] | None
) -> dict[int, tuple[int, PlanStatus, int | None]]:
    """Pair index in ``history`` -> (plan id, status, preferred interval) for plans to write."""
    index = {
        (int(c), int(p)): i
        for i, (c, p) in enumerate(
            zip(history.pair_customer_ids, history.pair_product_ids, strict=True)
        )
    }
    customer_ids = sorted({c for c, _ in index} if only is None else {c for c, _ in only})
    found: dict[int, tuple[int, PlanStatus, int | None]] = {}
    for start in range(0, len(customer_ids), CHUNK):
        chunk = customer_ids[start : start + CHUNK]
        for plan_id, customer_id, product_id, status, preferred in session.execute(
            select(
                pk(Plan),
                col(Plan.customer_id),
                col(Plan.product_id),
                col(Plan.status),
                col(Plan.preferred_interval_days),
            ).where(col(Plan.customer_id).in_(chunk))
        ):
            pair = (customer_id, product_id)
            if pair in index and (only is None or pair in only):
                found[index[pair]] = (plan_id, status, preferred)
    return found


def _plan_forecast(
    forecasts: BatchForecast, i: int, status: PlanStatus, preferred: int | None, today: date
) -> dict[str, Any]:
    forecast = forecasts.forecast(i)
    prompt_on = forecast.prompt_on
    explanation = forecast.explanation
    if preferred is not None:
        # A fixed interval (set by the customer or ops) replaces the estimated prompt date.
        lead = forecast.explanation_values.lead_time_days
        fixed = date.fromordinal(forecast.last_purchased_on.toordinal() + preferred - lead)
        prompt_on = max(fixed, today)
        explanation = f"fixed interval of {preferred} days; delivery takes {lead} days"
    if status is not PlanStatus.ACTIVE:
        prompt_on = None
    values = asdict(forecast.explanation_values)
    values["runout_on"] = values["runout_on"].isoformat()
    values = {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in values.items()
    }
    return {
        "rate_per_day": _finite(forecast.rate_units_per_day),
        "median_on": forecast.median_on,
        "q10_on": forecast.q10_on,
        "q90_on": forecast.q90_on,
        "p_active": _finite(forecast.p_active),
        "p_within_horizon": _finite(forecast.p_within_horizon),
        "prompt_on": prompt_on,
        "forecast_method": forecast.method,
        "n_intervals": forecast.n_intervals,
        "explanation": explanation[:500],
        "explanation_data": values | {"preferred_interval_days": preferred},
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
