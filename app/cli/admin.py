"""``flask admin``: accounts for the operations staff's admin pages."""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup

from app.db import get_session, utcnow
from app.models import AdminRole
from app.services import admin_users

admin_cli = AppGroup("admin", help="Accounts for the admin pages.")


@admin_cli.command("create-user")
@click.argument("email")
@click.option("--role", type=click.Choice([r.value for r in AdminRole]), required=True,
              help="viewer reads every page; operator also changes settings.")  # fmt: skip
def create_user(email: str, role: str) -> None:
    """Create an account for EMAIL; the password is read from standard input (first line)."""
    password = sys.stdin.readline().rstrip("\r\n")
    session = get_session()
    try:
        user = admin_users.create_user(session, email, password, AdminRole(role), "cli", utcnow())
    except admin_users.AdminUserError as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(f"admin user {user.email} ({user.role.value}) created")
