"""The server-drawn charts' descriptions, read out by screen readers."""

from datetime import date

from app.admin.charts import forecast_chart


def _description(purchases: list[tuple[date, int]]) -> str:
    chart = str(forecast_chart("Soap", purchases, date(2026, 12, 1), None, None, None))
    return chart.split("<desc", 1)[1].split(">", 1)[1].split("</desc>", 1)[0]


def test_a_plan_chart_counts_one_purchase_and_one_unit_in_the_singular() -> None:
    assert _description([(date(2026, 11, 30), 1)]) == (
        "1 purchase, the last on 30 Nov 2026 (1 unit); no prompt planned."
    )


def test_a_plan_chart_counts_several_purchases_and_units_in_the_plural() -> None:
    described = _description([(date(2026, 10, 30), 1), (date(2026, 11, 30), 3)])
    assert described == "2 purchases, the last on 30 Nov 2026 (3 units); no prompt planned."


def test_a_plan_chart_whose_prompt_is_out_says_it_awaits_the_answer() -> None:
    chart = str(forecast_chart("Soap", [(date(2026, 11, 30), 1)], date(2026, 12, 1), None, None,
                               None, awaiting_answer=True))  # fmt: skip
    assert "(1 unit); a prompt is awaiting an answer.</desc>" in chart
