"""The two-part timing model and its population fit.

Model (one row per interval that starts at a purchase; the last one of each pair is open):

* activity: with probability p = expit(Z gamma) another purchase follows this one at all
  (1 - p: the pair has stopped, the "cure" fraction);
* timing, if active: log T ~ Normal(X beta, exp(W delta)) in days since the purchase;
* a closed interval of g days contributes log p + log f(g); an open one, right-censored at
  "T >= c" (c days elapsed, or later when a skip or snooze says stock remained), contributes
  log(1 - p + p S(c - 1/2)) (days are whole; the half day is the continuity correction).

Covariates (``features.design``): the product norm (mean log interval of the product, shrunk to
the global mean), the pair's own mean log interval shrunk toward the norm in proportion to its
evidence, log units bought at the purchase and relative to the pair's usual, the customer's
visit cadence (any product), and the number of purchases; the activity part also has the
product's repeat propensity. One global fit with product-level norms: per-product fits would
starve most products, and pair-level fits do not scale.

Calibration of the 80 % interval: the likelihood's [q_0.1, q_0.9] is widened or narrowed by
choosing the tail level a of [q_a, q_(1-a)] so that, on the fitted intervals themselves (all
dated before ``today``), 80 % are covered, counted as the back-test counts (closed intervals
covered or not; open ones a miss when censored beyond q_(1-a), otherwise left out), separately
for pairs with history and cold starts. This is split-free conformal calibration of the quantile
level; it uses data before the origin only. Quantiles are of the next purchase *given the pair is
still active*; stopped pairs that the evaluation counts as misses are the known weak spot (a
pseudo back-test before ``today`` was tried and did not transfer across Chinese New Year).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import special
from statsmodels.base.model import GenericLikelihoodModel
from statsmodels.tools.numdiff import approx_fprime
from statsmodels.tools.sm_exceptions import ConvergenceWarning

from app.forecast import features as ft
from app.forecast.features import F64, I64, BatchInput

MODEL_VERSION = "lncure-5"
UPGRADABLE_VERSIONS = ("lncure-3", "lncure-4")
"""Older stored parameters, read until the next refit replaces them: lncure-3 (before the
whether-layer had ``product_momentum``) as if its coefficient were 0; lncure-4 as it is (its
units coefficient also applied to pairs with history, which lncure-5 leaves to their own gaps:
their forecasts move a little until the nightly refit)."""
_LOG_SQRT_2PI = 0.5 * np.log(2.0 * np.pi)


LOG_SIGMA_BOUNDS = (-20.0, 5.0)
ACTIVITY_RIDGE = 1.0
"""Prior precision of the activity part's slopes (a N(0, 1) prior; the intercept is free).
Where nearly no pair has stopped (a small or young shop), the likelihood alone pushes them
to +/- hundreds and calls regular buyers "stopped" (P(active) 1e-9); on thousands of pairs it
changes nothing measurable."""


class CensoredCureLogNormal(GenericLikelihoodModel):  # type: ignore[misc]
    """Mixture-cure log-normal with right censoring; analytic score.

    ``endog`` is log time (log interval for events, log(c - 1/2) for censored rows), ``event`` 1
    for a closed interval; ``x``, ``z``, ``w`` are the covariates of the location, the activity
    logit and the log scale. Parameters are [beta, gamma, delta].
    """

    def __init__(
        self,
        log_t: F64,
        event: F64,
        x: F64,
        z: F64,
        w: F64,
        x_names: tuple[str, ...] = ft.X_NAMES,
        z_names: tuple[str, ...] = ft.Z_NAMES,
        w_names: tuple[str, ...] = ft.W_NAMES,
        weights: F64 | None = None,
        **kwds: Any,
    ) -> None:
        self.event = np.asarray(event, dtype=np.float64)
        self.weights = np.ones_like(self.event) if weights is None else np.asarray(weights)
        self._cache: tuple[bytes, dict[str, F64]] | None = None
        self.z_mat = np.asarray(z, dtype=np.float64)
        self.w_mat = np.asarray(w, dtype=np.float64)
        self.kx, self.kz, self.kw = x.shape[1], z.shape[1], w.shape[1]
        super().__init__(
            endog=np.asarray(log_t, dtype=np.float64),
            exog=np.asarray(x, dtype=np.float64),
            extra_params_names=[f"active:{n}" for n in z_names]
            + [f"logscale:{n}" for n in w_names],
            **kwds,
        )
        self.exog_names[: self.kx] = [f"loc:{n}" for n in x_names]
        # Degrees of freedom from the parameter count, not the rank of exog (a tiny population
        # can make a covariate constant, and statsmodels would then warn at fit time).
        self.k_constant = 1
        self.df_model = float(self.kx - 1)
        self.df_resid = float(self.endog.shape[0] - self.nparams)

    def _split(self, params: F64) -> tuple[F64, F64, F64]:
        p = np.asarray(params, dtype=np.float64)
        return p[: self.kx], p[self.kx : self.kx + self.kz], p[self.kx + self.kz :]

    def _parts(self, params: F64) -> dict[str, F64]:
        # The optimiser asks for the likelihood and the score at the same point: compute once.
        key = np.asarray(params, dtype=np.float64).tobytes()
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        beta, gamma, delta = self._split(params)
        y = self.endog
        # Bounded: an optimiser's trial step on clockwork data (every gap the same) can ask for
        # a scale that underflows to 0. Inside the bounds (all real fits) nothing changes.
        raw_log_sigma = self.w_mat @ delta
        log_sigma = np.clip(raw_log_sigma, LOG_SIGMA_BOUNDS[0], LOG_SIGMA_BOUNDS[1])
        sigma = np.exp(log_sigma)
        zz = (y - self.exog @ beta) / sigma
        eta = self.z_mat @ gamma
        log_p = -np.logaddexp(0.0, -eta)
        log_1mp = -np.logaddexp(0.0, eta)
        log_s = special.log_ndtr(-zz)
        log_a = np.logaddexp(log_1mp, log_p + log_s)
        parts = {
            "y": y, "sigma": sigma, "log_sigma": log_sigma, "z": zz, "eta": eta,
            "sigma_free": (raw_log_sigma == log_sigma).astype(np.float64),
            "log_p": log_p, "log_1mp": log_1mp, "log_s": log_s, "log_a": log_a,
        }  # fmt: skip
        self._cache = (key, parts)
        return parts

    def loglikeobs(self, params: F64) -> F64:
        q = self._parts(params)
        ev = self.event
        ll_event = q["log_p"] - _LOG_SQRT_2PI - 0.5 * q["z"] ** 2 - q["log_sigma"] - q["y"]
        return np.asarray(self.weights * np.where(ev > 0, ll_event, q["log_a"]), dtype=np.float64)

    def score_obs(self, params: F64, **kwds: Any) -> F64:
        q = self._parts(params)
        ev = self.event > 0
        zz, sigma = q["z"], q["sigma"]
        p = np.exp(q["log_p"])
        log_phi = -_LOG_SQRT_2PI - 0.5 * zz**2
        # Censored rows: d/deta log A = p(1-p)(S-1)/A, and the timing part
        # d/dz log A = -p phi(z)/A (computed in logs: A can be tiny).
        h = np.exp(q["log_p"] + log_phi - q["log_a"])  # p phi / A
        d_eta_c = -p * np.exp(q["log_1mp"]) * (-np.expm1(q["log_s"])) / np.exp(q["log_a"])
        d_eta = np.where(ev, 1.0 - p, d_eta_c)
        d_mu = np.where(ev, zz / sigma, h / sigma)
        d_logsig = np.where(ev, zz**2 - 1.0, h * zz) * q["sigma_free"]
        wt = self.weights[:, None]
        return np.column_stack(
            [
                self.exog * (wt * d_mu[:, None]),
                self.z_mat * (wt * d_eta[:, None]),
                self.w_mat * (wt * d_logsig[:, None]),
            ]
        )

    def loglike(self, params: F64) -> float:
        """The log-likelihood less a weak ridge on the activity slopes (``ACTIVITY_RIDGE``)."""
        gamma = self._split(params)[1][1:]
        return float(self.loglikeobs(params).sum()) - 0.5 * ACTIVITY_RIDGE * float(gamma @ gamma)

    def score(self, params: F64) -> F64:
        grad = np.asarray(self.score_obs(params).sum(0), dtype=np.float64)
        grad[self.kx + 1 : self.kx + self.kz] -= ACTIVITY_RIDGE * self._split(params)[1][1:]
        return grad

    def hessian(self, params: F64) -> F64:
        """Numerical Jacobian of the analytic score (k score calls, not k^2 likelihood calls)."""
        hess = approx_fprime(np.asarray(params, dtype=np.float64), self.score, centered=True)
        return np.asarray((hess + hess.T) / 2.0, dtype=np.float64)

    def start_params_guess(self) -> F64:
        ev = self.event > 0
        y_ev = self.endog[ev] if ev.any() else self.endog
        beta = np.zeros(self.kx)
        beta[0] = float(np.mean(y_ev))
        delta = np.zeros(self.kw)
        delta[0] = float(np.log(max(np.std(y_ev), 0.3)))
        return np.concatenate([beta, np.zeros(self.kz), delta])


@dataclass(frozen=True)
class PopulationParams:
    """Fitted population parameters; JSON-safe via ``to_dict`` / ``from_dict``.

    ``product_norms`` maps product id -> (norm: mean log interval, repeat: logit of the share of
    purchases followed by another one, both shrunk toward the global values, which are the
    fallback for unseen products; momentum: ``features.product_momentum`` on ``fitted_on``, 0
    for unseen products). ``interval_alpha`` holds the calibrated tail level a of the
    80 % interval [q_a, q_(1-a)] for the "model" and "population" methods; ``activity`` the
    coefficients of the whether-layer (``features.V_NAMES``, for pairs with history, then for
    cold starts; empty: the timing model's own P(active)); ``prompt_threshold`` the default
    minimum P(purchase within 7 days from the prompt day) for sending a prompt.
    """

    model_version: str
    fitted_on: str
    params: tuple[float, ...]
    global_norm: float
    global_repeat: float
    global_log_cadence: float
    product_norms: dict[str, tuple[float, float, float]]
    interval_alpha: dict[str, float] = field(
        default_factory=lambda: {"model": 0.1, "population": 0.1}
    )
    activity: tuple[float, ...] = ()
    global_customer_share: float = 0.1
    prompt_threshold: float = 0.0
    n_rows: int = 0
    loglike: float = float("nan")
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "fitted_on": self.fitted_on,
            "params": list(self.params),
            "global_norm": self.global_norm,
            "global_repeat": self.global_repeat,
            "global_log_cadence": self.global_log_cadence,
            "product_norms": {k: list(v) for k, v in self.product_norms.items()},
            "interval_alpha": dict(self.interval_alpha),
            "activity": list(self.activity),
            "global_customer_share": self.global_customer_share,
            "prompt_threshold": self.prompt_threshold,
            "n_rows": self.n_rows,
            "loglike": self.loglike if np.isfinite(self.loglike) else None,
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PopulationParams:
        version = d.get("model_version")
        if version not in (MODEL_VERSION, *UPGRADABLE_VERSIONS):
            raise ValueError(f"unsupported model_version {version!r}")
        if version == "lncure-3":
            d = _with_momentum(d)
        ll = d.get("loglike")
        return cls(
            model_version=MODEL_VERSION,
            fitted_on=str(d["fitted_on"]),
            params=tuple(float(v) for v in d["params"]),
            global_norm=float(d["global_norm"]),
            global_repeat=float(d["global_repeat"]),
            global_log_cadence=float(d["global_log_cadence"]),
            product_norms={
                str(k): (float(v[0]), float(v[1]), float(v[2]))
                for k, v in d["product_norms"].items()
            },
            interval_alpha={str(k): float(v) for k, v in d["interval_alpha"].items()},
            activity=tuple(float(v) for v in d.get("activity", ())),
            global_customer_share=float(d.get("global_customer_share", 0.1)),
            prompt_threshold=float(d.get("prompt_threshold", 0.0)),
            n_rows=int(d.get("n_rows", 0)),
            loglike=float("nan") if ll is None else float(ll),
            seed=int(d.get("seed", 0)),
        )

    def split(self) -> tuple[F64, F64, F64]:
        p = np.asarray(self.params, dtype=np.float64)
        kx, kz = len(ft.X_NAMES), len(ft.Z_NAMES)
        return p[:kx], p[kx : kx + kz], p[kx + kz :]


def _with_momentum(d: dict[str, Any]) -> dict[str, Any]:
    """Parameters stored before the whether-layer had ``product_momentum`` (the last of
    ``features.V_NAMES``) with momentum 0 and a 0 coefficient for it: they score as they did
    until the next refit."""
    k = len(ft.V_NAMES) - 1
    old = list(d.get("activity", ()))
    activity = [*old[:k], 0.0, *old[k:], 0.0] if len(old) == 2 * k else old
    norms = {key: [*v[:2], 0.0] for key, v in d["product_norms"].items()}
    return d | {"activity": activity, "product_norms": norms}


def product_norms_from(
    pur: ft.Purchases, stats: ft.RowStats, pair_product: I64, n_products: int
) -> tuple[F64, F64, float, float]:
    """Per product (by code): shrunk mean log interval and repeat logit, plus the global values."""
    prod = pair_product[pur.pair]
    closed = stats.next_gap > 0
    lg = np.where(closed, np.log(np.maximum(stats.next_gap, 1)), 0.0)
    sum_lg = np.bincount(prod, weights=lg, minlength=n_products)
    n_gap = np.bincount(prod, weights=closed.astype(np.float64), minlength=n_products)
    n_buy = np.bincount(prod, minlength=n_products).astype(np.float64)
    g_norm = float(sum_lg.sum() / n_gap.sum()) if n_gap.sum() > 0 else float(np.log(30.0))
    g_share = float((n_gap.sum() + 1.0) / (n_buy.sum() + 2.0))
    norm = (sum_lg + ft.PRODUCT_PRIOR * g_norm) / (n_gap + ft.PRODUCT_PRIOR)
    share = (n_gap + ft.PRODUCT_PRIOR * g_share) / (n_buy + ft.PRODUCT_PRIOR)
    return norm, special.logit(share), g_norm, float(special.logit(g_share))


class WhetherLogit(GenericLikelihoodModel):  # type: ignore[misc]
    """The whether-layer: P(a purchase in the next H days) = expit(V lambda).

    Fitted at a pseudo-origin before ``today`` (labels: purchases in [today - H, today), all
    before ``today``); V (``features.V_NAMES``) holds the timing model's logit P(purchase within
    H) and customer-level activity known at the pseudo-origin. Bernoulli likelihood with
    analytic score and Hessian.
    """

    def __init__(
        self, bought: F64, v: F64, names: NDArray[np.bool_] | None = None, **kwds: Any
    ) -> None:
        super().__init__(endog=np.asarray(bought, dtype=np.float64), exog=v, **kwds)
        keep = np.ones(len(ft.V_NAMES), dtype=bool) if names is None else names
        self.exog_names[:] = [n for n, k in zip(ft.V_NAMES, keep, strict=True) if k]
        self.k_constant = 1
        self.df_model = float(v.shape[1] - 1)
        self.df_resid = float(v.shape[0] - v.shape[1])

    def loglikeobs(self, params: F64) -> F64:
        eta = self.exog @ params
        y = self.endog
        return np.asarray(-y * np.logaddexp(0.0, -eta) - (1 - y) * np.logaddexp(0.0, eta))

    def score_obs(self, params: F64, **kwds: Any) -> F64:
        g = self.endog - special.expit(self.exog @ params)
        return np.asarray(self.exog * g[:, None], dtype=np.float64)

    def score(self, params: F64) -> F64:
        return np.asarray(self.exog.T @ (self.endog - special.expit(self.exog @ params)))

    def hessian(self, params: F64) -> F64:
        p = special.expit(self.exog @ params)
        return np.asarray(-(self.exog.T * (p * (1.0 - p))) @ self.exog, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Fit:
    theta: F64
    loglike: float
    n_rows: int
    norm: F64
    repeat: F64
    momentum: F64
    g_norm: float
    g_repeat: float
    g_cad: float
    g_cust_share: float
    alpha: dict[str, float]

    def params(self, batch: BatchInput, today: int, seed: int) -> PopulationParams:
        norms = {
            pid: (float(self.norm[i]), float(self.repeat[i]), float(self.momentum[i]))
            for i, pid in enumerate(batch.product_ids)
        }
        return PopulationParams(
            model_version=MODEL_VERSION,
            fitted_on=date.fromordinal(today).isoformat(),
            params=tuple(float(v) for v in self.theta),
            global_norm=self.g_norm,
            global_repeat=self.g_repeat,
            global_log_cadence=self.g_cad,
            product_norms=norms,
            global_customer_share=self.g_cust_share,
            interval_alpha=dict(self.alpha),
            n_rows=self.n_rows,
            loglike=self.loglike,
            seed=seed,
        )


def _sample_rows(pur: ft.Purchases, n_pairs: int, seed: int, max_pairs: int) -> tuple[I64, F64]:
    """Rows of a seeded sample of pairs with inverse-probability weights.

    Pairs with >= 2 purchases and single-purchase pairs are sampled separately (singles are the
    bulk but carry less information), each stratum to at most ``max_pairs // 2`` pairs.
    """
    rng = np.random.default_rng(seed)
    weight = np.zeros(n_pairs)
    for stratum in (pur.count >= 2, pur.count == 1):
        ids = np.flatnonzero(stratum)
        cap = max(max_pairs // 2, 1)
        if ids.shape[0] > cap:
            ids = rng.choice(ids, size=cap, replace=False)
            weight[ids] = np.count_nonzero(stratum) / cap
        else:
            weight[ids] = 1.0
    rows = np.flatnonzero(weight[pur.pair] > 0)
    return rows, weight[pur.pair[rows]]


def _fit_at(
    batch: BatchInput,
    today: int,
    seed: int,
    max_fit_pairs: int,
    start: F64 | None = None,
    maxiter: int = 2000,
) -> _Fit:
    pur = ft.purchases_before(batch, today)
    stats = ft.row_stats(pur)
    n_products = len(batch.product_ids)
    norm, repeat, g_norm, g_repeat = product_norms_from(pur, stats, batch.pair_product, n_products)
    momentum = ft.product_momentum(pur, batch.pair_product, n_products, today)
    n_cust = int(batch.pair_customer.max(initial=-1)) + 1
    nv, span = ft.customer_visits(pur, batch.pair_customer, n_cust)
    g_cad = ft.pooled_log_cadence(nv, span)
    lcad = ft.log_cadence_from_counts(nv, span, g_cad)[batch.pair_customer]
    g_cust_share = float(special.expit(g_repeat))

    rows, weights = _sample_rows(pur, batch.n_pairs, seed, max_fit_pairs)
    pair = pur.pair[rows]
    prod = batch.pair_product[pair]
    x, z, w = ft.design(
        stats.k[rows],
        stats.log_gap_cumsum[rows],
        np.log(np.maximum(pur.units[rows], 1e-9)),
        stats.mean_log_units_before[rows],
        norm[prod],
        repeat[prod],
        lcad[pair],
    )
    gap = stats.next_gap[rows]
    event = (gap > 0).astype(np.float64)
    censor = np.where(stats.is_last[rows], pur.censor_ge[pair], 1)
    log_t = np.where(gap > 0, np.log(np.maximum(gap, 1)), np.log(np.maximum(censor, 1) - 0.5))
    model = CensoredCureLogNormal(log_t, event, x, z, w, weights=weights)
    with warnings.catch_warnings():
        # Tiny or degenerate populations (e.g. no single-purchase pairs) leave some covariates
        # unidentified and BFGS stops at its tolerance; the best point found is still usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = model.fit(
            start_params=model.start_params_guess() if start is None else start,
            method="bfgs",
            maxiter=maxiter,
            gtol=1e-5,
            disp=False,
            skip_hessian=True,
        )
    theta = np.asarray(res.params, dtype=np.float64)
    kx, kz = x.shape[1], z.shape[1]
    mu = x @ theta[:kx]
    sigma = np.exp(w @ theta[kx + kz :])
    alpha = {
        "model": _calibrate_alpha(mu, sigma, gap, censor, weights, stats.k[rows] >= 1),
        "population": _calibrate_alpha(mu, sigma, gap, censor, weights, stats.k[rows] == 0),
    }
    return _Fit(theta, float(model.loglike(theta)), int(rows.shape[0]), norm, repeat, momentum,
                g_norm, g_repeat, g_cad, g_cust_share, alpha)  # fmt: skip


def _calibrate_alpha(
    mu: F64,
    sigma: F64,
    gap: I64,
    censor: I64,
    weights: F64,
    mask: NDArray[np.bool_],
    target: float = 0.8,
) -> float:
    """Tail level a such that [q_a, q_(1-a)] covers ``target`` of the fitted intervals.

    Counted like the back-test: a closed interval is covered when it lies in the rounded
    interval; an open one censored beyond q_(1-a) is a miss; other open ones are not
    determinable and left out. Weighted like the fit.
    """
    if not mask.any():
        return 0.1
    mu, sigma, gap, censor, wt = mu[mask], sigma[mask], gap[mask], censor[mask], weights[mask]
    closed = gap > 0
    best, best_err = 0.1, np.inf
    for a in np.linspace(0.2, 0.01, 39):
        lo = np.rint(np.exp(mu + sigma * special.ndtri(a)))
        hi = np.rint(np.exp(mu + sigma * special.ndtri(1.0 - a)))
        hit = closed & (gap >= lo) & (gap <= hi)
        counted = closed | (censor > hi)
        denom = float(wt[counted].sum())
        if denom == 0:
            continue
        err = abs(float(wt[hit].sum()) / denom - target)
        if err < best_err:
            best, best_err = float(a), err
    return best  # fmt: skip


def fit_population(
    batch: BatchInput,
    today: date,
    *,
    seed: int = 0,
    max_fit_pairs: int = 200_000,
    calibration_days: int | None = 28,
    target_coverage: float = 0.8,
    recalibrate_activity: bool = True,
) -> PopulationParams:
    """Fit population parameters from all pairs' data dated before ``today``.

    Pairs are subsampled (seeded) to ``max_fit_pairs`` for the likelihood fit; norms use all.
    The 80 % interval is calibrated on the fitted intervals (module docstring). With
    ``calibration_days`` (use the forecast horizon H) and ``recalibrate_activity``, a pseudo
    back-test at ``today - calibration_days`` (its labels all before ``today``) fits the
    whether-layer and the default prompt threshold (``_pseudo_backtest``; its timing refit is
    warm-started from the main fit); None skips both. The layer is skipped (the timing model's
    own P(within)) when the history before the pseudo-origin is shorter than
    ``MIN_LAYER_HISTORY`` horizons: its count features would drift out of their fitted range.
    ``target_coverage`` is kept for compatibility (the interval uses 80 %).
    """
    del target_coverage
    t = today.toordinal()
    fit = _fit_at(batch, t, seed, max_fit_pairs)
    params = fit.params(batch, t, seed)
    if not recalibrate_activity or not calibration_days:
        return params
    got = _pseudo_backtest(batch, t, calibration_days, seed, max_fit_pairs, fit.theta)
    if got is None:
        return params
    activity, threshold = got
    return replace(params, activity=activity, prompt_threshold=threshold)


def _customer_subbatch(batch: BatchInput, seed: int, max_pairs: int) -> BatchInput:
    """All pairs of a seeded random set of customers, about ``max_pairs`` pairs in all (the
    whole batch when it is smaller); customer-level features stay complete."""
    if batch.n_pairs <= max_pairs:
        return batch
    n_cust = int(batch.pair_customer.max(initial=-1)) + 1
    per_cust = np.bincount(batch.pair_customer, minlength=n_cust)
    order = np.random.default_rng(seed).permutation(n_cust)
    take = order[: int(np.searchsorted(np.cumsum(per_cust[order]), max_pairs)) + 1]
    keep_cust = np.zeros(n_cust, dtype=bool)
    keep_cust[take] = True
    keep = keep_cust[batch.pair_customer]
    new_id = np.cumsum(keep) - 1
    lines = keep[batch.line_pair]
    answers = keep[batch.answer_pair]
    return BatchInput(
        batch.pair_product[keep], batch.pair_customer[keep], batch.product_ids,
        new_id[batch.line_pair[lines]], batch.line_day[lines], batch.line_qty[lines],
        new_id[batch.answer_pair[answers]], batch.answer_day[answers],
        batch.answer_kind[answers], batch.answer_snooze_days[answers],
    )  # fmt: skip


# Fewer purchases (or non-purchases) than this in a stratum's pseudo window: the layer falls
# back to the timing model's own P(within).
MIN_LAYER_EVENTS = 50
EVENTS_PER_COLUMN = 20
"""Events of the rarer outcome per fitted coefficient below which the layer is not fitted."""
_TIMING_ONLY_LOGIT = 1  # index of logit_p_timing in V_NAMES
# History before the pseudo-origin, in horizons, below which the whether-layer is not fitted.
MIN_LAYER_HISTORY = 1.5


def _pseudo_backtest(
    batch: BatchInput,
    today: int,
    days: int,
    seed: int,
    max_fit_pairs: int,
    start: F64 | None = None,
) -> tuple[tuple[float, ...], float] | None:
    """Whether-layer and default prompt threshold from a back-test at ``today - days``.

    The timing model is refitted at the pseudo-origin on data before it; labels are the pairs'
    purchases in [today - days, today): nothing on or after ``today`` is used. The threshold is
    the largest minimum P(purchase within 7 days of the prompt) whose prompts still reach as
    many re-purchasers on time (pairs with history) as a fixed 30-day reminder would, in the
    pseudo window: the fewest prompts for the reach of the status quo. None when the history
    before the pseudo-origin is too thin.
    """
    # Imported here: score imports this module for PopulationParams.
    from app.forecast import baselines
    from app.forecast.metrics import prompt_outcomes
    from app.forecast.prompt import NO_PROMPT, PROMPT_WINDOW_DAYS, prompt_days
    from app.forecast.score import (
        activity,
        model_activity,
        prepare,
        purchase_probability,
        quantile_days,
    )
    from app.forecast.types import ProductSettings

    origin = today - days
    sub = _customer_subbatch(batch, seed, 2 * max_fit_pairs)
    if not (sub.line_day < origin).any():
        return None
    # The layer's customer features (visit and purchase counts, ages) grow with the length of
    # the history: learnt on less than MIN_LAYER_HISTORY horizons of history before the
    # pseudo-origin, they would be applied at ``today`` to values outside the range they were
    # learnt on (Online Retail 2010-06-01: 91 days at the pseudo-origin, 182 when scoring), so
    # the layer is skipped (the timing model's own P(within)); the threshold is still learnt.
    history = origin - int(batch.line_day.min())
    use_layer = history >= MIN_LAYER_HISTORY * days
    # Warm start from the main fit: the pseudo-origin optimum is close to it.
    pre = _fit_at(sub, origin, seed, max_fit_pairs // 2, start).params(sub, origin, seed)
    prep = prepare(sub, pre, origin)
    win = (sub.line_day >= origin) & (sub.line_day < today)
    big = np.iinfo(np.int64).max
    first = np.full(sub.n_pairs, big)
    np.minimum.at(first, sub.line_pair[win], sub.line_day[win])
    truth = np.where(first < big, first, -1)

    p_model, q = model_activity(prep, days)
    v = prep.activity_x.copy()
    v[:, _TIMING_ONLY_LOGIT] = special.logit(np.clip(p_model * q, 1e-9, 1 - 1e-9))
    lams = []
    if use_layer:
        for mask in (prep.n_purchases >= 2, prep.n_purchases == 1):
            lams.append(_fit_whether(v[mask], truth[mask] >= 0, seed, max_fit_pairs))
    layer = tuple(float(a) for a in np.concatenate(lams)) if lams else ()

    # Default prompt threshold, with the default settings, on pairs with history.
    st = ProductSettings()
    prep = replace(prep, activity=np.asarray(layer))
    has = prep.n_purchases >= 2
    (qr,) = quantile_days(prep, has, (st.target_stockout_risk,))
    p_active, _ = activity(prep, days)
    n = int(has.sum())
    prompt = prompt_days(
        qr, prep.last_day[has], origin, np.full(n, st.lead_time_days), np.full(n, 1),
        np.full(n, st.max_interval_days), p_active[has], np.full(n, st.min_active_probability),
    )  # fmt: skip
    p_useful = purchase_probability(
        replace(prep, **_masked(prep, has)), p_active[has], prompt, PROMPT_WINDOW_DAYS
    )
    fixed = baselines.fixed_cadence(sub, origin, days, st.lead_time_days).prompt_day[has]
    need = prompt_outcomes(fixed, truth[has], origin, today)["on_time_reached"]
    sent = (prompt != NO_PROMPT) & (prompt >= origin) & (prompt <= today - PROMPT_WINDOW_DAYS)
    on_time = sent & (truth[has] >= prompt) & (truth[has] < prompt + PROMPT_WINDOW_DAYS)
    threshold = 0.0
    for t in np.unique(np.round(p_useful[sent], 3))[::-1]:
        if int((on_time & (p_useful >= t)).sum()) >= need:
            threshold = float(t)
            break
    return layer, threshold


def _masked(prep: Any, mask: NDArray[np.bool_]) -> dict[str, Any]:
    """The per-pair arrays of a ``Prepared`` restricted to ``mask``."""
    return {name: getattr(prep, name)[mask] for name in ("last_day", "censor_ge", "mu", "sigma")}


def _independent_columns(x: F64, max_r2: float = 0.995) -> NDArray[np.bool_]:
    """Column 0 (the constant) and, in order, each column not explained (R^2 > ``max_r2``) by
    the columns kept before it (from the centred Gram matrix: one pass over the rows)."""
    keep = np.zeros(x.shape[1], dtype=bool)
    keep[0] = True
    xc = x - x.mean(axis=0)
    gram = xc.T @ xc
    var = np.diag(gram).copy()
    for j in range(1, x.shape[1]):
        if var[j] < 1e-12 * x.shape[0]:
            continue
        idx = np.flatnonzero(keep[1:]) + 1  # the constant is absorbed by the centring
        resid = var[j]
        if idx.shape[0]:
            g = gram[np.ix_(idx, idx)]
            b = gram[idx, j]
            coef = np.linalg.lstsq(g, b, rcond=None)[0]
            resid = var[j] - float(b @ coef)
        if resid > (1.0 - max_r2) * var[j]:
            keep[j] = True
    return keep


def _fit_whether(v: F64, bought: NDArray[np.bool_], seed: int, max_rows: int) -> F64:
    """Coefficients of the whether-layer on one stratum (the timing model's own P(within)
    when the stratum has too few events of either kind)."""
    fallback = np.zeros(v.shape[1])
    fallback[_TIMING_ONLY_LOGIT] = 1.0
    n_pos = int(bought.sum())
    if min(n_pos, bought.shape[0] - n_pos) < MIN_LAYER_EVENTS:
        return fallback
    rows = np.arange(v.shape[0])
    if rows.shape[0] > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    # Columns that do not vary, or that (nearly) repeat others in this stratum (e.g. log n for
    # cold starts, or 56-day counts when the history is shorter than 56 days), stay at 0.
    x = v[rows]
    free = _independent_columns(x)
    n_pos = int(bought[rows].sum())
    if min(n_pos, rows.shape[0] - n_pos) < EVENTS_PER_COLUMN * int(free.sum()):
        # Too few events for this many coefficients: an unpenalised fit would learn the few
        # pairs by heart (a small shop's regular buyers came out "stopped", P(active) 0.002).
        return fallback
    model = WhetherLogit(bought[rows].astype(np.float64), x[:, free], names=free)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = np.zeros(int(free.sum()))
        start[0] = float(special.logit(np.clip(n_pos / bought.shape[0], 1e-6, 1 - 1e-6)))
        res = model.fit(start_params=start, method="newton", maxiter=100, disp=False)
    lam = np.zeros(v.shape[1])
    lam[free] = np.asarray(res.params, dtype=np.float64)
    if not np.all(np.isfinite(lam)):
        return fallback
    return lam
