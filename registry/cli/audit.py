"""flask audit ...: check the audit log's hash chain; summarise refused sign-ins whose window ended."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from registry.domain.clock import now_utc
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


@audit_cli.command("close-refusals")
def close_refusals() -> None:
    """Summarise every refused-sign-in window that has ended, delete week-old counters (for cron).

    Sign-in attempts do this as they come; this command also covers the quiet after an attack.
    """
    total = 0
    while closed := audit.close_refusal_windows(db.session, now_utc()):
        db.session.commit()
        total += closed
    forgotten = audit.forget_closed_windows(db.session, now_utc())
    db.session.commit()
    click.echo(f"{total} refusal window(s) closed; {forgotten} counter(s) closed over a week ago deleted.")
