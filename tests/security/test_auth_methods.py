"""Issue 9, item 1: only a POST checks a credential, and every POST that does is counted.

A HEAD with form data used to run the POST branch of /auth/login without touching the limiter
(it counted POST only): unlimited password and TOTP guesses, and a working session cookie.
"""

from __future__ import annotations

import pyotp
import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import AuditEntry
from tests.conftest import PASSWORD, csrf_token

OTHER_METHODS = ["HEAD", "PUT", "PATCH", "DELETE", "OPTIONS"]
ADDRESS = {"REMOTE_ADDR": "192.0.2.50"}


def session_token(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def send(client, method, path, **data):
    return client.open(path, method=method, environ_base=ADDRESS,
                       data={"csrf_token": csrf_token(client), **data})


def wrong_code(secret: str) -> str:
    return "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"


@pytest.mark.parametrize("method", OTHER_METHODS)
def test_other_methods_with_the_right_password_never_log_in(app, client, make_user, method):
    editor = make_user("editor")
    response = send(client, method, "/auth/login", email=editor.email, password=PASSWORD)
    assert response.status_code in (200, 405)
    assert session_token(client) is None
    assert db.session.scalars(select(AuditEntry)).all() == []


def test_other_methods_neither_use_up_nor_get_round_the_limit(app, client, make_user):
    editor = make_user("editor", email="target@example.com")
    # Guesses at other accounts from one address: the per-address limit (10 in 5 minutes) applies.
    for index in range(9):
        assert send(client, "POST", "/auth/login", email=f"person{index}@example.com",
                    password="wrong guess!!").status_code == 401
    for method in OTHER_METHODS * 4:
        send(client, method, "/auth/login", email=editor.email, password="wrong guess!!")
    # Nothing but the nine POSTs was counted: the tenth attempt is still checked.
    assert send(client, "POST", "/auth/login", email="person9@example.com",
                password="wrong guess!!").status_code == 401
    assert send(client, "POST", "/auth/login", email=editor.email, password=PASSWORD).status_code == 429
    for method in OTHER_METHODS:
        send(client, method, "/auth/login", email=editor.email, password=PASSWORD)
        assert session_token(client) is None, method


def test_two_factor_codes_only_by_post_and_always_counted(app, client, make_user):
    approver = make_user("approver")
    assert send(client, "POST", "/auth/login", email=approver.email, password=PASSWORD).status_code == 302
    for _ in range(10):
        response = send(client, "POST", "/auth/two-factor", code=wrong_code(approver.totp_secret))
        assert response.status_code == 400
    right = pyotp.TOTP(approver.totp_secret).now()
    for method in OTHER_METHODS:
        send(client, method, "/auth/two-factor", code=right)
    assert send(client, "POST", "/auth/two-factor", code=right).status_code == 429
    assert client.get("/admin/audit/").location.endswith("/auth/two-factor")  # still not verified
    actions = db.session.scalars(select(AuditEntry.action)).all()
    assert "auth.login.success" not in actions


def test_other_methods_never_set_a_password(app, client, make_user):
    from registry.services import accounts

    user = make_user("editor")
    token = accounts.issue_password_link(db.session, user)
    db.session.commit()
    for method in ("PUT", "PATCH", "DELETE"):
        response = send(client, method, f"/auth/set-password/{token}", password="a new long passphrase",
                        confirm="a new long passphrase")
        assert response.status_code == 405
        response = send(client, method, "/auth/set-password", password="a new long passphrase",
                        confirm="a new long passphrase")
        assert response.status_code == 405
    assert accounts.password_link_user(db.session, token) is user
    assert accounts.verify_password(user, PASSWORD)
