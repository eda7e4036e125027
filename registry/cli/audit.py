"""flask audit ...: check the audit log's hash chain."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from registry.extensions import db
from registry.services import audit

audit_cli = AppGroup("audit", help="The append-only audit log.")


@audit_cli.command("verify")
def verify() -> None:
    """Check every row's hash and link; name the first broken row (exit code 1)."""
    result = audit.verify(db.session)
    if not result.ok:
        click.echo(f"BROKEN at audit row {result.broken_id}: {result.problem}. "
                   f"{result.count} row(s) before it are intact.", err=True)
        raise SystemExit(1)
    click.echo(f"OK: {result.count} audit row(s), hash chain intact.")
