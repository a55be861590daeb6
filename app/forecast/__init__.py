"""Pure estimation code: when will a customer need more of a product, and when to ask.

Values in, values out; ``today`` is always passed in. No Flask, no database, no clock, no
unseeded randomness. Public API:

* ``types``: ``PairHistory``, ``Answer``, ``ProductSettings``, ``Forecast``, ``Explanation``;
* ``fit_population(batch, today) -> PopulationParams`` (JSON round-trip via to_dict/from_dict);
* ``forecast_pair(history, product_id, settings, params, today, horizon_days) -> Forecast``;
* ``score_batch(batch, params, today, horizon_days, settings) -> BatchForecast`` (flat arrays);
* ``data.batch_from_frame`` / ``data.read_orders`` build a ``BatchInput`` from order lines.
"""

from app.forecast.features import BatchInput
from app.forecast.model import MODEL_VERSION, PopulationParams, fit_population
from app.forecast.score import BatchForecast, forecast_pair, score_batch
from app.forecast.types import Answer, Explanation, Forecast, PairHistory, ProductSettings

__all__ = [
    "MODEL_VERSION",
    "Answer",
    "BatchForecast",
    "BatchInput",
    "Explanation",
    "Forecast",
    "PairHistory",
    "PopulationParams",
    "ProductSettings",
    "fit_population",
    "forecast_pair",
    "score_batch",
]
