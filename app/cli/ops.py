"""``flask reorders`` and ``flask customers``: what operations staff do for one customer."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlmodel import col

from app.config import current_settings
from app.db import get_session, utcnow
from app.models import ActorType, Customer
from app.services import reorders
from app.services.preferences import revoke_links

reorders_cli = AppGroup("reorders", help="Confirmed reorders handed to the EC backend.")
customers_cli = AppGroup("customers", help="Customer support actions.")


@reorders_cli.command("cancel")
@click.argument("reorder_id", type=click.IntRange(min=1))
@click.option("--by", "actor", default="cli", show_default=True, help="Who cancels (audit log).")
def cancel(reorder_id: int, actor: str) -> None:
    """Cancel a reorder the backend has not fulfilled; it hears by webhook and in the feed."""
    session = get_session()
    try:
        reorder = reorders.cancel(session, current_settings(), reorder_id, actor, utcnow())
    except (reorders.ReorderNotFound, reorders.ReorderConflict) as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(f"reorder {reorder.id} cancelled")


@customers_cli.command("revoke-links")
@click.argument("external_id")
@click.option("--by", "actor", default="cli", show_default=True, help="Who revokes (audit log).")
def revoke(external_id: str, actor: str) -> None:
    """Make every plans-page and unsubscribe link sent to EXTERNAL_ID stop working."""
    session = get_session()
    customer = session.scalars(
        select(Customer).where(col(Customer.external_id) == external_id)
    ).one_or_none()
    if customer is None:
        raise click.ClickException(f"no customer {external_id!r}")
    revoke_links(session, customer, ActorType.USER, actor, utcnow())
    session.commit()
    click.echo(f"links of customer {external_id} revoked")
