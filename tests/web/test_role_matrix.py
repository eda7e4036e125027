"""The role matrix: every staff URL in the URL map, crawled as anonymous, editor, approver and admin.

The staff blueprints are found in the URL map at test time, so endpoints added later are crawled too;
each view's `required_permission` (set by permission_required) is checked against registry.domain.roles,
and the endpoints of the users, audit and policies blueprints against an explicit table as well.
"""

from __future__ import annotations

import pytest
from werkzeug.routing import IntegerConverter

from registry.domain.roles import PERMISSIONS, ROLES, can
from registry.extensions import db
from registry.models import NoticePolicy

STAFF_BLUEPRINTS = ("admin", "users", "audit", "policies", "subscribers", "notices", "organisations")
# Log-in, two-factor and set-password pages are for people who are not signed in yet; logout is staff.
PUBLIC_AUTH_ENDPOINTS = {"auth.login", "auth.login_submit", "auth.two_factor", "auth.two_factor_submit",
                         "auth.set_password", "auth.set_password_form", "auth.set_password_submit"}
EXPECTED = {
    "users.index": "manage_users",
    "users.create": "manage_users",
    "users.disable": "manage_users",
    "users.enable": "manage_users",
    "users.reset_two_factor": "manage_users",
    "users.new_password_link": "manage_users",
    # Every staff user's own account page: which inbox mails they get.
    "users.account": "view",
    "users.save_account": "view",
    "audit.index": "audit",
    "audit.export_csv": "audit",
    "policies.index": "manage_policies",
    "policies.edit": "manage_policies",
    "policies.update": "manage_policies",
}
OWN_BLUEPRINTS = ("users", "audit", "policies")


def staff_rules(app):
    return [rule for rule in app.url_map.iter_rules()
            if rule.endpoint.split(".")[0] in STAFF_BLUEPRINTS or rule.endpoint == "auth.logout"]


def required_permission(app, endpoint: str) -> str | None:
    return getattr(app.view_functions[endpoint], "required_permission", None)


def test_every_staff_endpoint_declares_a_known_permission(app):
    rules = staff_rules(app)
    assert {rule.endpoint for rule in rules} >= set(EXPECTED) | {"auth.logout"}
    for rule in rules:
        if rule.endpoint == "auth.logout":
            continue  # any signed-in user may sign out
        permission = required_permission(app, rule.endpoint)
        assert permission in PERMISSIONS, f"{rule.endpoint} ({rule.rule}) has no permission_required"
    auth_rules = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("auth.")}
    assert auth_rules == PUBLIC_AUTH_ENDPOINTS | {"auth.logout"}


def test_the_explicit_table_matches_the_views(app):
    own = {rule.endpoint for rule in app.url_map.iter_rules()
           if rule.endpoint.split(".")[0] in OWN_BLUEPRINTS}
    assert own == set(EXPECTED), "a new endpoint in users/audit/policies needs a row in EXPECTED"
    for endpoint, permission in EXPECTED.items():
        assert required_permission(app, endpoint) == permission, endpoint


def test_the_permission_table_is_the_issue_s_role_matrix():
    # An editor drafts; an approver approves and schedules; an admin manages users and notice policies.
    assert can("editor", "draft") and not can("editor", "approve")
    assert can("approver", "approve") and not can("admin", "approve")
    for permission in ("manage_users", "manage_policies"):
        assert [role for role in ROLES if can(role, permission)] == ["admin"]
    assert not can(None, "view")


@pytest.fixture
def rows(app, make_user):
    """Rows whose ids fill URL parameters, so that allowed requests reach real objects where they can."""
    target = make_user("editor", email="target@example.com")
    policy = NoticePolicy(key="subprocessors", name="Sub-processor list", length=14, unit="calendar_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=14)
    db.session.add(policy)
    db.session.commit()
    return {"user_id": target.id, "policy_id": policy.id}


def build(app, rule, rows) -> str:
    values = {}
    for name in rule.arguments:
        converter = rule._converters[name]
        values[name] = rows.get(name, 1) if isinstance(converter, IntegerConverter) else "privacy-policy"
    with app.test_request_context():
        return rule.build(values, append_unknown=False)[1]


def clients(make_user, login, app):
    return {
        "anonymous": app.test_client(),
        "pending": login(make_user("approver"), verified=False),
        **{role: login(make_user(role)) for role in ROLES},
    }


def test_crawl_every_staff_get_url_as_every_role(app, make_user, login, rows):
    by_role = clients(make_user, login, app)
    crawled = 0
    for rule in staff_rules(app):
        if "GET" not in rule.methods:
            continue
        url = build(app, rule, rows)
        permission = required_permission(app, rule.endpoint)
        for who, client in by_role.items():
            response = client.get(url)
            response.get_data()  # a streamed body (CSV) must be read before the next request
            response.close()
            where = f"{who} GET {url} ({rule.endpoint}, needs {permission})"
            assert response.status_code < 500, where
            if who == "anonymous":
                assert response.status_code == 302 and "/auth/login" in response.location, where
            elif who == "pending":
                assert response.status_code == 302 and "/auth/two-factor" in response.location, where
            elif can(who, permission):
                assert response.status_code != 403, where
            else:
                assert response.status_code == 403, where
        crawled += 1
    assert crawled >= 4  # users.index, audit.index, audit.export_csv, policies.index, policies.edit


def test_every_staff_post_refuses_a_missing_csrf_token(app, make_user, login, rows):
    admin = login(make_user("admin"))
    anonymous = app.test_client()
    posts = [rule for rule in staff_rules(app) if "POST" in rule.methods]
    assert {rule.endpoint for rule in posts} >= {"auth.logout", "users.create", "policies.update"}
    for rule in posts:
        url = build(app, rule, rows)
        for client in (admin, anonymous):
            response = client.post(url, data={"email": "x@example.com", "role": "admin", "length": "1"})
            assert response.status_code == 400, (rule.endpoint, url, response.status_code)
    # Nothing happened: the target account is still enabled, no account was created.
    from registry.models import User

    db.session.expire_all()
    assert db.session.get(User, rows["user_id"]).is_enabled
    assert db.session.query(User).filter_by(email="x@example.com").first() is None


def test_posts_as_the_wrong_role_are_403_and_change_nothing(app, make_user, login, rows):
    for role in ("editor", "approver"):
        client = login(make_user(role))
        for endpoint, permission in EXPECTED.items():
            rule = next(rule for rule in app.url_map.iter_rules() if rule.endpoint == endpoint)
            if "POST" not in rule.methods or can(role, permission):
                continue
            response = client.post(build(app, rule, rows), data={"csrf_token": client.csrf(), "length": "1"})
            assert response.status_code == 403, (role, endpoint)
    db.session.expire_all()
    assert db.session.get(NoticePolicy, rows["policy_id"]).length == 14
