"""Accounts service: argon2id parameters, session timeouts, TOTP steps, set-password tokens."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from argon2 import Type, extract_parameters

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import User
from registry.services import accounts
from registry.services.accounts import AccountError, TotpResult
from tests.conftest import PASSWORD


def test_passwords_are_argon2id_at_owasp_parameters():
    parameters = extract_parameters(accounts.hash_password("a passphrase to hash"))
    assert parameters.type is Type.ID
    assert (parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (2, 19 * 1024, 1)


def test_verify_password(app, make_user):
    user = make_user("editor")
    assert accounts.verify_password(user, PASSWORD)
    assert not accounts.verify_password(user, PASSWORD + "!")
    assert not accounts.verify_password(None, PASSWORD)
    user.password_hash = "not a hash"
    assert not accounts.verify_password(user, PASSWORD)


def test_the_unknown_user_s_check_costs_what_a_real_one_does():
    """The dummy hash an unknown address is checked against has the parameters of the real ones (and
    so their cost); it is a literal rather than made at import, which cost every process 80 ms."""
    from argon2 import extract_parameters

    assert not accounts.HASHER.check_needs_rehash(accounts._DUMMY_HASH)
    assert extract_parameters(accounts._DUMMY_HASH) == extract_parameters(accounts.hash_password("x"))



def test_idle_timeout_is_30_minutes(app, make_user):
    user = make_user("editor")
    start = now_utc()
    token = accounts.start_session(db.session, user, now=start, is_verified=True)
    assert accounts.live_session(db.session, token, now=start + timedelta(minutes=29)) is not None
    # Activity at minute 29 moved last_seen_at on: 29 more minutes idle are still fine...
    assert accounts.live_session(db.session, token, now=start + timedelta(minutes=58)) is not None
    # ...but 31 minutes without a request end the session for good.
    assert accounts.live_session(db.session, token, now=start + timedelta(minutes=89, seconds=1)) is None
    assert accounts.find_session(db.session, token).ended_at is not None
    assert accounts.live_session(db.session, token, now=start + timedelta(minutes=90)) is None


def test_absolute_timeout_is_12_hours_even_when_active(app, make_user):
    user = make_user("editor")
    start = now_utc()
    token = accounts.start_session(db.session, user, now=start, is_verified=True)
    moment = start
    while moment < start + timedelta(hours=11, minutes=50):
        moment += timedelta(minutes=20)
        assert accounts.live_session(db.session, token, now=moment) is not None
    assert accounts.live_session(db.session, token, now=start + timedelta(hours=12, seconds=1)) is None


def test_disabled_users_lose_every_session(app, make_user):
    user = make_user("editor")
    tokens = [accounts.start_session(db.session, user, is_verified=True) for _ in range(2)]
    accounts.set_enabled(db.session, user, False)
    assert all(accounts.live_session(db.session, token) is None for token in tokens)
    accounts.set_enabled(db.session, user, True)
    assert all(accounts.live_session(db.session, token) is None for token in tokens)  # ended, not paused


def test_totp_accepts_each_step_once_and_neighbours_only(app, make_user):
    user = make_user("approver")
    totp = pyotp.TOTP(user.totp_secret)
    now = now_utc()
    step = totp.timecode(now)
    assert accounts.check_totp(db.session, user, totp.at(now - timedelta(seconds=90)), now=now) \
        is TotpResult.INVALID
    assert accounts.check_totp(db.session, user, totp.generate_otp(step - 1), now=now) is TotpResult.ACCEPTED
    assert user.totp_last_step == step - 1
    assert accounts.check_totp(db.session, user, totp.generate_otp(step - 1), now=now) is TotpResult.REPLAYED
    assert accounts.check_totp(db.session, user, " " + totp.generate_otp(step)[:3] + " "
                               + totp.generate_otp(step)[3:], now=now) is TotpResult.ACCEPTED
    # Once a later step was used, an earlier (still in-window) code is a replay too.
    assert accounts.check_totp(db.session, user, totp.generate_otp(step - 1), now=now) is TotpResult.REPLAYED
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(User, user.id).totp_last_step == step


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "١٢٣٤٥٦", None, "\x00" * 6])
def test_malformed_codes_are_invalid(app, make_user, code):
    user = make_user("approver")
    assert accounts.check_totp(db.session, user, code) is TotpResult.INVALID
    assert user.totp_last_step is None


def test_editors_without_a_secret_never_pass_totp(app, make_user):
    user = make_user("editor")
    assert accounts.check_totp(db.session, user, "123456") is TotpResult.INVALID


def test_reset_two_factor_forgets_the_secret_and_signs_out(app, make_user):
    user = make_user("admin")
    token = accounts.start_session(db.session, user, is_verified=True)
    accounts.reset_two_factor(db.session, user)
    assert user.totp_secret is None and user.totp_last_step is None
    assert accounts.live_session(db.session, token) is None


@pytest.mark.parametrize("email, role, message", [
    ("", "editor", "Enter an email"), ("not-an-email", "editor", "not an email"),
    ("a@b", "editor", "not an email"), ("x" * 300 + "@example.com", "editor", "at most 254"),
    ("tab\t@example.com", "editor", "not an email"), ("ok@example.com", "owner", "Unknown role"),
    ("ok@example.com", "", "Unknown role"),
])
def test_create_user_validates(app, email, role, message):
    with pytest.raises(AccountError, match=message):
        accounts.create_user(db.session, email, role)


def test_create_user_normalises_and_refuses_duplicates(app):
    user = accounts.create_user(db.session, "  New.Person@Example.COM ", "Approver")
    assert (user.email, user.role, user.password_hash) == ("new.person@example.com", "approver", None)
    with pytest.raises(AccountError, match="already an account"):
        accounts.create_user(db.session, "new.person@example.com", "editor")


def test_set_password_tokens(app, make_user):
    user = make_user("editor")
    start = now_utc()
    first = accounts.issue_password_link(db.session, user, now=start)
    second = accounts.issue_password_link(db.session, user, now=start)
    assert accounts.password_link_user(db.session, first, now=start) is None  # replaced by the newer one
    assert accounts.password_link_user(db.session, second, now=start + timedelta(hours=23)) is user
    assert accounts.password_link_user(db.session, second, now=start + timedelta(hours=24)) is None
    session_token = accounts.start_session(db.session, user, is_verified=True)
    accounts.use_password_link(db.session, second, "a new long passphrase", now=start + timedelta(hours=1))
    assert accounts.verify_password(user, "a new long passphrase")
    assert accounts.live_session(db.session, session_token) is None
    with pytest.raises(AccountError, match="already used"):
        accounts.use_password_link(db.session, second, "another long passphrase", now=start)


def test_disabled_accounts_cannot_use_a_set_password_link(app, make_user):
    user = make_user("editor", enabled=False)
    token = accounts.issue_password_link(db.session, user)
    assert accounts.password_link_user(db.session, token) is None


def test_current_totp_code(app, make_user):
    approver = make_user("approver")
    assert accounts.current_totp_code(approver) == pyotp.TOTP(approver.totp_secret).now()
    with pytest.raises(AccountError, match="no two-factor secret"):
        accounts.current_totp_code(make_user("editor"))
