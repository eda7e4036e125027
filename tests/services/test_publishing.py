"""Publishing a change set: numbering, rendering, stored comparisons, validation, audit."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import AuditEntry, ChangeStatus, Comparison, Document, NoticePolicy, SiteState
from registry.services import publishing, reading
from registry.services.audit import GENESIS, entry_hash

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
FIELDS = dict(name="Acme", legal_entity="Acme GmbH", address="Street 1, Berlin",
              contact="privacy@acme.example", purpose="Hosting", transfer_mechanism="Within the EEA",
              countries=["DE"])


@pytest.fixture
def document(app):
    policy = NoticePolicy(key="privacy-policy", name="Privacy", length=3, unit="business_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=10)
    doc = Document(slug="privacy-policy", title="Privacy Policy", notice_policy=policy)
    db.session.add(doc)
    db.session.flush()
    return doc


def publish_version(doc, text, days, summary="Changes"):
    change_set = publishing.create_change_set(db.session, title=summary)
    publishing.draft_document_version(db.session, change_set, doc, source_md=text,
                                      summary=summary, is_material=True)
    effective = NOW + timedelta(days=days)
    return publishing.publish(db.session, change_set, published_at=effective - timedelta(days=7),
                              notice_completed_at=effective - timedelta(days=7),
                              effective_at=effective, now=NOW)


def test_publish_numbers_renders_and_compares_once(document):
    publish_version(document, "# Policy\n\nWe collect your name.", -30)
    publish_version(document, "# Policy\n\nWe collect your name and email.", -10)
    third = publish_version(document, "# Policy\n\nWe collect your email.", 5)
    versions = reading.versions(db.session, document)
    assert [v.number for v in versions] == [1, 2, 3]
    assert versions[0].version.html.startswith("<h1")
    assert versions[0].version.headings[0]["anchor"] == "policy"
    # Every pair (older, newer) is stored when the newer one is published.
    assert db.session.scalar(select(func.count()).select_from(Comparison)) == 3
    stored = reading.comparison(db.session, versions[1].version, versions[2].version)
    assert "<del>" in stored.redline_html and stored.words_deleted >= 2
    assert third.status == ChangeStatus.IN_NOTICE
    assert reading.current_version(versions, NOW).number == 2


def test_objection_deadline_comes_from_the_notice_policy(document):
    change_set = publish_version(document, "# Policy", 20)
    local = change_set.objection_deadline_at.astimezone(ZoneInfo("Europe/Warsaw"))
    assert (local.hour, local.minute) == (0, 0)
    assert change_set.objection_deadline_at > change_set.published_at + timedelta(days=10)


def test_publish_touches_the_site_revision_and_audits(document):
    publish_version(document, "# Policy", -1)
    publish_version(document, "# Policy v2", 1)
    assert db.session.get(SiteState, 1).revision == 2
    entries = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
    assert [e.action for e in entries] == ["change_set.publish"] * 2
    assert entries[0].prev_hash == GENESIS and entries[1].prev_hash == entries[0].hash
    first = entries[0]
    assert first.hash == entry_hash(first.prev_hash, first.at, first.actor, first.action,
                                    first.object_type, first.object_id, first.before, first.after)


def test_subprocessor_change_carries_forward_unchanged_fields(app):
    add = publishing.create_change_set(db.session, title="add")
    publishing.draft_subprocessor_change(db.session, add, "acme", "add", fields=FIELDS)
    publishing.publish(db.session, add, published_at=NOW - timedelta(days=20),
                       notice_completed_at=NOW - timedelta(days=20),
                       effective_at=NOW - timedelta(days=10), now=NOW)
    change = publishing.create_change_set(db.session, title="move")
    record = publishing.draft_subprocessor_change(db.session, change, "acme", "change",
                                                  fields={"countries": ["DE", "US"]})
    assert record.name == "Acme" and record.countries == ["DE", "US"]
    publishing.publish(db.session, change, published_at=NOW - timedelta(days=5),
                       notice_completed_at=NOW - timedelta(days=5), effective_at=NOW,
                       now=NOW)
    events = reading.subprocessor_events(db.session, "acme")
    assert [e.action for e in events] == ["add", "change"]
    assert events[0].effective_at.tzinfo is not None


@pytest.mark.parametrize(("slug", "action", "fields", "message"), [
    ("ghost", "change", {"name": "x"}, "there is no sub-processor"),
    ("ghost", "remove", None, "there is no sub-processor"),
    ("new", "add", {"name": "x"}, "a new sub-processor needs"),
    ("new", "add", {**FIELDS, "colour": "red"}, "unknown sub-processor fields"),
])
def test_invalid_subprocessor_drafts_are_refused(app, slug, action, fields, message):
    change_set = publishing.create_change_set(db.session, title="bad")
    with pytest.raises(publishing.PublishError, match=message):
        publishing.draft_subprocessor_change(db.session, change_set, slug, action, fields=fields)


def test_publish_refuses_empty_backwards_and_repeated(document):
    empty = publishing.create_change_set(db.session, title="empty")
    with pytest.raises(publishing.PublishError, match="empty change set"):
        publishing.publish(db.session, empty, published_at=NOW,
                           notice_completed_at=NOW, effective_at=NOW, now=NOW)
    change_set = publishing.create_change_set(db.session, title="x")
    publishing.draft_document_version(db.session, change_set, document, source_md="# A",
                                      summary="", is_material=True)
    with pytest.raises(publishing.PublishError, match="before the notice starts"):
        publishing.publish(db.session, change_set, published_at=NOW, notice_completed_at=NOW,
                           effective_at=NOW - timedelta(days=1), now=NOW)
    with pytest.raises(publishing.PublishError, match="new customers"):
        publishing.publish(db.session, change_set, published_at=NOW, notice_completed_at=NOW,
                           effective_at=NOW + timedelta(days=5),
                           effective_new_customers_at=NOW + timedelta(days=6), now=NOW)
    publishing.publish(db.session, change_set, published_at=NOW,
                       notice_completed_at=NOW, effective_at=NOW, now=NOW)
    with pytest.raises(publishing.PublishError, match="already public"):
        publishing.publish(db.session, change_set, published_at=NOW,
                           notice_completed_at=NOW, effective_at=NOW, now=NOW)


def test_withdrawn_change_sets_are_not_public(document):
    change_set = publish_version(document, "# Policy", 5)
    change_set.status = ChangeStatus.WITHDRAWN
    db.session.flush()
    assert reading.versions(db.session, document) == []
    assert reading.upcoming_change_sets(db.session, NOW) == []


@pytest.mark.parametrize(("slug", "message"), [
    ("changes", "reserved"), ("compare", "reserved"), ("Acme", "not a valid slug"),
    ("-acme", "not a valid slug"), ("a" * 81, "not a valid slug"), ("ac me", "not a valid slug"),
])
def test_new_subprocessor_slugs_are_checked(app, slug, message):
    change_set = publishing.create_change_set(db.session, title="bad slug")
    with pytest.raises(publishing.PublishError, match=message):
        publishing.draft_subprocessor_change(db.session, change_set, slug, "add", fields=FIELDS)


def test_a_withdrawn_addition_frees_its_slug_and_drafts_never_seed_a_change(app):
    first = publishing.create_change_set(db.session, title="add")
    publishing.draft_subprocessor_change(db.session, first, "acme", "add", fields=FIELDS)
    with pytest.raises(publishing.PublishError, match="already exists"):
        publishing.draft_subprocessor_change(db.session, publishing.create_change_set(db.session, title="x"),
                                             "acme", "add", fields=FIELDS)
    # A change to an entry that is only drafted has nothing public to start from.
    with pytest.raises(publishing.PublishError, match="there is no sub-processor"):
        publishing.draft_subprocessor_change(db.session, publishing.create_change_set(db.session, title="y"),
                                             "acme", "change", fields={"purpose": "Other"})
    first.status = ChangeStatus.WITHDRAWN
    again = publishing.create_change_set(db.session, title="add again")
    record = publishing.draft_subprocessor_change(db.session, again, "acme", "add", fields=FIELDS)
    assert record.subprocessor_id == first.subprocessor_records[0].subprocessor_id
