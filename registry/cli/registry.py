"""flask registry ...: the periodic tick that records what the passing of time changed."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import publishing, workflow

registry_cli = AppGroup("registry", help="The registry over time: the periodic tick.")


@registry_cli.command("tick")
def tick() -> None:
    """Move dates whose notice can no longer make them, and record changes now in force."""
    result = workflow.tick(db.session, now_utc())
    db.session.commit()
    for line in result.lines():
        click.echo(line)
    click.echo(f"{len(result.postponed)} postponed, {len(result.effective)} now effective.")


@registry_cli.command("recompare")
def recompare() -> None:
    """Recompute every stored comparison of document versions (after an upgrade changed the redline)."""
    count = publishing.recompute_comparisons(db.session)
    db.session.commit()
    click.echo(f"{count} comparison{'' if count == 1 else 's'} recomputed.")
