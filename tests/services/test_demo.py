"""The demo content is a realistic registry: enough entries, countries, versions and one upcoming change."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from registry.domain import subprocessors as domain
from registry.domain.clock import now_utc
from registry.extensions import db
from registry.services import demo, proof, reading


def test_demo_registry_is_realistic(demo_app):
    with demo_app.app_context():
        now = now_utc()
        events = reading.subprocessor_events(db.session)
        current = domain.state_at(events, now)
        assert len({e.slug for e in events}) >= 15
        assert len({c for e in events for c in e.entry.countries}) >= 6
        purposes = {e.entry.purpose for e in events}
        assert {"Hosting and infrastructure", "Email delivery", "Payments", "Analytics",
                "Customer support", "AI features"} <= purposes
        assert [e for e in current.values() if e.entry.feature]  # a feature-only group
        assert any(e.action == "remove" for e in events)
        assert any(e.action == "change" for e in events)

        counts = {d.slug: len(reading.versions(db.session, d)) for d in reading.documents(db.session)}
        assert counts["privacy-policy"] >= 4  # three past versions and the upcoming one
        assert min(counts.values()) >= 2

        upcoming = reading.upcoming_change_sets(db.session, now)
        assert len(upcoming) == 1
        change_set = upcoming[0]
        assert change_set.published_at < now < change_set.effective_at
        assert change_set.document_versions and change_set.subprocessor_records
        materials = {v.version.is_material for d in reading.documents(db.session)
                     for v in reading.versions(db.session, d)}
        assert materials == {True, False}


def test_the_demo_notice_was_given_in_full_and_on_time(demo_app):
    """The upcoming change keeps its announced date: its notice met every policy that governs it."""
    from registry.models import ChangeStatus, OutgoingMail
    from registry.services import notices, publishing

    with demo_app.app_context():
        [change_set] = reading.upcoming_change_sets(db.session, now_utc())
        assert change_set.status == ChangeStatus.IN_NOTICE
        assert change_set.effective_at == change_set.planned_effective_at
        assert change_set.effective_moved_at is None
        assert change_set.effective_at >= publishing.earliest_effective_for(
            db.session, change_set, change_set.notice_completed_at)
        progress = notices.progress(db.session, [change_set.id])[change_set.id]
        assert progress.eligible == progress.sent > 0
        assert not db.session.scalars(select(OutgoingMail)).all()  # no "date moved" alerts


def test_demo_refuses_a_database_with_content(app, runner):
    first = runner.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "Demo loaded" in first.output
    assert demo.has_content(db.session)
    again = runner.invoke(args=["demo", "load"])
    assert again.exit_code != 0
    assert "already has content" in again.output
    quiet = runner.invoke(args=["demo", "load", "--if-empty"])
    assert quiet.exit_code == 0
    assert "demo not loaded" in quiet.output
    assert len(db.session.scalars(select(demo.Document)).all()) == 4


def test_no_demo_deadline_falls_after_its_effective_date_and_every_notice_was_long_enough(demo_app):
    """Customers could object before each change took effect, and each notice met its policies."""
    from registry.models import ChangeSet
    from registry.services import publishing

    with demo_app.app_context():
        change_sets = db.session.scalars(select(ChangeSet).where(ChangeSet.published_at.is_not(None))).all()
        assert len(change_sets) >= 20
        with_deadline = [c for c in change_sets if c.objection_deadline_at is not None]
        assert len(with_deadline) >= 10
        late = [c.title for c in with_deadline if c.objection_deadline_at > c.effective_at]
        assert late == []
        short = [c.title for c in change_sets if c.is_material and c.effective_at
                 < publishing.earliest_effective_for(db.session, c, c.notice_completed_at)]
        assert short == []


def test_the_demo_leaves_its_notice_mails_in_the_outbox(databases, tmp_path):
    from email import message_from_bytes, policy

    from tests.conftest import dispose, fresh_app

    app = fresh_app(databases.new(), tmp_path / "instance", mail_sender="outbox")
    try:
        result = app.test_cli_runner().invoke(args=["demo", "load"])
        assert result.exit_code == 0, result.output
        assert "notice mails are in" in result.output
        files = sorted((tmp_path / "instance" / "outbox").glob("*.eml"))
        with app.app_context():
            sent = db.session.scalars(select(demo.Delivery).where(demo.Delivery.status == "sent")).all()
            # One mail per delivery the demo's notices made, each the message its delivery records.
            assert len(files) == len(sent) > 0
            assert all(proof.sent_message(db.session, d.id) for d in sent)
        subjects = {message_from_bytes(f.read_bytes(), policy=policy.default)["Subject"] for f in files}
        assert any("Kestrel" in s or "change" in s.lower() for s in subjects), subjects
        # The staff mailbox lists them.
        with app.app_context():
            from registry.web import notices as mailbox
            assert len(mailbox._names()) == len(files)
    finally:
        dispose(app)


@pytest.mark.parametrize("now", [
    datetime(2026, 12, 1, 22, 30, tzinfo=UTC),   # Tuesday, after midnight in the legal zone
    datetime(2026, 12, 4, 23, 30, tzinfo=UTC),   # Friday night: Saturday already in the legal zone
    datetime(2026, 12, 6, 0, 30, tzinfo=UTC),    # Sunday
    datetime(2026, 12, 2, 0, 45, tzinfo=UTC),    # Wednesday, just after midnight
    datetime(2026, 10, 26, 11, 0, tzinfo=UTC),   # Monday after the change to winter time
])
def test_the_demo_moves_no_date_whenever_it_is_loaded(app, now):
    """The demo's dates are days before `now`; the times of its notices must not depend on the time of
    day it is loaded (loaded at 22:26 UTC, the withdrawn change's notice fell on the next legal day
    and its planned date moved)."""
    from registry.models import ChangeSet, OutgoingMail

    demo.load(db.session, now)
    db.session.flush()
    moved = db.session.scalars(select(ChangeSet.title).where(ChangeSet.effective_moved_at.is_not(None))).all()
    assert moved == []
    assert db.session.scalars(select(OutgoingMail.template)).all() == []
