from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.tools.numdiff import approx_fprime

from app.forecast.btyd import BGNBD, fit_bgnbd, fit_pareto_nbd

CDNOW = Path("/work/shared/data/cdnow_customers_summary.csv")
pytestmark = pytest.mark.skipif(not CDNOW.exists(), reason="evaluation data not present")


def _summary() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    d = pd.read_csv(CDNOW)
    return d["frequency"].to_numpy(float), d["recency"].to_numpy(float), d["T"].to_numpy(float)


def _close(got: float, published: float) -> bool:
    return abs(got - published) <= 0.002 * abs(published)


def test_bgnbd_reproduces_published_cdnow_parameters() -> None:
    params, ll = fit_bgnbd(*_summary())
    assert _close(params.r, 0.243)
    assert _close(params.alpha, 4.414)
    assert _close(params.a, 0.793)
    assert _close(params.b, 2.426)
    assert abs(ll - (-9582.4)) <= 0.1


def test_bgnbd_analytic_score_matches_numerical_gradient() -> None:
    model = BGNBD(*_summary())
    p = np.log([0.3, 4.0, 0.8, 2.5])
    np.testing.assert_allclose(
        model.score(p), approx_fprime(p, model.loglike, centered=True), rtol=1e-5
    )


def test_pareto_nbd_reproduces_published_cdnow_parameters() -> None:
    (r, alpha, s, beta), ll = fit_pareto_nbd(*_summary())
    assert _close(r, 0.553)
    assert _close(alpha, 10.578)
    assert _close(s, 0.606)
    assert _close(beta, 11.67)
    assert abs(ll - (-9594.98)) <= 0.1
