"""Issue 9 item 2: approving and editing the same change set at once never leaves it approved with the
edited content; two schedules of one document at once never cross. Two threads, each with its own
session and connection, released together by a barrier."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from registry.extensions import db
from registry.models import ChangeSet, ChangeStatus, Document, DocumentVersion, NoticePolicy, User
from registry.services import reading, workflow
from registry.services.workflow import WorkflowError

TRIALS = 25
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
ORIGINAL, EDITED = "# Terms\n\nAs reviewed.", "# Terms\n\nEdited while the approver approved."


def in_review(editor) -> tuple[int, int]:
    document = db.session.query(Document).one()
    change_set = workflow.create(db.session, title="Race", summary="s", is_material=True, actor=editor,
                                 now=NOW)
    workflow.save_document_version(db.session, change_set, document, source_md=ORIGINAL, summary="s",
                                   is_material=True, actor=editor, now=NOW)
    workflow.submit(db.session, change_set, actor=editor, now=NOW)
    db.session.commit()
    return change_set.id, document.id


def race(app, change_set_id: int, document_id: int, editor_id: int, approver_id: int) -> list[BaseException]:
    barrier = threading.Barrier(2, timeout=30)
    errors: list[BaseException] = []

    def run(step) -> None:
        try:
            with app.app_context():
                change_set = db.session.get(ChangeSet, change_set_id)
                # Read everything the step checks (status, authors, items) before the other one writes.
                _ = change_set.status, change_set.events, change_set.document_versions
                barrier.wait()
                try:
                    step(change_set)
                    db.session.commit()
                except WorkflowError:
                    db.session.rollback()
                finally:
                    db.session.remove()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    def approve(change_set):
        workflow.approve(db.session, change_set, actor=db.session.get(User, approver_id), now=NOW)

    def edit(change_set):
        workflow.save_document_version(db.session, change_set, db.session.get(Document, document_id),
                                       source_md=EDITED, summary="s", is_material=True,
                                       actor=db.session.get(User, editor_id), now=NOW)

    threads = [threading.Thread(target=run, args=(step,)) for step in (approve, edit)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_approve_and_edit_at_once_never_end_approved_with_the_edit(app, make_user):
    editor, approver = make_user("editor"), make_user("approver")
    policy = NoticePolicy(key="terms", name="Terms", length=3, unit="business_days", calendars=["PL"],
                          timezone="Europe/Warsaw", objection_days=None)
    db.session.add(Document(slug="terms", title="Terms", notice_policy=policy))
    db.session.commit()
    for _trial in range(TRIALS):
        change_set_id, document_id = in_review(editor)
        errors = race(app, change_set_id, document_id, editor.id, approver.id)
        assert errors == []
        db.session.expire_all()
        change_set = db.session.get(ChangeSet, change_set_id)
        source = db.session.query(DocumentVersion).filter_by(change_set_id=change_set_id).one().source_md
        # Either the approval came first and the edit was refused, or the edit came first (back to
        # draft) and the approval was refused; never an approval of text the approver did not read.
        assert (change_set.status, source) in [(ChangeStatus.APPROVED, ORIGINAL),
                                               (ChangeStatus.DRAFT, EDITED)]


def test_two_schedules_of_one_document_at_once_never_cross(app, make_user):
    """Two approvers schedule new versions of one document at the same moment, the later-numbered one
    possibly earlier: whichever goes second sees the first, so the versions never take effect out of order
    (and neither fails with a duplicate version number)."""
    editor, approver = make_user("editor"), make_user("approver")
    policy = NoticePolicy(key="terms", name="Terms", length=3, unit="business_days", calendars=["PL"],
                          timezone="Europe/Warsaw", objection_days=None)
    document = Document(slug="terms", title="Terms", notice_policy=policy)
    db.session.add(document)
    db.session.commit()
    for _trial in range(10):
        ids = []
        for _change in range(2):
            change_set_id, _document_id = in_review(editor)
            workflow.approve(db.session, db.session.get(ChangeSet, change_set_id), actor=approver, now=NOW)
            ids.append(change_set_id)
        db.session.commit()
        earliest = workflow.earliest_allowed(db.session, db.session.get(ChangeSet, ids[0]), NOW)
        barrier = threading.Barrier(2, timeout=30)
        errors: list[BaseException] = []

        def run(change_set_id: int, days: int, barrier=barrier, errors=errors, earliest=earliest) -> None:
            try:
                with app.app_context():
                    change_set = db.session.get(ChangeSet, change_set_id)
                    actor = db.session.get(User, approver.id)
                    _ = change_set.status, change_set.events, change_set.document_versions
                    barrier.wait()
                    try:
                        workflow.schedule(db.session, change_set, actor=actor, now=NOW,
                                          legal_timezone="Europe/Warsaw",
                                          effective_at=earliest + timedelta(days=days))
                        db.session.commit()
                    except WorkflowError:
                        db.session.rollback()
                    finally:
                        db.session.remove()
            except BaseException as error:  # reported by the test, not lost in the thread
                errors.append(error)

        threads = [threading.Thread(target=run, args=args) for args in ((ids[0], 10), (ids[1], 1))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert errors == []
        db.session.expire_all()
        public = [(v.number, v.effective_at) for v in reading.versions(db.session, document)]
        assert public, "one of the two must have been scheduled"
        assert [at for _n, at in public] == sorted(at for _n, at in public)
        assert len({at for _n, at in public}) == len(public)
        for change_set_id in ids:  # the next trial starts from no pending version
            change_set = db.session.get(ChangeSet, change_set_id)
            if change_set.published_at is None:
                change_set.status = ChangeStatus.WITHDRAWN
        for change_set in sorted((db.session.get(ChangeSet, i) for i in ids),
                                 key=lambda c: c.document_versions[0].number or 0, reverse=True):
            if change_set.published_at is not None and change_set.status != ChangeStatus.WITHDRAWN:
                workflow.withdraw(db.session, change_set, actor=approver, note="Raced", now=NOW)
        db.session.commit()
