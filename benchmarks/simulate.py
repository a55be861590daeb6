"""Closed-loop simulation: a year of households served by three policies (seeded, ~1 minute).

    python benchmarks/simulate.py [--households 300] [--seed 0]

Households use a product at their own rate (units/day) that drifts month to month, sometimes
stockpile (order double), and answer prompts like people do: ignore some, confirm when stock is
low, skip when plenty remains, snooze in between. Deliveries arrive after the lead time.

Policies: (a) a fixed 30-day subscription; (b) a 30-day reminder the customer answers;
(c) Kaidoki: the forecaster re-estimated after every order and answer (answers fed back as
evidence), prompting on its prompt date. Printed: stock-out days and surplus stock (unit-days)
per customer-year, prompts per reorder, skip rate, and ratios against (a).
"""

import argparse
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np

from app.forecast import (
    Answer,
    PairHistory,
    PopulationParams,
    ProductSettings,
    fit_population,
    forecast_pair,
)
from app.forecast.features import BatchInput, empty_answers

START = date(2024, 1, 1)
DAYS = 365
LEAD = 3
SETTINGS = ProductSettings(
    lead_time_days=LEAD, target_stockout_risk=0.1, min_active_probability=0.0
)


@dataclass
class Household:
    rate: np.ndarray  # units/day for each simulated day
    qty: int
    stock: float
    history: list[tuple[date, float]] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)


def make_households(n: int, rng: np.random.Generator) -> list[Household]:
    out = []
    for _ in range(n):
        base = float(np.exp(rng.normal(np.log(1 / 20), 0.6)))  # one unit per ~20 days
        drift = np.exp(np.cumsum(rng.normal(0, 0.08, DAYS // 30 + 1)))
        rate = base * np.repeat(drift, 30)[:DAYS]
        qty = int(rng.integers(1, 4))
        # Warm-up history: 4 past purchases at the household's own pace.
        hist, day = [], START
        for _ in range(4):
            day -= timedelta(days=max(1, round(qty / base * np.exp(rng.normal(0, 0.2)))))
            hist.append((day, float(qty)))
        out.append(Household(rate, qty, stock=qty * float(rng.uniform(0.2, 1.0)),
                             history=sorted(hist)))  # fmt: skip
    return out


def answer(h: Household, t: int, rng: np.random.Generator) -> tuple[str, int]:
    if rng.random() < 0.15:
        return "ignore", 0
    days_left = h.stock / max(h.rate[t], 1e-9)
    if days_left <= LEAD + 4:
        return "confirm", 0
    if days_left >= 14:
        return ("snooze", int(rng.integers(7, 15))) if rng.random() < 0.3 else ("skip", 0)
    return ("confirm", 0) if rng.random() < 0.5 else ("snooze", 7)


def run(
    policy: str, households: list[Household], params: PopulationParams, seed: int
) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out_days = surplus = prompts = reorders = skips = answered = 0.0
    for h0 in households:
        h = Household(h0.rate, h0.qty, h0.stock, list(h0.history), [])
        arrivals: dict[int, float] = {}
        next_prompt = 0 if policy != "kaidoki" else -1
        if policy == "kaidoki":
            next_prompt = _kaidoki_prompt(h, params, 0)
        for t in range(DAYS):
            h.stock += arrivals.pop(t, 0.0)
            if policy == "subscription" and t % 30 == 0:
                arrivals[t + LEAD] = arrivals.get(t + LEAD, 0.0) + h.qty
                h.history.append((START + timedelta(days=t), float(h.qty)))
                reorders += 1
            elif policy != "subscription" and t == next_prompt:
                prompts += 1
                kind, n = answer(h, t, rng)
                today = START + timedelta(days=t)
                if kind == "confirm":
                    q = h.qty * (2 if rng.random() < 0.1 else 1)  # stockpiling
                    arrivals[t + LEAD] = arrivals.get(t + LEAD, 0.0) + q
                    h.history.append((today, float(q)))
                    reorders += 1
                elif kind in ("skip", "snooze"):
                    skips += kind == "skip"
                    h.answers.append(Answer(today, kind, n))  # type: ignore[arg-type]
                answered += kind != "ignore"
                if policy == "reminder":
                    next_prompt = t + (3 if kind == "ignore" else n if kind == "snooze" else 30)
                else:
                    nxt = _kaidoki_prompt(h, params, t + 1)
                    next_prompt = t + 3 if kind == "ignore" else max(nxt, t + 1)
            h.stock -= h.rate[t]
            if h.stock <= 0:
                out_days += 1
                h.stock = 0.0
            surplus += h.stock
    n = len(households)
    return {
        "stockout_days": out_days / n, "surplus_unit_days": surplus / n,
        "prompts_per_reorder": prompts / reorders if reorders else float("nan"),
        "skip_rate": skips / answered if answered else float("nan"), "reorders": reorders / n,
    }  # fmt: skip


def _kaidoki_prompt(h: Household, params: PopulationParams, t: int) -> int:
    today = START + timedelta(days=t)
    f = forecast_pair(
        PairHistory(tuple(h.history), tuple(h.answers)), "product", SETTINGS, params, today, 28
    )
    return (f.prompt_on - START).days if f.prompt_on else t + 7


def population_params(households: list[Household]) -> PopulationParams:
    """Fit the population on the households' warm-up histories (before START)."""
    lp, ld, lq = [], [], []
    for i, h in enumerate(households):
        for d, q in h.history:
            lp.append(i)
            ld.append(d.toordinal())
            lq.append(q)
    a = empty_answers()
    batch = BatchInput(
        np.zeros(len(households), np.int64), np.arange(len(households), dtype=np.int64),
        ("product",), np.array(lp, np.int64), np.array(ld, np.int64), np.array(lq), *a,
    )  # fmt: skip
    return fit_population(batch, START, seed=0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--households", type=int, default=300)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    hh = make_households(args.households, np.random.default_rng(args.seed))
    params = population_params(hh)
    results = {
        p: run(p, hh, params, args.seed + 1) for p in ("subscription", "reminder", "kaidoki")
    }
    base = results["subscription"]
    print(f"{args.households} households x {DAYS} days, lead {LEAD} d, seed {args.seed}")
    print(
        f"{'policy':16}{'stockout d':>12}{'surplus u-d':>13}{'prompts/reord':>15}"
        f"{'skip rate':>11}{'reorders':>10}{'stockout/a':>12}{'surplus/a':>11}"
    )
    for name, r in results.items():
        print(
            f"{name:16}{r['stockout_days']:12.1f}{r['surplus_unit_days']:13.1f}"
            f"{r['prompts_per_reorder']:15.2f}{r['skip_rate']:11.2f}{r['reorders']:10.1f}"
            f"{r['stockout_days'] / base['stockout_days']:12.2f}"
            f"{r['surplus_unit_days'] / base['surplus_unit_days']:11.2f}"
        )


if __name__ == "__main__":
    main()
