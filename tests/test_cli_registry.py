"""flask registry tick: postpones notices that can no longer make their date, records what took effect."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from registry.extensions import db
from registry.models import AuditEntry, ChangeSetEvent, ChangeStatus, Comparison
from registry.services import publishing, workflow
from tests.services.test_workflow import build_registry


def scheduled(make_user, effective_at, *, now):
    world = build_registry(db.session, now - timedelta(days=1))
    editor, approver = make_user("editor"), make_user("approver")
    change_set = workflow.create(db.session, title="Update", summary="s", is_material=True, actor=editor,
                                 now=now)
    workflow.save_document_version(db.session, change_set, world["document"], source_md="# New",
                                   summary="s", is_material=True, actor=editor, now=now)
    workflow.submit(db.session, change_set, actor=editor, now=now)
    workflow.approve(db.session, change_set, actor=approver, now=now)
    workflow.schedule(db.session, change_set, effective_at=effective_at, actor=approver,
                      legal_timezone="Europe/Warsaw", now=now)
    db.session.commit()
    return change_set


def test_tick_with_nothing_to_do(app, runner):
    result = runner.invoke(args=["registry", "tick"])
    assert result.exit_code == 0, result.output
    # The digest is due from 08:00 in the legal zone (then: nothing waits, so no mail), once a day.
    assert re.fullmatch(r"0 postponed, 0 now effective; 0 reminder mails about unanswered objections; "
                        r"daily digest: (not due|0 mails); 0 webhook attempts \(0 delivered\)\.\n",
                        result.output), result.output
    again = runner.invoke(args=["registry", "tick"])
    assert again.output.endswith("daily digest: not due; 0 webhook attempts (0 delivered).\n"), again.output


def test_tick_records_a_change_now_in_force_and_commits(app, runner, make_user):
    now = datetime.now(UTC)
    earliest_then = now - timedelta(days=10)
    change_set = scheduled(make_user, now + timedelta(days=30), now=earliest_then - timedelta(days=30))
    publishing.complete_notice(db.session, change_set, completed_at=earliest_then - timedelta(days=30),
                               now=earliest_then - timedelta(days=30))
    change_set.effective_at = now - timedelta(minutes=1)  # its date has just passed
    db.session.commit()

    result = runner.invoke(args=["registry", "tick"])

    assert result.exit_code == 0, result.output
    assert f"change set {change_set.id} (Update) is now effective" in result.output
    assert "0 postponed, 1 now effective; 0 reminder mails" in result.output
    db.session.remove()
    events = db.session.scalars(select(ChangeSetEvent).where(ChangeSetEvent.to_status == "effective")).all()
    assert [(e.change_set_id, e.from_status) for e in events] == [(change_set.id, "in_notice")]
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "change_set.effective"))
    assert audit.object_id == str(change_set.id)
    assert runner.invoke(args=["registry", "tick"]).output.startswith("0 postponed, 0 now effective;")


def test_tick_postpones_a_date_the_pending_notice_can_no_longer_make(app, runner, make_user):
    now = datetime.now(UTC)
    # Scheduled long ago for tomorrow, and its notice is still being sent.
    change_set = scheduled(make_user, now + timedelta(days=20), now=now - timedelta(days=20))
    change_set.effective_at = now + timedelta(hours=1)
    db.session.commit()

    result = runner.invoke(args=["registry", "tick"])

    assert result.exit_code == 0, result.output
    assert f"postponed change set {change_set.id} (Update) to " in result.output
    db.session.remove()
    moved = db.session.scalar(select(ChangeSetEvent).where(ChangeSetEvent.action == "effective_moved"))
    assert moved.change_set_id == change_set.id and "still being sent" in moved.note
    refreshed = db.session.get(type(change_set), change_set.id)
    assert refreshed.effective_at >= now + timedelta(days=2)
    assert refreshed.status == ChangeStatus.SCHEDULED


def test_recompare_recomputes_every_stored_comparison_and_commits(app, runner, make_user):
    now = datetime.now(UTC)
    change_set = scheduled(make_user, now + timedelta(days=30), now=now - timedelta(days=1))
    publishing.complete_notice(db.session, change_set, completed_at=now, now=now)
    stored = db.session.scalars(select(Comparison)).all()
    assert stored
    fresh = [(c.redline_html, c.side_by_side_html, c.words_inserted) for c in stored]
    for comparison in stored:
        comparison.redline_html = comparison.side_by_side_html = "stale"
        comparison.words_inserted = -1
    db.session.commit()

    result = runner.invoke(args=["registry", "recompare"])

    assert result.exit_code == 0, result.output
    assert result.output == f"{len(stored)} comparison{'' if len(stored) == 1 else 's'} recomputed.\n"
    db.session.remove()
    again = db.session.scalars(select(Comparison).order_by(Comparison.id)).all()
    assert [(c.redline_html, c.side_by_side_html, c.words_inserted) for c in again] == fresh
