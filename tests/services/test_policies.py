"""Notice policies never allow an objection window that outlasts the notice (SCC 2021/914 cl. 9(a))."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from registry.domain.notice import (
    NoticeRule,
    bounded_objection_deadline,
    earliest_effective,
    objection_deadline,
    objection_window_problem,
)
from registry.extensions import db
from registry.models import AuditEntry, NoticePolicy
from registry.services import policies

WARSAW = dict(calendars=("PL",), timezone="Europe/Warsaw")


@pytest.mark.parametrize("unit", ["calendar_days", "business_days"])
@pytest.mark.parametrize("length, objection_days", [(14, 14), (14, 0), (3, 3), (30, None), (0, 0)])
def test_a_window_within_the_notice_ends_by_the_earliest_date(unit, length, objection_days):
    rule = NoticeRule(length=length, unit=unit, objection_days=objection_days, **WARSAW)
    assert objection_window_problem(rule) is None
    for completed in (datetime(2026, 12, 18, 15, tzinfo=UTC), datetime(2026, 3, 28, 23, 30, tzinfo=UTC)):
        deadline = objection_deadline(completed, rule)
        assert deadline is None or deadline <= earliest_effective(completed, rule)


@pytest.mark.parametrize("unit", ["calendar_days", "business_days"])
def test_a_window_longer_than_the_notice_is_refused_by_name(unit):
    rule = NoticeRule(length=10, unit=unit, objection_days=14, **WARSAW)
    problem = objection_window_problem(rule)
    assert problem.startswith("objection_days (14) must not exceed the notice length (10 ")
    assert "before the change takes effect" in problem


def test_the_deadline_is_bounded_by_the_effective_date():
    early, late = datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 15, tzinfo=UTC)
    assert bounded_objection_deadline(late, early) == early
    assert bounded_objection_deadline(early, late) == early
    assert bounded_objection_deadline(None, early) is None
    assert bounded_objection_deadline(late, None) == late


def test_update_policy_refuses_a_long_window_and_changes_nothing(app):
    policy = NoticePolicy(key="dpa", name="DPA", length=14, unit="calendar_days", calendars=["PL"],
                          timezone="Europe/Warsaw", objection_days=14)
    db.session.add(policy)
    db.session.commit()
    rule = NoticeRule(length=7, unit="calendar_days", objection_days=14, **WARSAW)
    with pytest.raises(policies.PolicyError) as refused:
        policies.update_policy(db.session, policy, rule, actor="admin@example.com", actor_id=None)
    assert refused.value.field == "objection_days"
    assert (policy.length, policy.objection_days) == (14, 14)
    assert db.session.scalars(select(AuditEntry)).first() is None


def test_the_policy_form_says_why(app, make_user, login):
    policy = NoticePolicy(key="dpa", name="DPA", length=14, unit="calendar_days", calendars=["PL"],
                          timezone="Europe/Warsaw", objection_days=14)
    db.session.add(policy)
    db.session.commit()
    client = login(make_user("admin"))
    response = client.post(f"/admin/policies/{policy.id}", data={
        "csrf_token": client.csrf(), "length": "7", "unit": "calendar_days", "calendars": "PL",
        "timezone": "Europe/Warsaw", "objection_days": "14"})
    assert response.status_code == 422
    assert "objection_days (14) must not exceed the notice length (7 calendar days)" in response.get_data(
        as_text=True)
    db.session.expire_all()
    assert db.session.get(NoticePolicy, policy.id).length == 14
