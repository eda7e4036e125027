"""Issue 9, item 10: every staff and sign-in response is `Cache-Control: no-store`, set in one place.

The walk covers every GET rule of the staff and auth blueprints as a signed-in admin (pages,
downloads, redirects, 403s and 404s), the same URLs signed out (redirects to the login page), and
errors raised before any view runs (405, unknown staff URLs).
"""

from __future__ import annotations

import pytest
from werkzeug.routing import IntegerConverter

from registry.extensions import db
from registry.models import NoticePolicy
from registry.web import STAFF_BLUEPRINTS


@pytest.fixture
def ids(app, make_user):
    target = make_user("editor", email="target@example.com")
    policy = NoticePolicy(key="subprocessors", name="Sub-processor list", length=14, unit="calendar_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=None)
    db.session.add(policy)
    db.session.commit()
    return {"user_id": target.id, "policy_id": policy.id}


def staff_get_urls(app, ids) -> list[tuple[str, str]]:
    urls = []
    with app.test_request_context():
        for rule in app.url_map.iter_rules():
            if rule.endpoint.split(".")[0] not in STAFF_BLUEPRINTS or "GET" not in rule.methods:
                continue
            values = {name: ids.get(name, 1) if isinstance(rule._converters[name], IntegerConverter)
                      else "privacy-policy" for name in rule.arguments}
            urls.append((rule.endpoint, rule.build(values, append_unknown=False)[1]))
    return urls


def assert_not_stored(response, where: str) -> None:
    response.get_data()  # a streamed download must be read before the next request
    response.close()
    assert response.status_code < 500, where
    assert response.headers.get("Cache-Control") == "no-store", f"{where}: {response.headers}"
    assert response.headers.get("Pragma") == "no-cache", where


def test_every_staff_blueprint_is_in_the_no_store_list(app):
    """A new blueprint under /admin or /auth must be added to STAFF_BLUEPRINTS, or this fails."""
    prefixes = {name: blueprint.url_prefix or "" for name, blueprint in app.blueprints.items()}
    staff = {name for name, prefix in prefixes.items() if prefix.startswith(("/admin", "/auth"))}
    assert staff == set(STAFF_BLUEPRINTS)


def test_every_staff_get_as_an_admin_is_not_stored(app, make_user, login, ids):
    admin = login(make_user("admin"))
    urls = staff_get_urls(app, ids)
    assert {"admin.dashboard", "admin.change_set", "subscribers.index", "auth.login"} <= {e for e, _ in urls}
    statuses = set()
    for endpoint, url in urls:
        response = admin.get(url)
        statuses.add(response.status_code // 100)
        assert_not_stored(response, f"admin GET {url} ({endpoint}): {response.status_code}")
    # Pages, redirects (the login page for someone signed in) and errors (no change set 1) were all seen.
    assert statuses >= {2, 3, 4}


def test_signed_out_redirects_and_refusals_are_not_stored(app, make_user, login, ids):
    anonymous = app.test_client()
    editor = login(make_user("editor"))
    for endpoint, url in staff_get_urls(app, ids):
        assert_not_stored(anonymous.get(url), f"anonymous GET {url} ({endpoint})")
    for url in ("/admin/users/", "/admin/audit/", "/admin/policies/"):
        response = editor.get(url)
        assert response.status_code == 403
        assert_not_stored(response, f"editor GET {url}")


@pytest.mark.parametrize(("method", "url"), [
    ("GET", "/admin/no-such-page"), ("GET", "/admin/change-sets/999999"), ("PUT", "/admin/"),
    ("DELETE", "/admin/users/1/disable"), ("HEAD", "/admin/users/create"), ("GET", "/auth/no-such-page"),
    ("GET", "/admin/change-sets/99999999999"),
])
def test_errors_before_any_view_are_not_stored(app, make_user, login, method, url):
    response = login(make_user("admin")).open(url, method=method)
    assert 400 <= response.status_code < 500
    assert_not_stored(response, f"{method} {url}")


def test_public_pages_keep_their_own_caching(app):
    response = app.test_client().get("/subprocessors/")
    assert response.status_code == 200
    assert "no-store" not in response.headers.get("Cache-Control", "")
    assert "Pragma" not in response.headers
