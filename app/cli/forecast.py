"""``flask forecast ...``: predict and back-test from order files.

Both commands run without an app context: they read files only and never touch the database.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import click
from flask.cli import AppGroup

forecast_cli = AppGroup("forecast", help="Forecast replenishment from order files.")


def _parse_day(_ctx: click.Context, _param: click.Parameter, value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007 (a calendar date)
    except ValueError as exc:
        raise click.BadParameter("expected YYYY-MM-DD") from exc


_orders = click.option(
    "--orders",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Canonical order CSV(.gz), or an Online Retail II parquet (converted on read).",
)


@forecast_cli.command("predict", with_appcontext=False)
@_orders
@click.option("--as-of", "as_of", required=True, callback=_parse_day, help="YYYY-MM-DD")
@click.option("--horizon", required=True, type=click.IntRange(min=1), help="Days.")
@click.option("--lead-days", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--out", required=True, type=click.Path(dir_okay=False))
def predict_command(orders: str, as_of: date, horizon: int, lead_days: int, out: str) -> None:
    """Write one forecast row per pair with a purchase before --as-of."""
    from app.forecast.predict import predict_frame

    try:
        frame = predict_frame(orders, as_of, horizon, lead_days)
    except ValueError as exc:  # unreadable or non-canonical order file
        raise click.ClickException(str(exc)) from exc
    frame.to_csv(out, index=False)
    click.echo(f"{len(frame)} pairs -> {out}")


@forecast_cli.command("backtest", with_appcontext=False)
@_orders
@click.option("--origin", required=True, callback=_parse_day, help="YYYY-MM-DD")
@click.option("--horizon", required=True, type=click.IntRange(min=1), help="Days.")
@click.option("--lead-days", default=3, show_default=True, type=click.IntRange(min=0))
@click.option("--json", "json_out", type=click.Path(dir_okay=False), help="Also write JSON here.")
def backtest_command(
    orders: str, origin: date, horizon: int, lead_days: int, json_out: str | None
) -> None:
    """Run FORECAST_EVAL.md's protocol for the candidate and every baseline."""
    from app.forecast.evaluate import format_table, json_safe, run_backtest

    try:
        report = run_backtest(orders, origin, horizon, lead_days)
    except ValueError as exc:  # unreadable or non-canonical order file
        raise click.ClickException(str(exc)) from exc
    click.echo(format_table(report))
    if json_out:
        Path(json_out).write_text(json.dumps(json_safe(report), indent=2, allow_nan=False))


@forecast_cli.command("refit")
@click.option(
    "--today",
    callback=lambda ctx, param, value: None if value is None else _parse_day(ctx, param, value),
    help="Fit on purchases before this day (YYYY-MM-DD; default: today in the default zone).",
)
def refit_command(today: date | None) -> None:
    """Re-fit the population parameters from all history and re-score every plan."""
    from zoneinfo import ZoneInfo

    from app.config import current_settings
    from app.db import get_session, utcnow
    from app.services.forecasting import refit

    now = utcnow()
    day = today or now.astimezone(ZoneInfo(current_settings().default_timezone)).date()
    session = get_session()
    try:
        result = refit(session, day, now)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(
        f"model {result.model_id} fitted on {result.n_pairs} pairs; "
        f"{result.n_plans_written} plans rescored"
    )
