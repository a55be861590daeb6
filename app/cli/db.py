"""``flask db``: Alembic migrations against the configured database."""

from __future__ import annotations

import click
from alembic import command
from flask.cli import AppGroup

from app import migrate
from app.config import current_settings

db_cli = AppGroup("db", help="Database migrations (Alembic).")


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Upgrade the database to REVISION (default: head)."""
    migrate.upgrade(current_settings().database_url, revision)
    click.echo(f"database upgraded to {revision}")


@db_cli.command("downgrade")
@click.argument("revision", default="-1")
def downgrade(revision: str) -> None:
    """Downgrade the database to REVISION (default: one step; 'base' empties it)."""
    migrate.downgrade(current_settings().database_url, revision)
    click.echo(f"database downgraded to {revision}")


@db_cli.command("current")
def current() -> None:
    """Show the database's current revision."""
    command.current(migrate.alembic_config(current_settings().database_url), verbose=False)


@db_cli.command("revision")
@click.option("-m", "--message", required=True, help="What the migration changes.")
def revision(message: str) -> None:
    """Autogenerate a migration from the models (review it before committing)."""
    command.revision(
        migrate.alembic_config(current_settings().database_url), message=message, autogenerate=True
    )
