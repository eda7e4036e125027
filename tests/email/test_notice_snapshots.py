"""Snapshots of the notice, effective-date-moved and dispatch-failed emails (UPDATE_SNAPSHOTS=1 rewrites)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.notify import messages
from registry.notify.messages import RenderedEmail
from registry.services import notices, publishing
from tests.services.test_notices import SUBPROCESSOR, make_document, make_subscriber, make_topics

SNAPSHOTS = Path(__file__).parent / "snapshots"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def check(name: str, rendered: RenderedEmail | messages.BatchMessage) -> None:
    for part, suffix in (("subject", "subject.txt"), ("text", "body.txt"), ("html", "body.html")):
        path = SNAPSHOTS / f"{name}.{suffix}"
        actual = getattr(rendered, part)
        if os.environ.get("UPDATE_SNAPSHOTS") == "1":
            path.write_text(actual, encoding="utf-8")
        assert path.exists(), f"no snapshot {path.name}; run with UPDATE_SNAPSHOTS=1 and review it"
        assert actual == path.read_text(encoding="utf-8"), f"{path.name} changed: review, UPDATE_SNAPSHOTS=1"


@pytest.fixture
def registry_with_history(app):
    """Fixed content: a document at version 1, and a sub-processor to change later."""
    topics = make_topics()
    make_subscriber("reader@example.com", topics, ("subprocessors", "documents"))
    document = make_document()
    first = publishing.create_change_set(db.session, title="First versions")
    publishing.draft_document_version(db.session, first, document, source_md="# Privacy\n\nv1",
                                      summary="First", is_material=True)
    publishing.draft_subprocessor_change(db.session, first, "old-cloud", "add",
                                         fields={**SUBPROCESSOR, "name": "Old Cloud"})
    publishing.publish(db.session, first, published_at=NOW - timedelta(days=90),
                       notice_completed_at=NOW - timedelta(days=90), effective_at=NOW - timedelta(days=60),
                       now=NOW)
    return document


def schedule(document, *, material: bool, title: str, summary: str, subprocessors: bool):
    change_set = publishing.create_change_set(db.session, title=title, summary=summary, is_material=material)
    publishing.draft_document_version(db.session, change_set, document, source_md="# Privacy\n\nv2",
                                      summary="Retention periods are now listed per category.",
                                      is_material=material)
    if subprocessors:
        publishing.draft_subprocessor_change(db.session, change_set, "acme-mail", "add", fields=SUBPROCESSOR,
                                             summary="Sends our transactional email.")
        publishing.draft_subprocessor_change(db.session, change_set, "old-cloud", "change",
                                             fields={"countries": ["DE", "US"], "transfer_mechanism": "SCCs"})
    effective = datetime(2026, 4, 30, 22, 0, tzinfo=UTC)  # 1 May 2026, 00:00 in Warsaw
    publishing.publish(db.session, change_set, published_at=NOW, notice_completed_at=None,
                       effective_at=effective,
                       effective_new_customers_at=datetime(2026, 3, 31, 22, tzinfo=UTC) if material else None,
                       now=NOW)
    return notices.start_notice(db.session, change_set, now=NOW)


def test_material_notice(registry_with_history):
    notice = schedule(registry_with_history, material=True, title="Privacy Policy & sub-processors, May 2026",
                      summary="We list retention per category and add an email provider <in the EU>.",
                      subprocessors=True)
    check("notice_material", messages.notice_batch_message(db.session, notice))


def test_non_material_notice(registry_with_history):
    notice = schedule(registry_with_history, material=False, title="Wording fixes",
                      summary="Typos fixed; nothing changes in substance.", subprocessors=False)
    check("notice_non_material", messages.notice_batch_message(db.session, notice))


def test_effective_date_moved(app):
    check("effective_date_moved", messages.render_email("effective_date_moved", {
        "change_set_id": 12, "title": "Privacy Policy & sub-processors, May 2026",
        "reason": "the notice completed later than planned",
        "before": "2026-04-30T22:00:00+00:00", "after": "2026-05-04T22:00:00+00:00",
    }))


def test_dispatch_failed(app):
    check("dispatch_failed", messages.render_email("dispatch_failed", {
        "notice_id": 7, "change_set_id": 12, "count": 3,
        "reason": "400: The from address does not match a verified Sender Identity <x@example.com>",
    }))


def test_withdrawal_notice(registry_with_history):
    from registry.models import ChangeSet, ChangeSetEvent, Delivery

    notice = schedule(registry_with_history, material=True, title="Privacy Policy & sub-processors, May 2026",
                      summary="We list retention per category and add an email provider.", subprocessors=True)
    db.session.execute(Delivery.__table__.update().where(Delivery.notice_id == notice.id)
                       .values(status="sent", sent_at=NOW))
    change_set = db.session.get(ChangeSet, notice.change_set_id)
    change_set.status, change_set.withdrawn_at = "withdrawn", NOW + timedelta(days=3)
    db.session.add(ChangeSetEvent(change_set=change_set, at=NOW + timedelta(days=3),
                                  actor="approver@example.com", action="withdrawn", to_status="withdrawn",
                                  note="Acme Mail could not sign our data processing terms in time."))
    withdrawal = notices.start_withdrawal_notice(db.session, change_set, now=NOW + timedelta(days=3))
    check("notice_withdrawn", messages.notice_batch_message(db.session, withdrawal))


def test_date_moved_notice(registry_with_history):
    from registry.models import ChangeSet, Delivery, Notice

    notice = schedule(registry_with_history, material=True, title="Privacy Policy & sub-processors, May 2026",
                      summary="We list retention per category and add an email provider.", subprocessors=True)
    db.session.execute(Delivery.__table__.update().where(Delivery.notice_id == notice.id)
                       .values(status="sent", sent_at=NOW))
    change_set = db.session.get(ChangeSet, notice.change_set_id)
    later = NOW + timedelta(days=2)
    publishing.complete_notice(db.session, change_set, completed_at=datetime(2026, 4, 20, 9, tzinfo=UTC),
                               now=later)
    moved = db.session.scalars(select(Notice).where(Notice.kind == "date_moved")).one()
    check("notice_date_moved", messages.notice_batch_message(db.session, moved))
