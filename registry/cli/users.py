"""flask users ...: create, disable, enable, list, and (development only) the current TOTP code."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import select

from registry.domain.roles import ROLES
from registry.extensions import db
from registry.models import User
from registry.services import accounts, audit
from registry.services.accounts import AccountError

users_cli = AppGroup("users", help="Staff accounts (disabled, never deleted).")
CLI_ACTOR = "cli"


def _user(email: str) -> User:
    user = accounts.find_user(db.session, email)
    if user is None:
        raise click.ClickException(f"There is no account for {accounts.normalise_email(email)!r}.")
    return user


def _record(action: str, user: User, before: dict | None = None, after: dict | None = None) -> None:
    audit.record(db.session, actor=CLI_ACTOR, action=action, object_type="user", object_id=user.id,
                 before=before, after=after)


@users_cli.command("create")
@click.argument("email")
@click.option("--role", required=True, help=f"One of: {', '.join(ROLES)}.")
@click.option("--link", is_flag=True, help="Print a one-time set-password link (24 h) instead of prompting.")
def create(email: str, role: str, link: bool) -> None:
    """Create a staff account: prompts for a password twice, or prints a set-password link."""
    from registry.web.users import password_link

    try:
        email, role = accounts.validate_email(email), accounts.validate_role(role)
        if accounts.find_user(db.session, email) is not None:
            raise AccountError(f"There is already an account for {email}.")
        password = None
        if not link:
            password = click.prompt("Password", hide_input=True, confirmation_prompt="Repeat the password")
            accounts.validate_password(password)
        user = accounts.create_user(db.session, email, role, password=password)
    except AccountError as problem:
        raise click.ClickException(str(problem)) from None
    _record("user.create", user, after={"email": user.email, "role": user.role})
    url = None
    if link:
        token = accounts.issue_password_link(db.session, user)
        _record("user.password_link", user)
        with current_app.test_request_context():
            url = password_link(token)
    db.session.commit()
    click.echo(f"Created {user.role} {user.email}.")
    if url:
        click.echo(f"One-time set-password link (valid 24 hours, shown only now):\n  {url}")
    if user.needs_totp:
        click.echo("Two-factor is set up at the first login.")


def _set_enabled(email: str, enabled: bool) -> None:
    user = _user(email)
    if user.is_enabled != enabled:
        accounts.set_enabled(db.session, user, enabled)
        _record("user.enable" if enabled else "user.disable", user,
                before={"is_enabled": not enabled}, after={"is_enabled": enabled})
        db.session.commit()
    click.echo(f"{user.email} is {'enabled' if enabled else 'disabled (and signed out everywhere)'}.")


@users_cli.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable an account and end its sessions (accounts are never deleted)."""
    _set_enabled(email, False)


@users_cli.command("enable")
@click.argument("email")
def enable(email: str) -> None:
    """Enable a disabled account again."""
    _set_enabled(email, True)


@users_cli.command("list")
def list_users() -> None:
    """Every account with its role, status and two-factor state."""
    users = db.session.scalars(select(User).order_by(User.email)).all()
    if not users:
        click.echo("No staff accounts yet: create one with `flask users create EMAIL --role admin`.")
    for user in users:
        two_factor = "2FA on" if user.totp_secret else ("2FA pending" if user.needs_totp else "no 2FA needed")
        last = user.last_login_at.isoformat(timespec="minutes") if user.last_login_at else "never"
        click.echo(f"{user.email:40} {user.role:9} {'enabled' if user.is_enabled else 'DISABLED':9} "
                   f"{two_factor:14} last login: {last}")


@users_cli.command("reset-2fa")
@click.argument("email")
def reset_two_factor(email: str) -> None:
    """Forget the account's TOTP secret and end its sessions: it sets up a new one at the next login."""
    user = _user(email)
    accounts.reset_two_factor(db.session, user)
    _record("user.reset_two_factor", user)
    db.session.commit()
    click.echo(f"{user.email}: two-factor reset and signed out everywhere; "
               "it is set up again at the next login.")


@users_cli.command("forget-failures")
def forget_failures() -> None:
    """Delete sign-in failure counters quiet for an hour (they no longer count); for cron."""
    count = accounts.forget_stale_failures(db.session)
    db.session.commit()
    click.echo(f"{count} stale sign-in failure counter(s) deleted.")


@users_cli.command("code")
@click.argument("email")
def code(email: str) -> None:
    """Print the account's current TOTP code (development only)."""
    if current_app.config["REGISTRY"].is_production:
        raise click.ClickException("`flask users code` is for development only; it is refused in production.")
    try:
        click.echo(accounts.current_totp_code(_user(email)))
    except AccountError as problem:
        raise click.ClickException(str(problem)) from None
