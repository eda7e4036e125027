"""A material change is never in force before its notice completed, whatever its date says."""

from datetime import datetime, timedelta

from registry.domain.clock import now_utc
from registry.domain.notice import NoticeRule, earliest_effective
from registry.extensions import db
from registry.models import NoticePolicy
from registry.services import publishing, reading

# Reading pages uses the real clock, so these tests are dated from it.
NOW = now_utc()
FIELDS = {"name": "Acme", "legal_entity": "Acme Ltd", "address": "1 Road", "contact": "a@acme.test",
          "purpose": "Hosting", "transfer_mechanism": "SCCs", "countries": ["DE"]}


def _scheduled(effective_at: datetime):
    policy = NoticePolicy(key="subprocessors", name="Sub-processors", length=3, unit="business_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=None)
    db.session.add(policy)
    change_set = publishing.create_change_set(db.session, title="Acme added")
    publishing.draft_subprocessor_change(db.session, change_set, "acme", "add", fields=FIELDS)
    publishing.publish(db.session, change_set, published_at=NOW - timedelta(days=10),
                       effective_at=effective_at, notice_completed_at=None, now=NOW)
    return change_set


def test_a_passed_date_waits_for_the_notice(app):
    change_set = _scheduled(NOW - timedelta(days=1))
    assert reading.effective_moment(change_set, NOW) == reading.NOT_YET
    assert [e.effective_at for e in reading.subprocessor_events(db.session)] == [reading.NOT_YET]


def test_a_future_date_is_shown_while_the_notice_goes_out(app):
    change_set = _scheduled(NOW + timedelta(days=7))
    assert reading.effective_moment(change_set, NOW) == NOW + timedelta(days=7)


def test_the_entry_page_and_api_say_so_instead_of_failing(app, client):
    _scheduled(NOW - timedelta(days=1))
    db.session.commit()
    page = client.get("/subprocessors/acme")
    assert page.status_code == 200
    assert "once the notice has gone out" in page.text
    api = client.get("/api/v1/subprocessors/acme")
    assert api.status_code == 200
    assert api.json["data"]["history"][0]["effective_at"] is None


def test_the_tick_moves_a_date_the_notice_can_no_longer_make(app):
    change_set = _scheduled(NOW + timedelta(hours=1))
    moved = publishing.postpone_overdue(db.session, now=NOW)
    assert moved == [change_set]
    rule = NoticeRule(length=3, unit="business_days", calendars=("PL",), timezone="Europe/Warsaw")
    assert change_set.effective_at == earliest_effective(NOW, rule)
    assert change_set.planned_effective_at == NOW + timedelta(hours=1)
