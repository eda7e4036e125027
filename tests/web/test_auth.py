"""Staff login: session rotation, logout, two-factor and its replay, throttling, CSRF, cookies, headers."""

from __future__ import annotations

import json
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from registry import create_app
from registry.domain.clock import now_utc
from registry.extensions import db, limiter
from registry.models import AuditEntry, User
from registry.services import accounts
from registry.web.auth import GENERIC_FAILURE
from tests.conftest import PASSWORD, csrf_token, make_settings

STAFF_PAGE = "/admin/audit/"  # any page behind permission_required that approvers and admins may see


def post_login(client, email, password=PASSWORD, **extra):
    return client.post("/auth/login", data={"csrf_token": csrf_token(client), "email": email,
                                            "password": password, **extra})


def post_code(client, code):
    return client.post("/auth/two-factor", data={"csrf_token": csrf_token(client), "code": code})


def session_token(client) -> str | None:
    with client.session_transaction() as session:
        return session.get("_user_id")


def audit_rows() -> list[AuditEntry]:
    return list(db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def actions() -> list[str]:
    return [row.action for row in audit_rows()]


def client_with_token(app, token):
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = token
    return client


def test_editor_logs_in_at_once(app, client, make_user):
    editor = make_user("editor")
    response = post_login(client, "  " + editor.email.upper())
    assert response.status_code == 302
    staff_session = accounts.find_session(db.session, session_token(client))
    assert staff_session.is_verified and staff_session.user_id == editor.id
    assert db.session.get(User, editor.id).last_login_at is not None
    [row] = audit_rows()
    assert (row.action, row.actor, row.actor_id) == ("auth.login.success", editor.email, editor.id)


def test_login_rotates_the_session(app, client, make_user):
    editor = make_user("editor")
    with client.session_transaction() as session:
        session["planted"] = "by an attacker before login"
    post_login(client, editor.email)
    first = session_token(client)
    post_login(client, editor.email)
    second = session_token(client)
    assert first and second and first != second
    with client.session_transaction() as session:
        assert "planted" not in session
    assert accounts.find_session(db.session, first).ended_at is not None
    assert client_with_token(app, first).get(STAFF_PAGE).status_code == 302  # old cookie: dead
    assert accounts.live_session(db.session, second) is not None


def test_logout_ends_the_session_on_the_server(app, make_user, login):
    approver = make_user("approver")
    client = login(approver)
    token = session_token(client)
    assert client.get(STAFF_PAGE).status_code == 200
    response = client.post("/auth/logout", data={"csrf_token": client.csrf()})
    assert response.status_code == 302 and response.location.endswith("/auth/login")
    assert accounts.find_session(db.session, token).ended_at is not None
    replayed = client_with_token(app, token).get(STAFF_PAGE)
    assert replayed.status_code == 302 and "/auth/login" in replayed.location
    assert "auth.logout" in actions()


def test_logout_is_post_only(client):
    assert client.get("/auth/logout").status_code == 405


def test_approver_must_give_a_code_before_acting(app, client, make_user):
    approver = make_user("approver")
    response = post_login(client, approver.email, next=STAFF_PAGE)
    assert response.status_code == 302 and response.location.endswith("/auth/two-factor")
    assert client.get(STAFF_PAGE).location.endswith("/auth/two-factor")
    assert post_code(client, "000000" if pyotp.TOTP(approver.totp_secret).now() != "000000"
                     else "111111").status_code == 400
    response = post_code(client, pyotp.TOTP(approver.totp_secret).now())
    assert response.status_code == 302 and response.location.endswith(STAFF_PAGE)
    assert client.get(STAFF_PAGE).status_code == 200
    assert actions() == ["auth.login.password_ok", "auth.totp.failed", "auth.login.success"]


def test_a_totp_code_is_never_accepted_twice(app, client, make_user):
    approver = make_user("approver")
    code = pyotp.TOTP(approver.totp_secret).now()
    post_login(client, approver.email)
    assert post_code(client, code).status_code == 302
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})

    post_login(client, approver.email)
    response = post_code(client, code)
    assert response.status_code == 400
    assert "already used" in response.get_data(as_text=True)
    assert client.get(STAFF_PAGE).location.endswith("/auth/two-factor")
    assert actions()[-1] == "auth.totp.replayed"


def test_admin_without_a_secret_sets_up_two_factor(app, client, make_user):
    admin = make_user("admin", with_totp=False)
    post_login(client, admin.email)
    page = client.get("/auth/two-factor")
    assert page.status_code == 200
    with client.session_transaction() as session:
        secret = session["totp_setup_secret"]
    body = page.get_data(as_text=True)
    assert "otpauth://totp/" in body and secret[:4] in body
    assert client.get("/auth/two-factor").get_data(as_text=True).count(secret[:4]) >= 1  # same secret
    assert post_code(client, pyotp.TOTP(secret).now()).status_code == 302
    db.session.expire_all()
    assert db.session.get(User, admin.id).totp_secret == secret
    assert client.get("/admin/users/").status_code == 200
    assert "auth.totp.setup" in actions()


def test_disabled_and_unknown_accounts_get_the_generic_answer(app, client, make_user):
    disabled = make_user("editor", enabled=False)
    known = make_user("editor")
    answers = [post_login(client, disabled.email), post_login(client, "nobody@example.com"),
               post_login(client, known.email, password="wrong password here")]
    assert {answer.status_code for answer in answers} == {401}
    for answer in answers:
        assert GENERIC_FAILURE in answer.get_data(as_text=True)
    assert session_token(client) is None
    reasons = [row.after["reason"] for row in audit_rows()]
    assert reasons == ["disabled", "unknown_account", "bad_password"]
    # No account stands behind the unknown name: it is kept as typed, but marked.
    assert [row.actor for row in audit_rows()] == [disabled.email, "untrusted: nobody@example.com",
                                                   known.email]


def test_passwords_never_reach_the_audit_log(app, client, make_user):
    editor = make_user("editor")
    post_login(client, editor.email, password="secret-wrong-guess-123")
    post_login(client, editor.email)
    dumped = json.dumps([[row.actor, row.before, row.after] for row in audit_rows()])
    assert "secret-wrong-guess-123" not in dumped and PASSWORD not in dumped


def test_empty_fields_are_a_clear_400(client):
    response = client.post("/auth/login", data={"csrf_token": csrf_token(client)})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Enter your email address." in body and "Enter your password." in body


@pytest.mark.parametrize("target, expected", [
    ("/admin/audit/?page=2", "/admin/audit/?page=2"),
    ("//evil.example/", None), ("https://evil.example/", None), ("/\\evil.example", None),
    ("javascript:alert(1)", None), ("/ok\r\nSet-Cookie:x=1", None),
])
def test_next_only_goes_to_this_site(app, client, make_user, target, expected):
    editor = make_user("editor")
    response = post_login(client, editor.email, next=target)
    assert response.status_code == 302
    if expected:
        assert response.location == expected
    else:
        assert "evil" not in response.location and "javascript" not in response.location
        assert response.location.startswith("/")


def throttled_attempts(client, emails, address):
    return [client.post("/auth/login", environ_base={"REMOTE_ADDR": address},
                        data={"csrf_token": csrf_token(client), "email": email, "password": "wrong guess 1"})
            for email in emails]


def test_an_account_under_attack_answers_the_same_for_known_and_unknown(app, client, make_user):
    known = make_user("editor")
    bodies = {}
    for email in (known.email, "no-such-person@example.com"):
        # Each attempt from its own address: only the per-account wait can stop the 7th.
        answers = [throttled_attempts(client, [email], f"192.0.2.{index}")[0] for index in range(7)]
        assert [answer.status_code for answer in answers] == [401] * 6 + [429]
        assert answers[-1].headers["Retry-After"] == "2"
        bodies[email] = answers[-1].get_data(as_text=True)
    assert bodies[known.email] == bodies["no-such-person@example.com"]
    assert "Too many sign-in attempts" in bodies[known.email]
    refused = [row for row in audit_rows() if row.action == "auth.login.refused"]
    assert {row.actor for row in refused} == {"untrusted: " + known.email,
                                              "untrusted: no-such-person@example.com"}


def test_throttling_per_address(client):
    answers = throttled_attempts(client, [f"person{index}@example.com" for index in range(11)], "203.0.113.9")
    assert [answer.status_code for answer in answers] == [401] * 10 + [429]
    other = throttled_attempts(client, ["person0@example.com"], "203.0.113.10")[0]
    assert other.status_code == 401  # another address, an account with one attempt so far


def test_two_factor_attempts_are_throttled(app, client, make_user):
    approver = make_user("approver")
    post_login(client, approver.email)
    wrong = "000000" if pyotp.TOTP(approver.totp_secret).now() != "000000" else "111111"
    codes = [post_code(client, wrong).status_code for _ in range(11)]
    assert codes == [400] * 10 + [429]
    assert "auth.totp.refused" in actions()


def test_forms_refuse_posts_without_a_csrf_token(app, make_user, login):
    editor = make_user("editor")
    client = login(editor)
    assert client.post("/auth/login", data={"email": editor.email, "password": PASSWORD}).status_code == 400
    assert client.post("/auth/logout").status_code == 400
    assert client.post("/auth/logout", data={"csrf_token": "forged"}).status_code == 400
    assert accounts.live_session(db.session, session_token(client)) is not None  # still logged in
    assert actions() == []


@pytest.mark.parametrize("path, who", [("/auth/login", None), ("/auth/two-factor", "unverified"),
                                       (STAFF_PAGE, "admin"), ("/admin/users/", "admin"),
                                       ("/admin/policies/", "admin")])
def test_staff_pages_are_never_cached_and_carry_security_headers(app, client, make_user, login, path, who):
    if who:
        client = login(make_user("admin"), verified=who == "admin")
    response = client.get(path)
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]


def test_production_cookies_are_host_prefixed_secure_httponly_lax(tmp_path):
    settings = make_settings(f"sqlite:///{tmp_path / 'prod.db'}", tmp_path / "instance",
                             env="production", base_url="https://trust.example.com")
    app = create_app(settings)
    with app.app_context():
        db.create_all()
        db.session.add(User(email="editor@example.com", role="editor",
                            password_hash=accounts.hash_password(PASSWORD)))
        db.session.commit()
        client = app.test_client()
        page = client.get("/auth/login", base_url="https://trust.example.com")
        token = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
        response = client.post("/auth/login", base_url="https://trust.example.com",
                               data={"csrf_token": token, "email": "editor@example.com",
                                     "password": PASSWORD},
                               headers={"Referer": "https://trust.example.com/auth/login"})
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        cookies = {cookie.split("=")[0]: cookie for cookie in response.headers.getlist("Set-Cookie")}
        assert set(cookies) == {"__Host-session", "__Host-device"}
        for cookie in cookies.values():
            flags = {part.strip().lower() for part in cookie.split(";")[1:]}
            assert {"secure", "httponly", "path=/", "samesite=lax"} <= flags
            assert not any(flag.startswith("domain=") for flag in flags)
        db.session.remove()
        db.engine.dispose()
    limiter.reset()


def test_set_password_link_works_once(app, client, make_user):
    user = make_user("editor")
    token = accounts.issue_password_link(db.session, user)
    db.session.commit()
    opened = client.get(f"/auth/set-password/{token}")
    assert opened.status_code == 303 and opened.location == "/auth/set-password"
    page = client.get("/auth/set-password")
    assert page.status_code == 200 and page.headers["Referrer-Policy"] == "no-referrer"
    assert token not in page.get_data(as_text=True)
    new = "a brand new passphrase"
    for data, message in [({"password": "short", "confirm": "short"}, "at least 12"),
                          ({"password": new, "confirm": new + "x"}, "not the same"),
                          ({"password": "", "confirm": ""}, "Enter a password"),
                          ({"password": "x\x00" * 8, "confirm": "x\x00" * 8}, "NUL")]:
        response = client.post("/auth/set-password", data={"csrf_token": csrf_token(client), **data})
        assert response.status_code == 400 and message in response.get_data(as_text=True)
    response = client.post("/auth/set-password",
                           data={"csrf_token": csrf_token(client), "password": new, "confirm": new})
    assert response.status_code == 302
    assert client.get("/auth/set-password").status_code == 404
    assert client.get(f"/auth/set-password/{token}").status_code == 404
    assert post_login(app.test_client(), user.email, password=new).status_code == 302
    assert actions()[:2] == ["auth.password_link.opened", "auth.password.set"]


def test_expired_or_forged_set_password_links_are_refused(app, client, make_user):
    user = make_user("editor")
    token = accounts.issue_password_link(db.session, user, now=now_utc() - timedelta(hours=25))
    db.session.commit()
    for url in (f"/auth/set-password/{token}", "/auth/set-password/forged",
                "/auth/set-password/" + "a" * 5000, "/auth/set-password"):
        response = client.get(url)
        assert response.status_code == 404
        assert "invalid, already used or expired" in response.get_data(as_text=True)
        assert response.headers["Referrer-Policy"] == "no-referrer"


GARBAGE = ["", " ", "a" * 100_000, "\x00", "x\x00y@example.com", "ü日本@例え.jp", "<script>alert(1)</script>",
           "'; DROP TABLE users; --", "\u202e", "%00", "@", "a@b", "[]"]


@pytest.mark.parametrize("value", GARBAGE)
def test_garbage_to_every_auth_form_is_never_a_500(app, client, make_user, value):
    approver = make_user("approver")
    for field in ("email", "password", "next"):
        limiter.reset()
        data = {"csrf_token": csrf_token(client), "email": approver.email, "password": "wrong password!",
                field: value}
        response = client.post("/auth/login", data=data)
        assert response.status_code in (302, 400, 401), (field, response.status_code)
    limiter.reset()
    post_login(client, approver.email)
    response = post_code(client, value)
    assert response.status_code == 400 and "not right" in response.get_data(as_text=True)
    response = client.post("/auth/set-password",
                           data={"csrf_token": csrf_token(client), "password": value, "confirm": value})
    assert response.status_code == 404  # no link was opened in this session
