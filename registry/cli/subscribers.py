"""flask subscribers ...: the retention job for closed subscriptions."""

from __future__ import annotations

from datetime import timedelta

import click
from flask.cli import AppGroup

from registry.extensions import db
from registry.services import retention

subscribers_cli = AppGroup("subscribers", help="Subscriber data: retention.")


@subscribers_cli.command("purge")
@click.option("--older-than-days", type=click.IntRange(min=1), default=retention.RETENTION.days,
              show_default=True,
              help="Remove subscriptions closed (deleted, or never confirmed) more than this many days ago.")
def purge(older_than_days: int) -> None:
    """Erase what deletions left unerased, then remove every record of old closed subscriptions,
    their local outbox files included; the audit log gets the counts, never an address."""
    report = retention.purge(db.session, retention=timedelta(days=older_than_days))
    db.session.commit()
    click.echo(", ".join(f"{name.replace('_', ' ')}: {count}" for name, count in vars(report).items()))
