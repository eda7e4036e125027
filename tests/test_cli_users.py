"""flask users ... and flask audit verify."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pyotp
from sqlalchemy import select, text

from registry import create_app
from registry.extensions import db
from registry.models import AuditEntry, User
from registry.services import accounts, audit
from tests.conftest import make_settings


def test_create_with_a_prompted_password(app, runner):
    result = runner.invoke(args=["users", "create", "Legal@Example.com", "--role", "approver"],
                           input="a long enough passphrase\na long enough passphrase\n")
    assert result.exit_code == 0, result.output
    user = accounts.find_user(db.session, "legal@example.com")
    assert user.role == "approver" and accounts.verify_password(user, "a long enough passphrase")
    assert "Two-factor is set up at the first login" in result.output
    assert db.session.scalar(select(AuditEntry.actor)) == "cli"


def test_create_with_a_link(app, runner):
    result = runner.invoke(args=["users", "create", "new@example.com", "--role", "editor", "--link"])
    assert result.exit_code == 0, result.output
    token = re.search(r"http://localhost/auth/set-password/(\S+)", result.output).group(1)
    user = accounts.find_user(db.session, "new@example.com")
    assert user.password_hash is None and accounts.password_link_user(db.session, token) == user


def test_create_refuses_bad_input(app, runner, make_user):
    existing = make_user("editor")
    for args, message in [
        (["bad-email", "--role", "editor", "--link"], "not an email"),
        (["ok@example.com", "--role", "superuser", "--link"], "Unknown role"),
        ([existing.email, "--role", "editor", "--link"], "already an account"),
    ]:
        result = runner.invoke(args=["users", "create", *args])
        assert result.exit_code != 0 and message in result.output
    short = runner.invoke(args=["users", "create", "short@example.com", "--role", "editor"],
                          input="short\nshort\n")
    assert short.exit_code != 0 and "at least 12" in short.output
    assert accounts.find_user(db.session, "short@example.com") is None
    assert db.session.scalars(select(User)).all() == [existing]


def test_disable_enable_and_list(app, runner, make_user):
    editor = make_user("editor")
    token = accounts.start_session(db.session, editor, is_verified=True)
    db.session.commit()
    assert runner.invoke(args=["users", "disable", editor.email]).exit_code == 0
    db.session.expire_all()
    assert not db.session.get(User, editor.id).is_enabled
    assert accounts.live_session(db.session, token) is None
    listing = runner.invoke(args=["users", "list"]).output
    assert editor.email in listing and "DISABLED" in listing
    assert runner.invoke(args=["users", "enable", editor.email.upper()]).exit_code == 0
    db.session.expire_all()
    assert db.session.get(User, editor.id).is_enabled
    missing = runner.invoke(args=["users", "disable", "ghost@example.com"])
    assert missing.exit_code != 0 and "no account" in missing.output


def test_code_in_development_only(app, runner, make_user, tmp_path):
    approver = make_user("approver")
    result = runner.invoke(args=["users", "code", approver.email])
    assert result.exit_code == 0 and result.output.strip() in {
        pyotp.TOTP(approver.totp_secret).now(),
        pyotp.TOTP(approver.totp_secret).at(datetime.now(UTC) - timedelta(seconds=30))}
    editor = make_user("editor")
    assert "no two-factor secret" in runner.invoke(args=["users", "code", editor.email]).output

    production = create_app(make_settings(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "instance",
                                          env="production", base_url="https://trust.example.com"))
    email = approver.email
    with production.app_context():  # the `app` fixture's context would otherwise stay current
        refused = production.test_cli_runner().invoke(args=["users", "code", email])
    assert refused.exit_code != 0 and "development only" in refused.output


def test_audit_verify(app, runner):
    rows = [audit.record(db.session, actor="a@example.com", action="test", object_type="t", object_id=index)
            for index in range(3)]
    db.session.commit()
    ok = runner.invoke(args=["audit", "verify"])
    assert ok.exit_code == 0 and "OK: 3 audit row(s)" in ok.output
    db.session.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE id = :id"), {"id": rows[1].id})
    db.session.commit()
    broken = runner.invoke(args=["audit", "verify"])
    assert broken.exit_code == 1 and f"BROKEN at audit row {rows[1].id}" in broken.output


def test_reset_two_factor(app, runner, make_user):
    approver = make_user("approver")
    token = accounts.start_session(db.session, approver, is_verified=True)
    db.session.commit()
    result = runner.invoke(args=["users", "reset-2fa", approver.email])
    assert result.exit_code == 0 and "two-factor reset" in result.output
    db.session.expire_all()
    assert db.session.get(User, approver.id).totp_secret is None
    assert accounts.live_session(db.session, token) is None
    assert db.session.scalars(select(AuditEntry.action)).all() == ["user.reset_two_factor"]
    missing = runner.invoke(args=["users", "reset-2fa", "ghost@example.com"])
    assert missing.exit_code != 0 and "no account" in missing.output


def test_forget_failures_deletes_only_counters_that_no_longer_count(app, runner):
    from registry.domain import throttle
    from registry.domain.clock import now_utc
    from registry.models import LoginThrottle

    now = now_utc()
    accounts.record_login_failure(db.session, "old@example.com", now=now - throttle.FORGET_AFTER)
    accounts.record_login_failure(db.session, "recent@example.com", now=now - timedelta(minutes=5))
    db.session.commit()
    result = runner.invoke(args=["users", "forget-failures"])
    assert result.exit_code == 0 and "1 stale" in result.output
    db.session.expire_all()
    assert db.session.scalar(select(LoginThrottle.failures)) == 1
    assert accounts.login_wait(db.session, "recent@example.com", now=now) == timedelta(0)
    assert accounts.record_login_failure(db.session, "old@example.com", now=now) == 1
