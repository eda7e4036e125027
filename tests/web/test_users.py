"""Users admin: create with a one-time link, disable/enable, reset two-factor; all audited, never deleted."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import AuditEntry, User
from registry.services import accounts


@pytest.fixture
def admin_client(make_user, login):
    admin = make_user("admin")
    client = login(admin)
    client.user = admin
    return client


def count_users() -> int:
    return db.session.scalar(select(func.count()).select_from(User))


def test_list_shows_every_account(app, admin_client, make_user):
    editor = make_user("editor", enabled=False)
    body = admin_client.get("/admin/users/").get_data(as_text=True)
    assert editor.email in body and admin_client.user.email in body and "Disabled" in body


def test_create_shows_a_one_time_link_that_sets_the_password(app, admin_client):
    response = admin_client.post("/admin/users/create", data={
        "csrf_token": admin_client.csrf(), "email": " New.Approver@Example.com ", "role": "approver"})
    assert response.status_code == 201
    body = response.get_data(as_text=True)
    link = re.search(r'href="(http://localhost/auth/set-password/[^"]+)"', body).group(1)
    user = accounts.find_user(db.session, "new.approver@example.com")
    assert user.role == "approver" and user.password_hash is None
    token = link.rsplit("/", 1)[1]
    assert accounts.password_link_user(db.session, token) == user
    assert token not in admin_client.get("/admin/users/").get_data(as_text=True)  # shown once
    entry = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "user.create")).one()
    assert entry.actor == admin_client.user.email and entry.after == {"email": user.email, "role": "approver"}


@pytest.mark.parametrize("email, role, message", [
    ("", "editor", "Enter an email"), ("nope", "editor", "not an email"), ("a@b.c", "root", "Unknown role"),
    ("x" * 2000, "editor", "at most 254"), ("a\x00b@example.com", "editor", "not an email"),
    ("<script>alert(1)</script>@x.io", "editor", "not an email"), ("ok@example.com", "", "Unknown role"),
])
def test_create_refuses_bad_input(app, admin_client, email, role, message):
    before = count_users()
    response = admin_client.post("/admin/users/create", data={
        "csrf_token": admin_client.csrf(), "email": email, "role": role})
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert message in body and 'aria-invalid="true"' in body and "<script>alert" not in body
    assert count_users() == before


def test_create_refuses_a_duplicate(app, admin_client, make_user):
    editor = make_user("editor")
    response = admin_client.post("/admin/users/create", data={
        "csrf_token": admin_client.csrf(), "email": editor.email.upper(), "role": "editor"})
    assert response.status_code == 400 and "already an account" in response.get_data(as_text=True)


def test_disable_signs_out_and_enable_restores_login(app, admin_client, make_user, login):
    editor = make_user("editor")
    editor_client = login(editor)
    assert editor_client.get("/admin/users/").status_code == 403  # logged in, wrong role
    response = admin_client.post(f"/admin/users/{editor.id}/disable",
                                 data={"csrf_token": admin_client.csrf()})
    assert response.status_code == 302
    db.session.expire_all()
    assert not db.session.get(User, editor.id).is_enabled
    assert editor_client.get("/admin/users/").status_code == 302  # signed out
    admin_client.post(f"/admin/users/{editor.id}/enable", data={"csrf_token": admin_client.csrf()})
    db.session.expire_all()
    assert db.session.get(User, editor.id).is_enabled
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["user.disable", "user.enable"]
    assert count_users() == 2  # never deleted


def test_an_admin_cannot_disable_themselves(app, admin_client):
    response = admin_client.post(f"/admin/users/{admin_client.user.id}/disable",
                                 data={"csrf_token": admin_client.csrf()}, follow_redirects=True)
    assert "cannot disable your own account" in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(User, admin_client.user.id).is_enabled


def test_reset_two_factor(app, admin_client, make_user, login):
    approver = make_user("approver")
    approver_client = login(approver)
    admin_client.post(f"/admin/users/{approver.id}/reset-two-factor",
                      data={"csrf_token": admin_client.csrf()})
    db.session.expire_all()
    assert db.session.get(User, approver.id).totp_secret is None
    assert approver_client.get("/admin/audit/").status_code == 302
    assert db.session.scalar(select(AuditEntry.action)) == "user.two_factor_reset"


def test_new_password_link(app, admin_client, make_user):
    editor = make_user("editor")
    response = admin_client.post(f"/admin/users/{editor.id}/password-link",
                                 data={"csrf_token": admin_client.csrf()})
    assert response.status_code == 201 and "/auth/set-password/" in response.get_data(as_text=True)


@pytest.mark.parametrize("action", ["disable", "enable", "reset-two-factor", "password-link"])
def test_unknown_accounts_are_404(app, admin_client, action):
    response = admin_client.post(f"/admin/users/999999/{action}", data={"csrf_token": admin_client.csrf()})
    assert response.status_code == 404
