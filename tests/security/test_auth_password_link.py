"""Issue 9, item 13: a set-password link's token is spent by the first GET, for a session-held form.

The token used to stay valid in the URL until the password was saved, so a copy from nginx's
access log could be used. Now the first GET swaps it for a token kept only in that browser's
(signed) session and redirects to a URL without any secret; the page sends no referrer.
"""

from __future__ import annotations

from datetime import timedelta

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import accounts
from tests.conftest import csrf_token

NEW = "a brand new passphrase"


def issue(make_user):
    user = make_user("editor")
    token = accounts.issue_password_link(db.session, user)
    db.session.commit()
    return user, token


def save(client, password=NEW):
    return client.post("/auth/set-password", data={"csrf_token": csrf_token(client), "password": password,
                                                   "confirm": password})


def test_the_first_get_spends_the_link_and_leaves_no_secret_in_the_url(app, client, make_user):
    user, token = issue(make_user)
    opened = client.get(f"/auth/set-password/{token}")
    assert opened.status_code == 303
    assert opened.location == "/auth/set-password" and token not in opened.location
    assert opened.headers["Referrer-Policy"] == "no-referrer"
    assert accounts.password_link_user(db.session, token) is None  # the emailed token is dead now
    form = client.get("/auth/set-password")
    assert form.status_code == 200 and form.headers["Referrer-Policy"] == "no-referrer"
    assert token not in form.get_data(as_text=True)
    assert 'action="/auth/set-password"' in form.get_data(as_text=True)
    assert save(client).status_code == 302
    assert accounts.verify_password(db.session.get(type(user), user.id), NEW)


def test_a_copy_of_the_link_from_a_log_is_worthless_after_the_owner_opened_it(app, client, make_user):
    user, token = issue(make_user)
    assert client.get(f"/auth/set-password/{token}").status_code == 303
    thief = app.test_client()
    assert thief.get(f"/auth/set-password/{token}").status_code == 404
    assert thief.get("/auth/set-password").status_code == 404
    assert save(thief, "the thief's own passphrase").status_code == 404
    assert save(client).status_code == 302  # the owner's form still works
    assert not accounts.verify_password(user, "the thief's own passphrase")


def test_whoever_opens_first_holds_the_form_and_the_other_is_told(app, client, make_user):
    _user, token = issue(make_user)
    first = accounts.open_password_link(db.session, token)
    assert first is not None
    assert accounts.open_password_link(db.session, token) is None
    assert client.get(f"/auth/set-password/{token}").status_code == 404


def test_the_opened_form_expires_after_an_hour_and_never_outlives_the_link(app, make_user):
    user = make_user("editor")
    start = now_utc()
    token = accounts.issue_password_link(db.session, user, now=start)
    form_token = accounts.open_password_link(db.session, token, now=start + timedelta(minutes=5))
    assert accounts.password_link_user(db.session, form_token, now=start + timedelta(minutes=64)) is user
    assert accounts.password_link_user(db.session, form_token, now=start + timedelta(minutes=66)) is None

    late = accounts.issue_password_link(db.session, user, now=start)
    late_form = accounts.open_password_link(db.session, late, now=start + timedelta(hours=23, minutes=30))
    assert accounts.password_link_user(db.session, late_form, now=start + timedelta(hours=24)) is None


def test_the_form_token_is_spent_by_saving(app, client, make_user):
    _user, token = issue(make_user)
    client.get(f"/auth/set-password/{token}")
    assert save(client).status_code == 302
    assert client.get("/auth/set-password").status_code == 404
    assert save(client, "yet another passphrase").status_code == 404
