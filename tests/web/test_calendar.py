"""/calendar.ics and its per-document and sub-processor siblings, on both databases."""

from datetime import timedelta

import icalendar
import pytest

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import publishing, site, workflow
from tests.factories import terms_document

PATHS = ["/calendar.ics", "/calendar/subprocessors.ics", "/calendar/documents/privacy-policy.ics"]


def parse(response) -> icalendar.Calendar:
    assert response.status_code == 200, response.data[:300]
    assert response.content_type == "text/calendar; charset=utf-8"
    return icalendar.Calendar.from_ical(response.data)


@pytest.mark.parametrize("path", PATHS)
def test_every_demo_calendar_parses_with_the_legal_zone(demo_client, demo_app, path):
    calendar = parse(demo_client.get(path))
    zone = demo_app.config["REGISTRY"].legal_timezone
    events = calendar.walk("VEVENT")
    assert events, path
    assert [z["TZID"] for z in calendar.walk("VTIMEZONE")] == [zone]
    for event in events:
        assert event["DTSTART"].params["TZID"] == zone
        assert str(event["UID"]).endswith("@localhost")
        assert str(event["URL"]).startswith("http://localhost/")
    uids = [str(e["UID"]) for e in events]
    assert len(uids) == len(set(uids))


@pytest.mark.parametrize("path", PATHS)
def test_conditional_requests_get_304(demo_client, path):
    first = demo_client.get(path)
    assert first.headers["ETag"] and first.headers["Last-Modified"]
    again = demo_client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_unknown_calendars_are_404(demo_client):
    for path in ("/calendar/documents/nope.ics", "/calendar/documents/Bad_Slug.ics", "/calendar.ical",
                 "/calendar/documents/privacy-policy.ics/x", "/calendar/everything.ics"):
        assert demo_client.get(path).status_code == 404, path


@pytest.fixture
def document(app):
    return terms_document()


def publish(document, title, *, published_at, effective_at, notice_completed_at=None):
    change_set = publishing.create_change_set(db.session, title=title, summary="S.")
    publishing.draft_document_version(db.session, change_set, document, source_md=f"# {title}\n\nText.",
                                      summary="What changes.", is_material=True)
    publishing.publish(db.session, change_set, published_at=published_at, effective_at=effective_at,
                       notice_completed_at=notice_completed_at)
    site.touch(db.session)
    db.session.commit()
    return change_set


def events(client, path="/calendar.ics"):
    return {str(e["UID"]).split("@")[0]: e for e in parse(client.get(path)).walk("VEVENT")}


def test_an_unannounced_change_is_absent_an_announced_one_present(client, document):
    now = now_utc().replace(microsecond=0)
    draft = publishing.create_change_set(db.session, title="Draft", summary="S.")
    db.session.commit()
    shown = publish(document, "Announced", published_at=now - timedelta(days=1),
                    effective_at=now + timedelta(days=40), notice_completed_at=now - timedelta(days=1))
    later = publish(document, "Notice starts tomorrow", published_at=now + timedelta(days=1),
                    effective_at=now + timedelta(days=50), notice_completed_at=now + timedelta(days=1))
    found = events(client)
    assert set(found) == {f"change-{shown.id}-effective", f"change-{shown.id}-objections"}
    assert not any(str(draft.id) in uid or str(later.id) in uid for uid in found)
    assert found[f"change-{shown.id}-effective"].decoded("DTSTART") == shown.effective_at
    assert found[f"change-{shown.id}-objections"].decoded("DTEND") == shown.objection_deadline_at
    assert set(events(client, "/calendar/documents/terms.ics")) == set(found)
    assert events(client, "/calendar/subprocessors.ics") == {}


def test_a_moved_date_raises_the_sequence_and_a_withdrawal_cancels(client, document, make_user):
    now = now_utc().replace(microsecond=0)
    change_set = publish(document, "Late notice", published_at=now - timedelta(days=5),
                         effective_at=now + timedelta(days=20))
    uid = f"change-{change_set.id}-effective"
    assert int(events(client)[uid]["SEQUENCE"]) == 0
    [moved] = publishing.postpone_overdue(db.session, now=now)  # 30 days' notice cannot end in 20
    db.session.commit()
    after = events(client)[uid]
    assert int(after["SEQUENCE"]) == 1 and after.decoded("DTSTART") == moved.effective_at
    workflow.withdraw(db.session, change_set, actor=make_user("approver"), note="Vendor withdrew.", now=now)
    db.session.commit()
    gone = events(client)
    assert str(gone[uid]["STATUS"]) == "CANCELLED" and int(gone[uid]["SEQUENCE"]) == 2
    assert gone[uid]["URL"] == "http://localhost/changes"


def test_feeds_and_calendars_are_linked_from_public_pages(demo_client):
    html = demo_client.get("/").get_data(as_text=True)
    assert 'type="text/calendar"' in html and 'href="/calendar.ics"' in html
    doc = demo_client.get("/documents/privacy-policy/").get_data(as_text=True)
    assert 'href="/calendar/documents/privacy-policy.ics"' in doc


@pytest.mark.parametrize("path, calendar", [
    ("/", "/calendar.ics"), ("/upcoming", "/calendar.ics"),
    ("/subprocessors/", "/calendar/subprocessors.ics"),
    ("/documents/privacy-policy/", "/calendar/documents/privacy-policy.ics"),
    ("/documents/privacy-policy/versions/", "/calendar/documents/privacy-policy.ics")])
def test_a_visible_calendar_link_beside_each_feed_link(demo_client, path, calendar):
    html = demo_client.get(path).get_data(as_text=True)
    feed_line = html[html.index('class="feed-link"'):]
    feed_line = feed_line[:feed_line.index("</p>")]
    assert f'href="{calendar}" type="text/calendar"' in feed_line

