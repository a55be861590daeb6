"""Flask CLI command groups (``flask --app wsgi <group> <command>``)."""

from __future__ import annotations

from flask import Flask


def register_commands(app: Flask) -> None:
    from app.cli.admin import admin_cli
    from app.cli.api_keys import api_keys_cli
    from app.cli.db import db_cli
    from app.cli.demo import demo_cli
    from app.cli.forecast import forecast_cli
    from app.cli.ops import customers_cli, prompts_cli, reorders_cli
    from app.cli.scheduler import outbox_cli, scheduler_cli

    for group in (db_cli, api_keys_cli, demo_cli, forecast_cli, scheduler_cli, outbox_cli,
                  reorders_cli, customers_cli, prompts_cli, admin_cli):  # fmt: skip
        app.cli.add_command(group)
