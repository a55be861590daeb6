"""``flask scheduler``: the background sweeps, as their own process; ``flask outbox``: dead
letters."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app
from flask.cli import AppGroup

from app.db import get_session, utcnow
from app.scheduler import jobs, runner
from app.services import outbox

scheduler_cli = AppGroup("scheduler", help="Background sweeps: prompts, outbox, expiry, refit.")
outbox_cli = AppGroup("outbox", help="Emails and webhooks waiting, delivered or dead.")


@scheduler_cli.command("run")
@click.option("--every", type=click.FloatRange(min=0.1), default=15.0, show_default=True,
              help="Seconds between sweeps.")  # fmt: skip
@click.option("--lease", type=click.IntRange(min=1), default=300, show_default=True,
              help="Seconds a claim lasts before another scheduler may take it over.")  # fmt: skip
@click.option("--batch", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--connections", type=click.IntRange(min=1, max=16), default=1, show_default=True,
              help="SMTP connections delivering the outbox in parallel (faster with a slow "
                   "server; after a crash each may repeat its one message in flight).")  # fmt: skip
@click.option("--once", "once", default=None, type=click.Choice(sorted(jobs.ALL_JOBS)),
              help="Run this one sweep now and exit.")  # fmt: skip
def run(every: float, lease: int, batch: int, connections: int, once: str | None) -> None:
    """Run the sweeps until stopped (SIGTERM / Ctrl-C). Safe to run several at once."""
    timing = jobs.Timing(every_seconds=every, lease=timedelta(seconds=lease), batch=batch,
                         connections=connections)  # fmt: skip
    if once is not None:
        click.echo(f"{once}: {jobs.ALL_JOBS[once](timing)}")
        return
    runner.run(current_app._get_current_object(), timing)  # type: ignore[attr-defined]


@outbox_cli.command("replay")
@click.argument("outbox_id", type=int)
def replay(outbox_id: int) -> None:
    """Send a dead (or delivered) message again."""
    session = get_session()
    try:
        row = outbox.replay(session, outbox_id, utcnow(), actor="cli")
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    session.commit()
    click.echo(f"outbox {row.id} ({row.event_type}) queued again")


@outbox_cli.command("status")
def status() -> None:
    """Message counts by kind and status, then the latest dead letters."""
    session = get_session()
    for (kind, state), count in sorted(outbox.backlog(session).items()):
        click.echo(f"{kind:8} {state:10} {count}")
    dead = outbox.dead_letters(session)
    if dead:
        click.echo("dead letters (replay with: outbox replay ID):")
    for row in dead:
        click.echo(f"  {row.id:>8} {row.kind.value:8} {row.event_type:20} {row.recipient:30} "
                   f"attempts {row.attempts}: {row.last_error or ''}")  # fmt: skip
