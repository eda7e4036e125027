"""Issue 9, item 9: nobody can keep a staff account locked by guessing its password.

Ten wrong passwords from one address used to make the right password from any other address
answer 429. Now the limits are per address and per (account, address); across addresses the
account only makes new devices wait a little longer after each failure, and a browser that
completed a sign-in before (a signed device cookie) is never made to wait.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from registry.domain import throttle
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import LoginThrottle
from registry.services import accounts
from tests.conftest import PASSWORD, csrf_token

ATTACKER, OFFICE, CAFE = "203.0.113.5", "198.51.100.20", "192.0.2.77"


class Clock:
    """The views' clock, moved by the test instead of sleeping."""

    def __init__(self):
        self.now = now_utc()

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr("registry.web.auth.now_utc", fake)
    return fake


def attempt(client, email, password, address):
    return client.post("/auth/login", environ_base={"REMOTE_ADDR": address},
                       data={"csrf_token": csrf_token(client), "email": email, "password": password})


def signed_in(client) -> bool:
    with client.session_transaction() as session:
        return accounts.live_session(db.session, session.get("_user_id")) is not None


def known_device(app, user, address=OFFICE):
    """A browser that signed in to `user` once, then signed out (it keeps its device cookie)."""
    client = app.test_client()
    assert attempt(client, user.email, PASSWORD, address).status_code == 302
    assert client.get_cookie("device") is not None
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    return client


def test_the_issues_attack_no_longer_locks_the_owner_out(app, make_user, clock):
    editor = make_user("editor")
    owner = known_device(app, editor)
    attacker = app.test_client()
    answers = [attempt(attacker, editor.email, "wrong guess!!", ATTACKER).status_code for _ in range(10)]
    assert answers[:6] == [401] * 6 and set(answers[6:]) == {429}  # the growing wait holds them back
    # The owner's browser signed in before: it is not made to wait, from any address.
    assert attempt(owner, editor.email, PASSWORD, CAFE).status_code == 302 and signed_in(owner)


def test_a_new_device_waits_only_the_growing_delay(app, make_user, clock):
    editor = make_user("editor")
    attacker = app.test_client()
    for index in range(7):  # each from its own address: no per-address limit is reached
        clock.now += timedelta(seconds=100)  # past each wait, so every one of them is checked
        assert attempt(attacker, editor.email, "wrong guess!!", f"203.0.113.{index}").status_code == 401
    row = db.session.scalar(select(LoginThrottle))
    assert row.failures == 7
    newcomer = app.test_client()
    refused = attempt(newcomer, editor.email, PASSWORD, CAFE)
    assert refused.status_code == 429 and not signed_in(newcomer)
    wait = throttle.account_delay(7)
    assert refused.headers["Retry-After"] == str(int(wait.total_seconds())) == "4"
    clock.now += wait
    assert attempt(newcomer, editor.email, PASSWORD, CAFE).status_code == 302 and signed_in(newcomer)
    db.session.expire_all()
    assert db.session.scalar(select(LoginThrottle.failures)) == 0  # the right password clears it


def test_the_wait_never_grows_past_the_cap_and_is_forgotten(app, make_user, clock):
    editor = make_user("editor")
    for _ in range(30):
        accounts.record_login_failure(db.session, editor.email, now=clock.now)
    db.session.commit()
    assert accounts.login_wait(db.session, editor.email, now=clock.now) == throttle.MAX_DELAY
    clock.now += throttle.FORGET_AFTER
    assert attempt(app.test_client(), editor.email, PASSWORD, CAFE).status_code == 302


def test_per_account_and_address_limit_holds_even_for_a_known_device(app, make_user, clock):
    editor = make_user("editor")
    device = known_device(app, editor, ATTACKER)  # e.g. a stolen laptop: still 10 guesses per 5 minutes
    answers = [attempt(device, editor.email, "wrong guess!!", ATTACKER).status_code for _ in range(10)]
    assert answers == [401] * 9 + [429]  # the sign-in above was the first of the ten
    # The same account from another address is its own budget.
    assert attempt(device, editor.email, PASSWORD, OFFICE).status_code == 302
    assert signed_in(device)


def test_per_address_limit_across_accounts(app, make_user, clock):
    editor = make_user("editor")
    client = app.test_client()
    answers = [attempt(client, f"person{index}@example.com", "wrong guess!!", ATTACKER).status_code
               for index in range(11)]
    assert answers == [401] * 10 + [429]
    assert attempt(client, editor.email, PASSWORD, ATTACKER).status_code == 429
    assert attempt(client, editor.email, PASSWORD, OFFICE).status_code == 302


def test_a_forged_or_foreign_device_cookie_gives_no_exemption(app, make_user, clock):
    editor, other = make_user("editor"), make_user("editor")
    foreign = known_device(app, other)  # a real cookie, for another account
    forged = app.test_client()
    forged.set_cookie("device", "eyJ1c2VyIjoxfQ.forged.signature")
    for index in range(8):
        attempt(app.test_client(), editor.email, "wrong guess!!", f"203.0.113.{index}")
    for client in (foreign, forged):
        assert attempt(client, editor.email, PASSWORD, CAFE).status_code == 429
        assert not signed_in(client)


def test_the_device_cookie_is_httponly_lax_and_signed(app, make_user):
    editor = make_user("editor")
    response = attempt(app.test_client(), editor.email, PASSWORD, OFFICE)
    [cookie] = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("device=")]
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=lax", "path=/"} <= flags
    assert any(flag.startswith("max-age=") and int(flag.split("=")[1]) >= 30 * 86400 for flag in flags)
    assert "secure" not in flags  # development over http; production: see test_auth's cookie test


def test_an_approver_gets_the_device_cookie_only_after_the_second_factor(app, make_user):
    import pyotp

    approver = make_user("approver")
    client = app.test_client()
    response = attempt(client, approver.email, PASSWORD, OFFICE)
    assert response.status_code == 302 and client.get_cookie("device") is None
    code = pyotp.TOTP(approver.totp_secret).now()
    client.post("/auth/two-factor", data={"csrf_token": csrf_token(client), "code": code})
    assert client.get_cookie("device") is not None


def test_a_new_password_retires_remembered_devices(app, make_user, clock):
    editor = make_user("editor")
    owner = known_device(app, editor)
    token = accounts.issue_password_link(db.session, editor)
    form = accounts.open_password_link(db.session, token)
    accounts.use_password_link(db.session, form, "the new long passphrase")
    db.session.commit()
    for index in range(8):
        attempt(app.test_client(), editor.email, "wrong guess!!", f"203.0.113.{index}")
    assert attempt(owner, editor.email, "the new long passphrase", CAFE).status_code == 429


def test_an_ipv6_host_cannot_escape_the_address_limit_by_changing_address(app, make_user):
    editor = make_user("editor")
    client = app.test_client()
    answers = [attempt(client, f"person{index}@example.com", "wrong guess!!", f"2001:db8:5:6::{index + 1:x}")
               .status_code for index in range(11)]
    assert answers == [401] * 10 + [429]  # eleven addresses, one /64
    assert attempt(client, editor.email, PASSWORD, "2001:db8:5:7::1").status_code == 302
