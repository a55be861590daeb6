"""``flask demo``: a demo shop for trying Kaidoki out."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

from app.db import get_session, utcnow
from app.services import api_keys, demo, forecasting

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has customers.")
def load(if_empty: bool) -> None:
    """Load a demo shop (60 customers, 12 products, a year of orders) and a demo API key.

    The key is also written to the instance folder (demo_api_key) for trying the API by hand.
    """
    session = get_session()
    if not demo.is_empty(session):
        if if_empty:
            click.echo("database already has data; demo not loaded")
            return
        raise click.ClickException("the database is not empty; the demo loads into an empty one")
    now = utcnow()
    n_orders = demo.load_demo(session, now.date(), now)
    fitted = forecasting.refit(session, now.date(), now)
    key = api_keys.create_api_key(session, "demo", now).key
    session.commit()
    key_file = Path(current_app.instance_path) / "demo_api_key"
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    click.echo(
        f"demo shop loaded: {len(demo.PRODUCTS)} products, {n_orders} orders, "
        f"{fitted.n_plans_written} plans forecast"
    )
    click.echo(f"demo API key (also in {key_file}):")
    click.echo(key)
