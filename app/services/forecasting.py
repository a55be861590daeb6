"""Forecasts on plans: the nightly refit and the re-estimation after every order sync.

The estimation itself is ``app.forecast`` (pure); this module reads purchase histories from
the database into its flat arrays, and writes the results back onto the plans. Population
parameters are fitted by ``refit`` and stored in ``forecast_model``; between refits, synced
orders re-score only their customers' pairs from the stored parameters.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import Row, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlmodel import col

from app.db import (
    Prepared,
    bulk_update_by_id,
    fetch_raw,
    pk,
    placeholders,
    read_first,
    table_of,
)
from app.forecast import (
    BatchForecast,
    BatchInput,
    PopulationParams,
    ProductSettings,
    fit_population,
    score_batch,
)
from app.forecast.features import empty_answers
from app.forecast.prompt import (
    NO_PROMPT,
    explain,
    fixed_interval_prompt_days,
    no_prompt_clause,
    prompt_clause,
)
from app.forecast.score import METHOD_MODEL
from app.forecast.types import ANSWER_CODES, Explanation, Method
from app.models import (
    Customer,
    ForecastModel,
    ForecastOutcome,
    Plan,
    PlanRescore,
    PlanStatus,
    Product,
)
from app.services.plans import CHUNK, Pair, lock_customers

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
    """Placed order lines as (customer, product, local day, units), all customers or some.

    Lines of a pair on the same day are summed by the forecaster itself (no GROUP BY here:
    sorting millions of rows in the database cost more than the whole fit).

    Every pair of a loaded customer is included: the forecaster reads the customer's visits
    across products (cadence, recency). Rows come straight from the driver as integers (the
    day as its ordinal, computed by the database): a refit reads millions of them.
    """
    if session.connection().dialect.name == "postgresql":
        ordinal = "(o.ordered_on - DATE '0001-01-01' + 1)"
    else:
        ordinal = "CAST(julianday(o.ordered_on) - 1721424.5 AS INTEGER)"
    # Fixed fragments and placeholders only; no input reaches the text.
    sql = (
        f"SELECT o.customer_id, l.product_id, {ordinal}, l.quantity"  # noqa: S608
        " FROM order_line l JOIN orders o ON o.id = l.order_id"
        " WHERE o.status = 'placed'{where}"
    )
    # Answers: (customer, product, local day, kind, snooze days) of answered prompts.
    answer_day = ordinal.replace("o.ordered_on", "pr.answered_on")
    answer_sql = (
        f"SELECT pr.customer_id, pl.product_id, {answer_day},"  # noqa: S608
        " pr.status, COALESCE(pr.snooze_days, 0)"
        " FROM prompt pr JOIN plan pl ON pl.id = pr.plan_id"
        # A confirm whose reorder was cancelled brought nothing: it was no refill.
        " LEFT JOIN reorder ro ON ro.prompt_id = pr.id"
        " WHERE pr.status IN ('confirmed', 'skipped', 'snoozed') AND pr.answered_on IS NOT NULL"
        " AND (ro.status IS NULL OR ro.status <> 'cancelled'){where}"
    )
    rows: list[tuple[int, int, int, int]] = []
    answers: list[tuple[int, int, int, str, int]] = []
    if customer_ids is None:
        rows.extend(fetch_raw(session, sql.format(where="")))
        answers.extend(fetch_raw(session, answer_sql.format(where="")))
    else:
        wanted = sorted(set(customer_ids))
        for start in range(0, len(wanted), CHUNK):
            chunk = tuple(wanted[start : start + CHUNK])
            marks = placeholders(session, len(chunk))
            rows.extend(
                fetch_raw(session, sql.format(where=f" AND o.customer_id IN ({marks})"), chunk)
            )
            answers.extend(
                fetch_raw(
                    session, answer_sql.format(where=f" AND pr.customer_id IN ({marks})"), chunk
                )
            )
    return _history_from_rows(rows, answers)


_ANSWER_KIND = {"skipped": ANSWER_CODES["skip"], "snoozed": ANSWER_CODES["snooze"],
                "confirmed": ANSWER_CODES["confirm"]}  # fmt: skip


def _history_from_rows(
    rows: list[tuple[int, int, int, int]], answers: list[tuple[int, int, int, str, int]]
) -> History:
    table = np.array(rows, dtype=np.int64).reshape(-1, 4)
    customer, product, day, quantity = table.T
    products = np.unique(product)
    pair_keys, pair_code = np.unique(np.stack([customer, product]), axis=1, return_inverse=True)
    _, customer_code = np.unique(pair_keys[0], return_inverse=True)
    a_pair, a_day, a_kind, a_snooze = _answer_arrays(pair_keys, answers)
    batch = BatchInput(
        pair_product=np.searchsorted(products, pair_keys[1]).astype(np.int64),
        pair_customer=customer_code.astype(np.int64),
        product_ids=tuple(str(p) for p in products),
        line_pair=pair_code.reshape(-1).astype(np.int64),
        line_day=np.ascontiguousarray(day),
        line_qty=quantity.astype(np.float64),
        answer_pair=a_pair,
        answer_day=a_day,
        answer_kind=a_kind,
        answer_snooze_days=a_snooze,
    )
    return History(batch, pair_keys[0], pair_keys[1])


def _answer_arrays(
    pair_keys: np.ndarray, answers: list[tuple[int, int, int, str, int]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Answers as the forecaster's arrays, for the pairs that have purchases."""
    if not answers or pair_keys.shape[1] == 0:
        return empty_answers()
    keys = (pair_keys[0].astype(np.int64) << 32) | pair_keys[1].astype(np.int64)
    a = np.array([(c, p, d, _ANSWER_KIND[k], n) for c, p, d, k, n in answers], dtype=np.int64)
    wanted = (a[:, 0] << 32) | a[:, 1]
    index = np.searchsorted(keys, wanted).clip(max=keys.shape[0] - 1)
    found = keys[index] == wanted
    return (
        index[found].astype(np.int64),
        a[found, 2].copy(),
        a[found, 3].astype(np.int8),
        a[found, 4].copy(),
    )


def product_settings(session: Session, product_ids: Iterable[str]) -> dict[str, ProductSettings]:
    """The forecaster's view of these products' ops settings, keyed by product id."""
    wanted = sorted({int(p) for p in product_ids})
    settings: dict[str, ProductSettings] = {}
    columns = (pk(Product), col(Product.default_interval_days), col(Product.min_interval_days),
               col(Product.max_interval_days), col(Product.lead_time_days),
               col(Product.target_stockout_risk))  # fmt: skip
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        # Plain rows, not ORM objects: a refit or a preview reads every product.
        for product_id, default, low, high, lead, risk in session.execute(
            select(*columns).where(pk(Product).in_(chunk))
        ):
            settings[str(product_id)] = ProductSettings(
                default_interval_days=default,
                min_interval_days=low,
                max_interval_days=high,
                lead_time_days=lead,
                target_stockout_risk=risk,
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


REFIT_CHUNK = 5_000
"""Plans a refit writes per transaction. On SQLite each holds the write lock, on PostgreSQL
its customers' rows: customers' answers and order syncs go on in between."""


def refit(session: Session, today: date, now: datetime) -> RefitResult:
    """Fit the population on all history before ``today`` and re-score every plan.

    Commits as it goes, beginning with whatever ``session`` holds. History is read in one
    transaction that waits for no writer (``read_first``), the fit runs with none open, then
    the model and the plans are written, ``REFIT_CHUNK`` plans per transaction: a large shop's
    refit takes minutes, and no answer or order sync may wait that long. A plan written by
    someone else after it was read (an order synced, an answer's re-score, a pause) keeps
    what they wrote and is handed to the re-score sweep, which scores it with the new model.
    A crash part-way leaves every plan with a whole forecast, from the new model or the last.
    """
    session.commit()
    read_first(session)
    history = load_history(session)
    if history.batch.n_pairs == 0:
        session.rollback()
        raise ValueError("no purchases to fit a model on")
    plans = _plans_by_pair(session, history, only=None)
    settings = product_settings(session, history.batch.product_ids)
    session.commit()  # the reading transaction ends here
    params = fit_population(history.batch, today)
    # Scored as an order sync scores: as of tomorrow, so that the orders of today's first
    # hours (the refit runs at night) count, and an overdue prompt is still today's.
    forecasts = score_batch(history.batch, params, today + timedelta(days=1), HORIZON_DAYS,
                            settings=settings, earliest_prompt=today)  # fmt: skip
    rows = _forecast_rows(forecasts, plans, today)
    model = ForecastModel(
        model_version=params.model_version,
        trained_until_on=today,
        n_pairs=history.batch.n_pairs,
        params=params.to_dict(),
        fitted_at=now,
    )
    session.add(model)
    session.commit()
    assert model.id is not None
    _params_cache[model.id] = params
    written = _write_in_chunks(session, rows, list(plans.values()), _stamp(params, now), now)
    _hand_other_days_to_the_sweep(session, list(plans.values()), today, now)
    logger.info("refit model %s on %d pairs; %d plans rescored", model.id, model.n_pairs, written)
    return RefitResult(model.id, model.n_pairs, written)


def _write_in_chunks(
    session: Session,
    rows: list[dict[str, Any]],
    plans: list[PlanRow],
    stamp: dict[str, Any],
    now: datetime,
) -> int:
    """Write a refit's forecast ``rows`` onto ``plans`` (as read), a chunk per transaction,
    in customer order as an order sync locks them; returns how many plans were written."""
    read = {plan.id: plan for plan in plans}
    rows.sort(key=lambda row: (read[row["id"]].customer_id, row["id"]))
    written = 0
    for start in range(0, len(rows), REFIT_CHUNK):
        chunk = rows[start : start + REFIT_CHUNK]
        lock_customers(session, {read[row["id"]].customer_id for row in chunk})
        guarded = [row | stamp | {"seen": read[row["id"]].updated_at} for row in chunk]
        n = bulk_update_by_id(session, Plan, guarded, unless_changed="updated_at")
        session.commit()
        written += n
        if n < len(chunk):
            _hand_changed_to_the_sweep(session, [row["id"] for row in chunk], now)
    return written


def _hand_other_days_to_the_sweep(
    session: Session, plans: list[PlanRow], today: date, now: datetime
) -> None:
    """Ask for a re-score, with the new model, of the plans of customers whose own day is not
    ``today`` (a time zone far from the shop's): the sweep scores each on its customer's day.
    In a transaction of its own."""
    customer = table_of(Customer)
    zones = session.execute(select(customer.c.timezone).distinct()).scalars().all()
    others = [z for z in zones if z and now.astimezone(ZoneInfo(z)).date() != today]
    if not others:
        return
    elsewhere = set(
        session.scalars(select(customer.c.id).where(customer.c.timezone.in_(others))).all()
    )
    request_rescores(session, sorted(p.id for p in plans if p.customer_id in elsewhere), now)
    session.commit()


def _hand_changed_to_the_sweep(session: Session, plan_ids: list[int], now: datetime) -> None:
    """Ask for a re-score of the plans among ``plan_ids`` that a refit did not write (changed
    since it read them), now that the new model is stored; in a transaction of its own."""
    plan = table_of(Plan)
    changed: list[int] = []
    for start in range(0, len(plan_ids), CHUNK):
        changed += session.scalars(
            select(plan.c.id)
            .where(
                plan.c.id.in_(plan_ids[start : start + CHUNK]),
                plan.c.forecast_at.is_distinct_from(now),
            )
            .order_by(plan.c.id)
        ).all()
    request_rescores(session, changed, now)
    session.commit()


def reestimate_on_their_days(
    session: Session, pairs: Iterable[Pair], now: datetime, zones: Mapping[int, ZoneInfo]
) -> int:
    """``reestimate`` each pair on its customer's own day (the date ``now`` in ``zones``, by
    customer id; ``plans.customer_zones``): an order placed at 01:30 in Auckland is that
    customer's today, whatever day it is in Tokyo. Returns the number of plans written."""
    by_day: dict[date, set[Pair]] = {}
    for pair in set(pairs):
        by_day.setdefault(now.astimezone(zones[pair[0]]).date(), set()).add(pair)
    return sum(reestimate(session, group, day, now) for day, group in sorted(by_day.items()))


def reestimate(session: Session, pairs: Iterable[Pair], today: date, now: datetime) -> int:
    """Re-score ``pairs`` from the stored parameters (no-op before the first refit).

    The forecaster reads history before its origin day; what just happened today (the order
    being synced, the answer being given) must count, so the origin is tomorrow.
    Returns the number of plans written.
    """
    wanted = set(pairs)
    current = current_params(session)
    if not wanted or current is None:
        return 0
    customers = {c for c, _ in wanted}
    before = _stored_forecasts(session, customers, wanted)
    history = load_history(session, customers)
    rows = _score_and_store(session, history, current[1], today, now, only=wanted)
    _record_outcomes(session, before, rows, now)
    return len(rows)


RESCORE_BATCH = 200
"""Requested plans re-scored per transaction by the scheduler (on SQLite the sweep holds the
write lock meanwhile: a small batch keeps customers' answers from waiting on it)."""


def _rescore_upsert(dialect: str) -> Any:
    table = table_of(PlanRescore)
    upsert = (sqlite_insert if dialect == "sqlite" else postgresql_insert)(table)
    return upsert.values(
        plan_id=bindparam("plan_id"), requested_at=bindparam("at")
    ).on_conflict_do_update(
        index_elements=[table.c.plan_id], set_={"requested_at": upsert.excluded.requested_at}
    )


# On the driver's cursor (``Prepared``): every answer to a prompt asks for a re-score.
_RESCORE_UPSERTS = {
    dialect: Prepared(_rescore_upsert(dialect)) for dialect in ("sqlite", "postgresql")
}
_rescore = table_of(PlanRescore)
# A request renewed after it was read (a new answer) has another time, and stays.
_SERVED = delete(_rescore).where(
    _rescore.c.plan_id == bindparam("served_plan"), _rescore.c.requested_at == bindparam("seen")
)


def request_rescore(session: Session, plan_id: int, now: datetime) -> None:
    """Ask the scheduler to re-score ``plan_id`` (an answer is new evidence); one request per
    plan however many answers come, renewed so that a sweep already under way does it again."""
    _rescore_upsert_of(session).execute(session, {"plan_id": plan_id, "at": now})


def request_rescores(session: Session, plan_ids: Sequence[int], now: datetime) -> None:
    """``request_rescore`` for many plans, in one ``executemany``."""
    if plan_ids:
        params = [{"plan_id": plan_id, "at": now} for plan_id in plan_ids]
        session.execute(_rescore_upsert_of(session).statement, params)


def _rescore_upsert_of(session: Session) -> Prepared:
    return _RESCORE_UPSERTS[session.get_bind().dialect.name]


def rescore_requests(session: Session) -> Sequence[Row[int, datetime, int, int, str]]:
    """Up to ``RESCORE_BATCH`` re-score requests, oldest first, held until the transaction ends
    (``plan_id``, ``requested_at``, ``customer_id``, ``product_id``, ``timezone``). On
    PostgreSQL a second scheduler skips the rows this one holds."""
    return session.execute(
        select(col(PlanRescore.plan_id), col(PlanRescore.requested_at), col(Plan.customer_id),
               col(Plan.product_id), col(Customer.timezone))
        .join(Plan, col(Plan.id) == col(PlanRescore.plan_id))
        .join(Customer, col(Customer.id) == col(Plan.customer_id))
        .order_by(col(PlanRescore.requested_at))
        .limit(RESCORE_BATCH)
        .with_for_update(skip_locked=True, of=table_of(PlanRescore))
    ).all()  # fmt: skip


def rescore(
    session: Session, requests: Sequence[Row[int, datetime, int, int, str]], now: datetime
) -> int:
    """Re-score the plans of ``requests`` (from ``rescore_requests``), each on its customer's
    own day, and forget the requests (not ones renewed meanwhile); returns how many."""
    # The customer's own day: an answer given today must count (the origin is tomorrow).
    zones = {r.customer_id: ZoneInfo(r.timezone) for r in requests}  # ZoneInfo caches them
    reestimate_on_their_days(session, {(r.customer_id, r.product_id) for r in requests}, now, zones)
    if requests:
        served = [{"served_plan": r.plan_id, "seen": r.requested_at} for r in requests]
        session.execute(_SERVED, served)
    return len(requests)


def _stored_forecasts(
    session: Session, customers: set[int], wanted: set[Pair]
) -> dict[int, Row[Any]]:
    """The forecasts stored on the plans of ``wanted`` (plan id -> row), before a re-score."""
    plan = table_of(Plan)
    found: dict[int, Row[Any]] = {}
    ordered = sorted(customers)
    for start in range(0, len(ordered), CHUNK):
        rows = session.execute(
            select(plan.c.id, plan.c.customer_id, plan.c.product_id, plan.c.median_on,
                   plan.c.q10_on, plan.c.q90_on, plan.c.forecast_last_on)
            .where(plan.c.customer_id.in_(ordered[start : start + CHUNK]),
                   plan.c.median_on.is_not(None))
        )  # fmt: skip
        found.update({r.id: r for r in rows if (r.customer_id, r.product_id) in wanted})
    return found


def _record_outcomes(
    session: Session, before: dict[int, Row[Any]], rows: list[dict[str, Any]], now: datetime
) -> None:
    """Keep each stored forecast that a newer purchase has just put to the test, with that
    purchase's day: the re-score's last purchase day moved past the forecast's. A purchase
    as the forecaster sees it: an order, or a confirm (the run-out it marks), with the order
    that fulfils a confirm dated on the confirm's day (so it tests nothing twice)."""
    outcomes = []
    for row in rows:
        old = before.get(row["id"])
        if old is None or row["forecast_last_on"] is None:
            continue
        if old.forecast_last_on is not None and row["forecast_last_on"] > old.forecast_last_on:
            outcomes.append(
                {"plan_id": old.id, "product_id": old.product_id, "predicted_on": old.median_on,
                 "low_on": old.q10_on or old.median_on, "high_on": old.q90_on or old.median_on,
                 "actual_on": row["forecast_last_on"], "recorded_at": now}
            )  # fmt: skip
    if outcomes:
        session.execute(table_of(ForecastOutcome).insert(), outcomes)


def _score_and_store(
    session: Session,
    history: History,
    params: PopulationParams,
    today: date,
    now: datetime,
    only: set[Pair],
) -> list[dict[str, Any]]:
    """Score the pairs of ``only`` and store their forecasts; returns the rows written."""
    plans = _plans_by_pair(session, history, only)
    if not plans:
        return []
    settings = product_settings(session, history.batch.product_ids)
    origin = today + timedelta(days=1)
    forecasts = score_batch(history.batch, params, origin, HORIZON_DAYS, settings=settings,
                            earliest_prompt=today)  # fmt: skip
    stamp = _stamp(params, now)
    rows = _forecast_rows(forecasts, plans, today)
    bulk_update_by_id(session, Plan, [row | stamp for row in rows])
    return rows


def _stamp(params: PopulationParams, now: datetime) -> dict[str, Any]:
    """The columns every forecast written onto a plan carries besides its own."""
    return {"model_version": params.model_version, "forecast_at": now, "updated_at": now}


class PlanRow(NamedTuple):
    """A plan as the forecast writer reads it (``updated_at`` as the driver returned it)."""

    id: int
    customer_id: int
    status: PlanStatus
    preferred_interval_days: int | None
    updated_at: Any


def _plans_by_pair(
    session: Session, history: History, only: set[Pair] | None
) -> dict[int, PlanRow]:
    """Pair index in ``history`` -> the plan to write, of every pair or of those in ``only``."""
    index = {
        (int(c), int(p)): i
        for i, (c, p) in enumerate(
            zip(history.pair_customer_ids, history.pair_product_ids, strict=True)
        )
    }
    sql = (
        "SELECT id, customer_id, product_id, status, preferred_interval_days, updated_at FROM plan"
    )
    found: dict[int, PlanRow] = {}
    rows: list[tuple[Any, ...]] = []
    if only is None:
        rows = fetch_raw(session, sql)
    else:
        customers = sorted({c for c, _ in only})
        for start in range(0, len(customers), CHUNK):
            chunk = tuple(customers[start : start + CHUNK])
            where = f" WHERE customer_id IN ({placeholders(session, len(chunk))})"
            rows.extend(fetch_raw(session, sql + where, chunk))
    for plan_id, customer_id, product_id, status, preferred, updated_at in rows:
        pair = (customer_id, product_id)
        if pair in index and (only is None or pair in only):
            found[index[pair]] = PlanRow(
                plan_id, customer_id, PlanStatus(status), preferred, updated_at
            )
    return found


def _forecast_rows(
    forecasts: BatchForecast,
    plans: dict[int, PlanRow],
    today: date,
) -> list[dict[str, Any]]:
    """The forecast columns of each plan (pair index -> plan), built from the score arrays.

    This runs for every plan at a refit, so it avoids building a ``Forecast`` per row; the
    explanation goes through the forecaster's own ``Explanation`` and ``explain``.
    """
    days: dict[int, date] = {}

    def day(ordinal: int) -> date:
        found = days.get(ordinal)
        if found is None:
            found = days[ordinal] = date.fromordinal(ordinal)
        return found

    f = forecasts
    index = np.fromiter(plans, dtype=np.int64, count=len(plans))
    # Plain Python lists: indexing numpy arrays one element at a time is the slow part here.
    columns = zip(
        *(
            a[index].tolist()
            for a in (
                f.n_purchases, f.rate, f.last_units, f.method, f.risk, f.risk_day, f.lead_time,
                f.prompt_day, f.last_day, f.median_day, f.q10_day, f.q90_day, f.p_active,
                f.p_within, f.no_prompt, f.gate_value, f.gate_limit, f.gate_window,
            )
        ),
        strict=True,
    )  # fmt: skip
    rows = []
    for (plan_id, _, status, preferred, _), (
        n, rate, units, method_code, risk, risk_day, lead, prompt, last, median, q10, q90,
        p_active, p_within, no_prompt, gate_value, gate_limit, gate_window,
    ) in zip(plans.values(), columns, strict=True):  # fmt: skip
        if n == 0:
            continue
        method: Method = "model" if method_code == METHOD_MODEL else "population"
        values = Explanation(
            n_purchases=n,
            units_per_purchase=units,
            interval_days=units / rate if rate > 0 else float("nan"),
            runout_quantile=risk,
            runout_on=day(risk_day),
            lead_time_days=lead,
            method=method,
        )
        prompt_on = None if prompt == NO_PROMPT else day(prompt)
        explanation = explain(values) + prompt_clause(values, prompt_on, day(last), today)
        if no_prompt:
            explanation += no_prompt_clause(no_prompt, gate_value, gate_limit, gate_window)
        if preferred is not None:
            # A fixed interval (set by the customer or ops) replaces the estimated prompt date.
            prompt_on = day(
                int(fixed_interval_prompt_days(last, preferred, lead, today.toordinal()))
            )
            explanation = f"fixed interval of {preferred} days; delivery takes {lead} days"
        if status is not PlanStatus.ACTIVE:
            prompt_on = None
        rows.append(
            {
                "id": plan_id,
                "rate_per_day": _finite(rate),
                "median_on": day(median),
                "q10_on": day(q10),
                "q90_on": day(q90),
                "p_active": _finite(p_active),
                "p_within_horizon": _finite(p_within),
                "prompt_on": prompt_on,
                "forecast_last_on": day(last),
                "forecast_method": method,
                "n_intervals": n - 1,
                "explanation": explanation[:500],
                "explanation_data": {
                    "n_purchases": n,
                    "units_per_purchase": _finite(units),
                    "interval_days": _finite(values.interval_days),
                    "runout_quantile": values.runout_quantile,
                    "runout_on": values.runout_on.isoformat(),
                    "lead_time_days": values.lead_time_days,
                    "method": method,
                    "preferred_interval_days": preferred,
                },
            }
        )
    return rows


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
