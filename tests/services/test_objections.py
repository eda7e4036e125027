"""Objections: confirmation, references, the window, staff moves, audit, exports and the wiring counts."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import AuditEntry, Delivery, Notice, Objection, ObjectionEvent, OutgoingMail
from registry.services import objections
from registry.services.objections import Closed, ObjectionError, Stale
from tests.factories import announced_change


def submission(change_set, **changes) -> objections.Submission:
    values = {"kind": "objection", "organisation": "Northwind Logistics", "contact_name": "Ada Kowalska",
              "role": "controller", "items": [objections.items_of(change_set)[0][0]],
              "grounds": "Textwave is outside our approved vendor list.", "asks_alternative": True}
    return objections.Submission(**{**values, **changes})


def mails(template: str) -> list[OutgoingMail]:
    return list(db.session.scalars(select(OutgoingMail).where(OutgoingMail.template == template)
                                   .order_by(OutgoingMail.id)))


def confirm_token(mail: OutgoingMail) -> str:
    return mail.context["confirm_url"].rsplit("/", 1)[1]


@pytest.fixture
def change(app):
    return announced_change(now_utc())


def received_objection(change, email: str = "dpo@northwind.example") -> Objection:
    objections.submit_from_form(db.session, change, email, submission(change))
    db.session.commit()
    check = objections.confirm(db.session, confirm_token(mails("objection_confirm")[-1]))
    db.session.commit()
    return check.objection


def test_the_public_form_records_nothing_until_the_address_is_confirmed(change):
    draft = objections.submit_from_form(db.session, change, " DPO@Northwind.example ", submission(change))
    db.session.commit()
    assert draft.status == "draft" and draft.reference is None
    assert draft.email == "dpo@northwind.example"
    assert objections.register(db.session) == []
    (mail,) = mails("objection_confirm")
    assert mail.to == "dpo@northwind.example"
    assert mail.context["confirm_url"].startswith("http://localhost/objections/confirm/")

    check = objections.confirm(db.session, confirm_token(mail))
    db.session.commit()
    assert check.state == "valid"
    objection = db.session.get(Objection, draft.id)
    assert objection.status == "received"
    assert objection.reference == f"OBJ-{now_utc().year}-0001"
    (ack,) = mails("objection_received")
    assert ack.context["reference"] == objection.reference
    assert objections.read_status_token(db.session, ack.context["status_url"].rsplit("/", 1)[1]) == objection
    assert objections.confirm(db.session, confirm_token(mail)).state == "used"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.object_id == objection.reference))
    assert entry.action == "objection.received"


def test_an_expired_confirmation_link_records_nothing_and_the_draft_goes(change):
    now = now_utc()
    objections.submit_from_form(db.session, change, "dpo@northwind.example", submission(change), now)
    db.session.commit()
    token = confirm_token(mails("objection_confirm")[0])
    later = now + objections.CONFIRM_TTL + timedelta(seconds=1)
    assert objections.confirm(db.session, token, later).state == "expired"
    assert objections.expire_drafts(db.session, later) == 1
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Objection)) == 0
    assert objections.confirm(db.session, token, later).state == "unknown"


def test_a_notice_link_records_the_objection_at_once_under_the_address_mailed(change):
    notice = Notice(change_set_id=change.id, subject="Notice")
    db.session.add(notice)
    db.session.flush()
    delivery = Delivery(notice_id=notice.id, email="legal@orchard.example", status="sent")
    db.session.add(delivery)
    db.session.commit()
    link = objections.read_notice_token(db.session, objections.notice_token(delivery.id))
    assert link.delivery.id == delivery.id and link.change_set.id == change.id
    objection = objections.submit_from_notice(db.session, link, submission(change, kind="approval", items=[],
                                                                           grounds=""))
    db.session.commit()
    assert objection.status == "received" and objection.email == "legal@orchard.example"
    assert objection.source == "email"
    # An approval with nothing ticked approves every item of the change.
    assert objection.items == [key for key, _ in objections.items_of(change)]
    assert not objection.asks_alternative
    assert objections.read_notice_token(db.session, "x" * 38) is None


def test_a_notice_link_of_an_erased_address_does_not_work(change):
    notice = Notice(change_set_id=change.id, subject="Notice")
    db.session.add(notice)
    db.session.flush()
    delivery = Delivery(notice_id=notice.id, email="erased:abc:7", status="sent")
    db.session.add(delivery)
    db.session.commit()
    assert objections.read_notice_token(db.session, objections.notice_token(delivery.id)) is None


@pytest.mark.parametrize(("changes", "field"), [
    ({"grounds": "  "}, "grounds"),
    ({"grounds": "x" * 5001}, "grounds"),
    ({"items": []}, "items"),
    ({"items": ["subprocessor:999999"]}, "items"),
    ({"role": "owner"}, "role"),
    ({"kind": "maybe"}, "kind"),
])
def test_bad_submissions_are_refused_with_their_field(change, changes, field):
    with pytest.raises(ObjectionError) as refused:
        objections.submit_from_form(db.session, change, "dpo@northwind.example",
                                    submission(change, **changes))
    assert refused.value.field == field
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Objection)) == 0


def test_after_the_deadline_the_form_is_closed_and_says_whom_to_write_to(app):
    change = announced_change(now_utc(), deadline_in_days=-1)
    with pytest.raises(Closed) as refused:
        objections.submit_from_form(db.session, change, "dpo@northwind.example", submission(change))
    assert "Objections to this change closed at the end of" in refused.value.message
    assert "UTC" in refused.value.message and "notices@example.com" in refused.value.message
    assert objections.window(change, now_utc()).is_open is False


def test_staff_move_it_to_an_outcome_and_every_step_is_told_and_audited(change, make_user):
    editor = make_user("editor")
    objection = received_objection(change)
    objections.move(db.session, objection, to="acknowledged", version=objection.version, actor=editor)
    objections.add_note(db.session, objection, body="Ask sales about the contract.", actor=editor,
                        is_public=False)
    objections.add_note(db.session, objection, body="We can keep your SMS in the old provider.", actor=editor,
                        is_public=True)
    objections.move(db.session, objection, to="in_discussion", version=objection.version, actor=editor)
    objections.move(db.session, objection, to="resolved", outcome="alternative_offered",
                    version=objection.version, actor=editor, reply="Agreed by phone.")
    db.session.commit()
    assert (objection.status, objection.outcome) == ("resolved", "alternative_offered")
    actions = [e.action for e in objection.events]
    assert actions == ["received", "moved", "note", "reply", "moved", "moved"]
    public = objections.timeline(objection, public=True)
    assert "Ask sales about the contract." not in [e.body for e in public]
    updates = mails("objection_update")
    assert len(updates) == 4  # three moves and the reply; never the internal note
    assert all("Ask sales" not in m.context["reply"] for m in updates)
    audited = list(db.session.scalars(select(AuditEntry.action).where(AuditEntry.object_type == "objection")
                                       .order_by(AuditEntry.id)))
    assert audited == ["objection.received", "objection.acknowledged", "objection.note", "objection.reply",
                       "objection.in_discussion", "objection.resolved"]
    with pytest.raises(ObjectionError, match="cannot become"):
        objections.move(db.session, objection, to="in_discussion", version=objection.version, actor=editor)


def test_a_move_from_a_page_read_before_another_move_is_stale(change, make_user):
    editor = make_user("editor")
    objection = received_objection(change)
    read = objection.version
    objections.move(db.session, objection, to="acknowledged", version=read, actor=editor)
    db.session.commit()
    with pytest.raises(Stale):
        objections.move(db.session, objection, to="in_discussion", version=read, actor=editor)


def run_together(app, steps) -> tuple[list, list[BaseException]]:
    barrier = threading.Barrier(len(steps), timeout=30)
    results, errors = [], []

    def run(step):
        try:
            with app.app_context():
                try:
                    prepared = step("prepare")
                    barrier.wait()
                    results.append(step(prepared))
                    db.session.commit()
                except ObjectionError as error:
                    db.session.rollback()
                    results.append(error)
                finally:
                    db.session.remove()
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(step,)) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results, errors


def test_two_staff_moving_the_same_objection_at_once_do_not_both_win(app, change, make_user):
    editor, approver = make_user("editor"), make_user("approver")
    for _trial in range(10):
        objection_id = received_objection(change).id

        def step_for(user_id, target, outcome=None, objection_id=objection_id):
            def step(prepared):
                if prepared == "prepare":
                    objection = db.session.get(Objection, objection_id)
                    return objection, objection.version
                objection, version = prepared
                objections.move(db.session, objection, to=target, outcome=outcome, version=version,
                                actor=db.session.get(type(editor), user_id))
                return target
            return step

        results, errors = run_together(app, [step_for(editor.id, "in_discussion"),
                                             step_for(approver.id, "resolved", "customer_accepted")])
        assert errors == []
        assert sum(isinstance(r, Stale) for r in results) == 1, results
        db.session.expire_all()
        objection = db.session.get(Objection, objection_id)
        winner = next(r for r in results if isinstance(r, str))
        assert objection.status == winner
        moves = db.session.scalar(select(func.count()).select_from(ObjectionEvent).where(
            ObjectionEvent.objection_id == objection_id, ObjectionEvent.action == "moved"))
        assert moves == 1


def test_two_confirmations_at_once_get_different_references(app, change):
    for _trial in range(10):
        tokens = []
        for number in range(2):
            objections.submit_from_form(db.session, change, f"dpo{number}@northwind.example",
                                        submission(change))
            db.session.commit()
            tokens.append(confirm_token(mails("objection_confirm")[-1]))

        def step_for(token):
            def step(prepared):
                if prepared == "prepare":
                    return token
                return objections.confirm(db.session, token).objection.reference
            return step

        results, errors = run_together(app, [step_for(t) for t in tokens])
        assert errors == []
        assert len(set(results)) == 2 and all(r.startswith("OBJ-") for r in results), results
    numbers = list(db.session.scalars(select(Objection.number).order_by(Objection.number)))
    assert numbers == list(range(1, 21))


def test_open_count_and_unanswered(change, make_user, monkeypatch):
    editor = make_user("editor")
    first = received_objection(change, "a@northwind.example")
    second = received_objection(change, "b@x.example")
    assert objections.open_count(db.session, change) == 2
    objections.move(db.session, second, to="resolved", outcome="customer_accepted", version=second.version,
                    actor=editor)
    db.session.commit()
    assert objections.open_count(db.session, change) == 1
    received = first.received_at
    assert objections.unanswered(db.session, received + timedelta(hours=1)) == []
    assert objections.unanswered(db.session, received + timedelta(days=8)) == [first]
    objections.add_note(db.session, first, body="We are looking into it.", actor=editor, is_public=True,
                        now=received + timedelta(days=7))
    db.session.commit()
    assert objections.unanswered(db.session, received + timedelta(days=8)) == []


def test_approvers_are_mailed_when_one_arrives_and_once_when_it_is_unanswered(change, make_user):
    from registry.services import inbox

    approver = make_user("approver")
    muted = make_user("approver")
    muted.inbox_muted = ["objection_unanswered"]
    db.session.commit()
    objection = received_objection(change)
    arrived = [m for m in mails("approver_inbox") if m.context["kind"] == "objection"]
    assert {m.to for m in arrived} >= {approver.email, muted.email}
    assert objection.reference in arrived[0].context["subject"]
    assert f"/admin/objections/{objection.id}" in arrived[0].context["url"]
    late = objection.received_at + timedelta(days=8)
    reminded = inbox.unanswered_objections(db.session, late)
    assert approver.email in reminded and muted.email not in reminded
    assert inbox.unanswered_objections(db.session, late + timedelta(days=1)) == []  # once
    db.session.commit()
    db.session.refresh(objection)
    assert [e.action for e in objection.events if not e.is_public] == ["reminded"]


def test_exports_list_each_objection_and_never_a_formula(change):
    objection = received_objection(change)
    objection.organisation = "=HYPERLINK(\"http://evil\")"
    db.session.commit()
    rows = objections.export_rows(db.session, change)
    assert rows[0]["reference"] == objection.reference
    assert rows[0]["items"] == ["New sub-processor: Textwave SMS"]
    text = objections.export_csv(rows)
    assert text.splitlines()[0].startswith("reference,kind,status")
    assert "'=HYPERLINK" in text


def test_the_proof_lists_objections_with_their_outcome(change, make_user):
    objection = received_objection(change)
    objections.move(db.session, objection, to="resolved", outcome="change_withdrawn",
                    version=objection.version,
                    actor=make_user("approver"))
    listed = objections.for_proof(db.session, change)
    assert listed == [{"reference": objection.reference, "kind": "objection",
                       "organisation": "Northwind Logistics", "received_at": objection.received_at,
                       "status": "Resolved", "outcome": "Change withdrawn"}]



def test_each_notice_recipient_gets_a_signed_link_to_the_form_with_their_address(change):
    from registry.notify import messages

    notice = Notice(change_set_id=change.id, subject="Notice")
    db.session.add(notice)
    db.session.flush()
    delivery = Delivery(notice_id=notice.id, email="legal@orchard.example", status="queued")
    db.session.add(delivery)
    db.session.commit()
    (recipient,) = messages.recipients([(delivery.id, delivery.email, 0, None)])
    link = recipient.substitutions[messages.OBJECTION_KEY]
    assert link.startswith("http://localhost/objections/from-notice/")
    read = objections.read_notice_token(db.session, link.rsplit("/", 1)[1])
    assert (read.delivery.email, read.change_set.id) == ("legal@orchard.example", change.id)
