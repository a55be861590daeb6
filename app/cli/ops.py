"""``flask reorders`` and ``flask customers``: what operations staff do for one customer."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select
from sqlmodel import col

from app.config import current_settings
from app.db import get_session, utcnow
from app.models import ActorType, Customer
from app.services import prompts, reorders
from app.services.preferences import revoke_links

reorders_cli = AppGroup("reorders", help="Confirmed reorders handed to the EC backend.")
customers_cli = AppGroup("customers", help="Customer support actions.")
prompts_cli = AppGroup("prompts", help="Prompt emails waiting for their send time.")


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


def _customer(external_id: str) -> Customer:
    customer = (
        get_session()
        .scalars(select(Customer).where(col(Customer.external_id) == external_id))
        .one_or_none()
    )
    if customer is None:
        raise click.ClickException(f"no customer {external_id!r}")
    return customer


@customers_cli.command("revoke-links")
@click.argument("external_id")
@click.option("--by", "actor", default="cli", show_default=True, help="Who revokes (audit log).")
def revoke(external_id: str, actor: str) -> None:
    """Make every plans-page and unsubscribe link sent to EXTERNAL_ID stop working."""
    session = get_session()
    customer = _customer(external_id)
    revoke_links(session, customer, ActorType.USER, actor, utcnow())
    session.commit()
    click.echo(f"links of customer {external_id} revoked")


@prompts_cli.command("send-now")
@click.option("--customer", "external_id", default=None, help="Only this customer's prompts.")
@click.option("--by", "actor", default="cli", show_default=True, help="Who asks (audit log).")
def send_now(external_id: str | None, actor: str) -> None:
    """Make scheduled prompts due now, ignoring send hours and quiet hours (the weekly limit
    still holds); the scheduler sends them on its next sweep."""
    session = get_session()
    customer = _customer(external_id) if external_id is not None else None
    n = prompts.send_now(session, current_settings(), utcnow(), actor, customer)
    session.commit()
    click.echo(f"{n} prompts due now; the scheduler sends them within its next sweep")
