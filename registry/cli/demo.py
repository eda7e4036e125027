"""flask demo load: the demo company's registry."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from registry.domain.clock import now_utc
from registry.extensions import db

demo_cli = AppGroup("demo", help="Demo content.")


@demo_cli.command("load")
@click.option("--if-empty", is_flag=True, help="Do nothing when the database has content.")
def demo_load(if_empty: bool) -> None:
    """Load the demo company's registry, dated relative to today (development only)."""
    from flask import current_app

    from registry.notify.senders import sender_for
    from registry.services import demo

    # The demo's staff passwords and TOTP secrets are public (they are in the source).
    if current_app.config["REGISTRY"].is_production:
        raise click.ClickException(
            "The demo is refused in production: its staff accounts have public passwords and TOTP "
            "secrets. Create real accounts with `flask users create`.")

    if demo.has_content(db.session):
        if if_empty:
            click.echo("The database already has content; demo not loaded.")
            return
        raise click.ClickException("The database already has content; use an empty database.")
    settings = current_app.config["REGISTRY"]
    # The demo's notices were sent before it loads; with the development outbox, their mails are
    # left there to read (staff: Mailbox). Never through a real provider: the addresses are made up.
    outbox = sender_for(settings) if settings.mail_sender == "outbox" else None
    summary = demo.load(db.session, now_utc(), outbox)
    db.session.commit()
    click.echo(f"Demo loaded: {summary}")
    if outbox is not None:
        click.echo(f"The demo's notice mails are in {settings.instance_path / 'outbox'} "
                   "(staff: Mailbox).")


@demo_cli.command("credentials")
def demo_credentials() -> None:
    """Print the demo staff accounts (development only)."""
    import pyotp
    from flask import current_app

    from registry.services import demo

    if current_app.config["REGISTRY"].is_production:
        raise click.ClickException("There are no demo accounts in production.")
    click.echo("Demo staff accounts (log in at /auth/login):")
    for email, role, password, secret in demo.STAFF:
        line = f"  {role:9} {email:38} password: {password}"
        if secret:
            line += (f"  TOTP secret: {secret} (code now: {pyotp.TOTP(secret).now()}; "
                     f"or `flask users code {email}`)")
        click.echo(line)
