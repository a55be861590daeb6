"""``flask demo``: a demo shop for trying Kaidoki out."""

from __future__ import annotations

import secrets
from pathlib import Path
from zoneinfo import ZoneInfo

import click
from flask import current_app
from flask.cli import AppGroup

from app.config import current_settings
from app.db import get_session, utcnow
from app.models import AdminRole
from app.services import admin_users, api_keys, demo, forecasting

DEMO_ADMIN = "admin@example.jp"

demo_cli = AppGroup("demo", help="Demo data.")


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has customers.")
def load(if_empty: bool) -> None:
    """Load a demo shop (60 customers, 12 products, a year of orders), a demo API key and a
    demo operator account for the admin pages.

    The key and the operator's password are written to the instance folder (demo_api_key,
    demo_admin_password) for trying things by hand.
    """
    session = get_session()
    if not demo.is_empty(session):
        if if_empty:
            click.echo("database already has data; demo not loaded")
            return
        raise click.ClickException("the database is not empty; the demo loads into an empty one")
    now = utcnow()
    today = now.astimezone(ZoneInfo(current_settings().default_timezone)).date()  # the shop's
    n_orders = demo.load_demo(session, today, now)
    fitted = forecasting.refit(session, today, now)
    key = api_keys.create_api_key(session, "demo", now).key
    password = secrets.token_urlsafe(12)
    admin_users.create_user(session, DEMO_ADMIN, password, AdminRole.OPERATOR, "demo", now)
    session.commit()
    key_file = _private_file("demo_api_key", key)
    password_file = _private_file("demo_admin_password", password)
    click.echo(
        f"demo shop loaded: {len(demo.PRODUCTS)} products, {n_orders} orders, "
        f"{fitted.n_plans_written} plans forecast"
    )
    click.echo(f"admin pages: sign in as {DEMO_ADMIN} with the password in {password_file}")
    click.echo(f"demo API key (also in {key_file}):")
    click.echo(key)


def _private_file(name: str, content: str) -> Path:
    path = Path(current_app.instance_path) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content + "\n")
    path.chmod(0o600)
    return path
