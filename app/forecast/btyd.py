"""Buy-till-you-die models on (frequency x, recency t_x, age T) summaries.

BG/NBD (Fader, Hardie & Lee 2005) with an analytic score and Pareto/NBD (Schmittlein et al.
1987, likelihood as in Fader & Hardie's 2005 note, with a numerical score: its Gauss
hypergeometric terms have no convenient derivative). Both are ``GenericLikelihoodModel``
subclasses fitted on the log of their positive parameters. On CDNOW they reproduce the
published estimates (tests/forecast/test_btyd.py). The pair-level BG/NBD is a back-test baseline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import special
from statsmodels.base.model import GenericLikelihoodModel

from app.forecast.features import F64


class _Btyd(GenericLikelihoodModel):  # type: ignore[misc]
    names: tuple[str, ...] = ()

    def __init__(self, x: F64, t_x: F64, t: F64, **kwds: Any) -> None:
        self.freq = np.asarray(x, dtype=np.float64)
        self.recency = np.asarray(t_x, dtype=np.float64)
        self.age = np.asarray(t, dtype=np.float64)
        super().__init__(
            endog=self.freq, extra_params_names=[f"log_{n}" for n in self.names], **kwds
        )

    def fit_natural(
        self, start: tuple[float, ...] | None = None, polish: bool = True
    ) -> tuple[F64, float]:
        """Maximum-likelihood estimates on the natural scale and the log-likelihood.

        BFGS, then (``polish``) Nelder-Mead from its optimum to settle the last digits.
        """
        start_log = np.log(np.asarray(start or (1.0,) * len(self.names), dtype=np.float64))
        res = self.fit(
            start_params=start_log, method="bfgs", maxiter=5000, gtol=1e-8, disp=False,
            skip_hessian=True,
        )  # fmt: skip
        if polish:
            res = self.fit(start_params=res.params, method="nm", maxiter=20000, disp=False,
                           skip_hessian=True, xtol=1e-10, ftol=1e-12)  # fmt: skip
        return np.exp(res.params), float(self.loglike(res.params))


class BGNBD(_Btyd):
    """BG/NBD; parameters (log r, log alpha, log a, log b)."""

    names = ("r", "alpha", "a", "b")

    def _terms(self, params: F64) -> tuple[F64, ...]:
        r, alpha, a, b = np.exp(np.asarray(params, dtype=np.float64))
        x, t_x, t = self.freq, self.recency, self.age
        a1 = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha)
        a2 = (special.gammaln(a + b) + special.gammaln(b + x) - special.gammaln(b)
              - special.gammaln(a + b + x))  # fmt: skip
        a3 = -(r + x) * np.log(alpha + t)
        has = x > 0
        a4 = np.where(
            has, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )  # fmt: skip
        return a1, a2, a3, a4

    def loglikeobs(self, params: F64) -> F64:
        a1, a2, a3, a4 = self._terms(params)
        return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)

    def score_obs(self, params: F64, **kwds: Any) -> F64:
        r, alpha, a, b = np.exp(np.asarray(params, dtype=np.float64))
        x, t_x, t = self.freq, self.recency, self.age
        _, _, a3, a4 = self._terms(params)
        lse = np.logaddexp(a3, a4)
        w3, w4 = np.exp(a3 - lse), np.exp(a4 - lse)
        has = x > 0
        psi = special.digamma
        d_r = (
            psi(r + x) - psi(r) + np.log(alpha) - w3 * np.log(alpha + t) - w4 * np.log(alpha + t_x)
        )
        d_alpha = r / alpha - w3 * (r + x) / (alpha + t) - w4 * (r + x) / (alpha + t_x)
        d_a = psi(a + b) - psi(a + b + x) + w4 / a
        d_b = (psi(a + b) + psi(b + x) - psi(b) - psi(a + b + x)
               - w4 * np.where(has, 1.0 / np.maximum(b + x - 1, 1e-300), 0.0))  # fmt: skip
        # Chain rule to the log parameters.
        return np.column_stack([d_r * r, d_alpha * alpha, d_a * a, d_b * b])

    def score(self, params: F64) -> F64:
        return np.asarray(self.score_obs(params).sum(0), dtype=np.float64)


class ParetoNBD(_Btyd):
    """Pareto/NBD; parameters (log r, log alpha, log s, log beta); numerical score."""

    names = ("r", "alpha", "s", "beta")

    def loglikeobs(self, params: F64) -> F64:
        r, alpha, s, beta = np.exp(np.asarray(params, dtype=np.float64))
        x, t_x, t = self.freq, self.recency, self.age
        rsx = r + s + x
        if alpha >= beta:
            big, c2 = alpha, s + 1.0
        else:
            big, c2 = beta, r + x
        z1 = (abs(alpha - beta)) / (big + t_x)
        z2 = (abs(alpha - beta)) / (big + t)
        l1 = np.log(special.hyp2f1(rsx, c2, rsx + 1.0, z1)) - rsx * np.log(big + t_x)
        l2 = np.log(special.hyp2f1(rsx, c2, rsx + 1.0, z2)) - rsx * np.log(big + t)
        log_a0 = l1 + np.log(-np.expm1(np.minimum(l2 - l1, -1e-300)))
        head = special.gammaln(r + x) - special.gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        term1 = -(r + x) * np.log(alpha + t) - s * np.log(beta + t)
        return np.asarray(
            head + np.logaddexp(term1, np.log(s) - np.log(rsx) + log_a0), dtype=np.float64
        )


@dataclass(frozen=True, slots=True)
class BGNBDParams:
    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, x: F64, t_x: F64, t: F64) -> F64:
        """P(alive at T | x, t_x, T)."""
        r, al, a, b = self.r, self.alpha, self.a, self.b
        ratio = np.exp((r + x) * (np.log(al + t) - np.log(al + t_x)))
        odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-12) * ratio, 0.0)
        return np.asarray(1.0 / (1.0 + odds), dtype=np.float64)

    def p_any_within(self, x: F64, t_x: F64, t: F64, horizon: float) -> F64:
        """P(at least one purchase in (T, T + horizon]); with no purchase there is no drop-out,
        so given alive it is 1 - ((alpha + T) / (alpha + T + h))^(r + x)."""
        none = np.exp((self.r + x) * (np.log(self.alpha + t) - np.log(self.alpha + t + horizon)))
        return np.asarray(self.p_alive(x, t_x, t) * (1.0 - none), dtype=np.float64)

    def wait_quantile(self, x: F64, t: F64, q: float) -> F64:
        """Quantile q of the wait from T to the next purchase, given alive (Lomax)."""
        return np.asarray(
            (self.alpha + t) * ((1.0 - q) ** (-1.0 / (self.r + x)) - 1.0), dtype=np.float64
        )


def fit_bgnbd(x: F64, t_x: F64, t: F64, polish: bool = True) -> tuple[BGNBDParams, float]:
    """Fit BG/NBD; returns the parameters and the log-likelihood."""
    est, ll = BGNBD(x, t_x, t).fit_natural(polish=polish)
    return BGNBDParams(*(float(v) for v in est)), ll


def fit_pareto_nbd(x: F64, t_x: F64, t: F64) -> tuple[tuple[float, float, float, float], float]:
    """Fit Pareto/NBD; returns (r, alpha, s, beta) and the log-likelihood."""
    est, ll = ParetoNBD(x, t_x, t).fit_natural()
    return (float(est[0]), float(est[1]), float(est[2]), float(est[3])), ll
