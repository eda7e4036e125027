"""Notice policies admin: edit with validation through NoticeRule, audited with before and after."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import AuditEntry, NoticePolicy


@pytest.fixture
def policy(app):
    policy = NoticePolicy(key="privacy-policy", name="Privacy policy", length=3, unit="business_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=None)
    db.session.add(policy)
    db.session.commit()
    return policy


@pytest.fixture
def admin_client(make_user, login):
    return login(make_user("admin"))


def valid(**changes) -> dict:
    return {"length": "5", "unit": "calendar_days", "calendars": "PL, US-MA", "timezone": "America/New_York",
            "objection_days": "3", **changes}


def test_list_and_edit_page(app, admin_client, policy):
    assert "Privacy policy" in admin_client.get("/admin/policies/").get_data(as_text=True)
    body = admin_client.get(f"/admin/policies/{policy.id}").get_data(as_text=True)
    assert 'value="3"' in body and 'value="PL"' in body and "Europe/Warsaw" in body


def test_saving_a_valid_rule_is_audited(app, admin_client, policy):
    response = admin_client.post(f"/admin/policies/{policy.id}",
                                 data={"csrf_token": admin_client.csrf(), **valid()})
    assert response.status_code == 302
    db.session.expire_all()
    saved = db.session.get(NoticePolicy, policy.id)
    assert (saved.length, saved.unit, saved.calendars, saved.timezone, saved.objection_days) == (
        5, "calendar_days", ["PL", "US-MA"], "America/New_York", 3)
    entry = db.session.scalars(select(AuditEntry)).one()
    assert entry.action == "notice_policy.update" and entry.object_id == "privacy-policy"
    assert entry.before == {"length": 3, "unit": "business_days", "calendars": ["PL"],
                            "timezone": "Europe/Warsaw", "objection_days": None}
    assert entry.after["calendars"] == ["PL", "US-MA"]


def test_an_unchanged_save_records_nothing(app, admin_client, policy):
    admin_client.post(f"/admin/policies/{policy.id}", data={
        "csrf_token": admin_client.csrf(), "length": "3", "unit": "business_days", "calendars": "PL",
        "timezone": "Europe/Warsaw", "objection_days": ""})
    assert db.session.scalars(select(AuditEntry)).first() is None


@pytest.mark.parametrize("changes, messages", [
    ({"length": ""}, ["length must be a whole number"]),
    ({"length": "abc", "unit": "weeks"}, ["length must be a whole number", "unknown unit"]),
    ({"length": "-1"}, ["between 0 and 365"]), ({"length": "99999999999"}, ["whole number"]),
    ({"calendars": "XX, US-ZZ"}, ["unknown holiday calendar &#39;XX&#39;", "no subdivision"]),
    ({"timezone": "Mars/Olympus"}, ["unknown time zone"]), ({"timezone": ""}, ["unknown time zone"]),
    ({"timezone": "localtime"}, ["unknown time zone"]), ({"objection_days": "1.5"}, ["objection_days"]),
    ({"calendars": "PL-<script>alert(1)</script>"}, ["unknown holiday calendar"]),
    ({"calendars": " ".join(["PL"] * 3 + [f"US-{s}" for s in ("MA", "NY", "CA", "TX", "WA", "OR", "FL",
                                                               "IL", "OH", "PA", "GA", "NC")])},
     ["At most 12 calendars"]),
    ({"length": "3\x00", "timezone": "Europe/Warsaw\x00"}, []),
])
def test_bad_rules_are_refused_naming_every_problem(app, admin_client, policy, changes, messages):
    response = admin_client.post(f"/admin/policies/{policy.id}",
                                 data={"csrf_token": admin_client.csrf(), **valid(**changes)})
    if not messages:  # NUL bytes are stripped, and what is left is a valid rule
        assert response.status_code == 302
        return
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Nothing was saved" in body and "<script>alert(1)" not in body
    for message in messages:
        assert message in body
    db.session.expire_all()
    assert db.session.get(NoticePolicy, policy.id).length == 3
    assert db.session.scalars(select(AuditEntry)).first() is None


def test_unknown_policy_is_404(app, admin_client):
    assert admin_client.get("/admin/policies/424242").status_code == 404
