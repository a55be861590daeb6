"""``flask api-keys``: keys for the shop's EC backend."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.db import get_session, utcnow
from app.services import api_keys

api_keys_cli = AppGroup("api-keys", help="Create, list and revoke REST API keys.")


@api_keys_cli.command("create")
@click.argument("name")
def create(name: str) -> None:
    """Create a client NAME; its key is printed once, on the last line."""
    session = get_session()
    try:
        new = api_keys.create_api_key(session, name, utcnow())
    except api_keys.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(f"API client {name!r} created. Store this key now; it is not shown again:")
    click.echo(new.key)


@api_keys_cli.command("list")
def list_() -> None:
    """List clients with their key prefix and state."""
    for client in api_keys.list_api_clients(get_session()):
        state = f"revoked {client.revoked_at:%Y-%m-%d %H:%M}" if client.revoked_at else "active"
        used = f"{client.last_used_at:%Y-%m-%d %H:%M}" if client.last_used_at else "never"
        click.echo(f"{client.name}\tkd_{client.key_prefix}_…\t{state}\tlast used {used}")


@api_keys_cli.command("revoke")
@click.argument("name")
def revoke(name: str) -> None:
    """Revoke the key of client NAME (requests with it get 401 from now on)."""
    session = get_session()
    try:
        api_keys.revoke_api_key(session, name, utcnow())
    except api_keys.ApiKeyError as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(f"API client {name!r} revoked")
