"""Issue 9 item 2: approving and editing the same change set at once never leaves it approved with the
edited content. Two threads, each with its own session and connection, released together by a barrier."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from registry.extensions import db
from registry.models import ChangeSet, ChangeStatus, Document, DocumentVersion, NoticePolicy, User
from registry.services import workflow
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
