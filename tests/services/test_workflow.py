"""The staff workflow: every transition, four eyes, the enforced notice period, withdraw, tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import (
    AuditEntry,
    ChangeSet,
    ChangeSetEvent,
    ChangeStatus,
    Delivery,
    Document,
    DocumentVersion,
    Notice,
    NoticePolicy,
    OutgoingMail,
    SubProcessor,
    SubProcessorRecord,
    Subscriber,
    Topic,
)
from registry.services import publishing, reading, workflow
from registry.services.workflow import WorkflowError

WARSAW = ZoneInfo("Europe/Warsaw")
# Friday 2026-12-18 16:00 in Warsaw: the first worked example.
NOW = datetime(2026, 12, 18, 15, 0, tzinfo=UTC)
PRIVACY_EARLIEST = datetime(2026, 12, 24, 0, 0, tzinfo=WARSAW)
# The sub-processor list promises 14 calendar days.
SUBPROCESSOR_EARLIEST = datetime(2027, 1, 2, 0, 0, tzinfo=WARSAW)
ACME = dict(name="Acme Hosting", legal_entity="Acme GmbH", address="Street 1, Berlin",
            contact="privacy@acme.example", purpose="Hosting", description="Runs servers",
            data_categories=["Account data"], countries=["DE"], transfer_mechanism="Within the EEA",
            website="https://acme.example", feature=None)


def build_registry(session, now: datetime = NOW) -> dict:
    """A privacy policy with one public version, one public sub-processor, a topic and a subscriber."""
    privacy = NoticePolicy(key="privacy-policy", name="Privacy Policy", length=3, unit="business_days",
                           calendars=["PL"], timezone="Europe/Warsaw", objection_days=None)
    lists = NoticePolicy(key="subprocessors", name="Sub-processor list", length=14, unit="calendar_days",
                         calendars=["PL"], timezone="Europe/Warsaw", objection_days=14)
    document = Document(slug="privacy-policy", title="Privacy Policy", notice_policy=privacy)
    session.add_all([privacy, lists, document,
                     Topic(key="administrative", name="Administrative", is_administrative=True),
                     Subscriber(email="customer@example.com", status="confirmed", confirmed_at=now)])
    session.flush()
    first = publishing.create_change_set(session, title="First versions")
    publishing.draft_document_version(session, first, document, summary="First", is_material=True,
                                      source_md="# Privacy\n\nWe collect your name.")
    publishing.draft_subprocessor_change(session, first, "acme", "add",
                                         fields={k: v for k, v in ACME.items()}, summary="Added")
    past = now - timedelta(days=60)
    publishing.publish(session, first, published_at=past, notice_completed_at=past,
                       effective_at=past + timedelta(days=20), now=now)
    session.commit()
    return {"document": document, "first": first}


@pytest.fixture
def world(app):
    return build_registry(db.session)


@pytest.fixture
def people(make_user):
    return {"editor": make_user("editor"), "approver": make_user("approver"),
            "second": make_user("approver")}


def drafted(people, world, *, material=True, subprocessor=False) -> ChangeSet:
    change_set = workflow.create(db.session, title="December update", summary="What changes",
                                 is_material=material, actor=people["editor"], now=NOW)
    workflow.save_document_version(db.session, change_set, world["document"],
                                   source_md="# Privacy\n\nWe collect your name and email.",
                                   summary="Email added", is_material=material, actor=people["editor"],
                                   now=NOW)
    if subprocessor:
        workflow.save_subprocessor_change(db.session, change_set, "newco", "add",
                                          fields={**ACME, "name": "NewCo"}, summary="New",
                                          actor=people["editor"], now=NOW)
    return change_set


def approved(people, world, **kwargs) -> ChangeSet:
    change_set = drafted(people, world, **kwargs)
    workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)
    workflow.approve(db.session, change_set, actor=people["approver"], now=NOW)
    return change_set


def schedule(change_set, actor, effective_at, **kwargs):
    return workflow.schedule(db.session, change_set, effective_at=effective_at, actor=actor,
                             legal_timezone="Europe/Warsaw", now=NOW, **kwargs)


def transitions(change_set) -> list[tuple[str, str | None, str | None, str]]:
    return [(e.action, e.from_status, e.to_status, e.actor) for e in change_set.events]


def test_every_transition_is_recorded_with_who_and_when(world, people):
    editor, approver = people["editor"], people["approver"]
    change_set = approved(people, world)
    schedule(change_set, approver, PRIVACY_EARLIEST)

    assert change_set.status == ChangeStatus.SCHEDULED
    assert [(a, f, t) for a, f, t, _ in transitions(change_set)] == [
        ("created", None, None),
        ("edited", None, None),
        ("submitted", "draft", "in_review"),
        ("approved", "in_review", "approved"),
        ("scheduled", "approved", "scheduled"),
    ]
    assert [actor for *_, actor in transitions(change_set)] == [editor.email] * 3 + [approver.email] * 2
    assert all(e.at == NOW for e in change_set.events)
    actions = db.session.scalars(select(AuditEntry.action).where(
        AuditEntry.object_type == "change_set", AuditEntry.object_id == str(change_set.id))
        .order_by(AuditEntry.id)).all()
    assert actions == ["change_set.created", "change_set.edited", "change_set.submitted",
                       "change_set.approved", "change_set.publish", "change_set.scheduled"]


def test_scheduling_publishes_and_writes_the_notice_outbox(world, people):
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)

    assert change_set.published_at == NOW and change_set.notice_completed_at is None
    assert change_set.effective_at == PRIVACY_EARLIEST == change_set.planned_effective_at
    assert change_set.document_versions[0].number == 2
    notice = db.session.scalar(select(Notice).where(Notice.change_set_id == change_set.id))
    deliveries = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)).all()
    assert [d.email for d in deliveries] == ["customer@example.com"]
    # Public at once as upcoming, never in force while the notice is still being sent.
    assert change_set in reading.upcoming_change_sets(db.session, NOW)
    assert reading.effective_moment(change_set, NOW) == PRIVACY_EARLIEST
    assert reading.effective_moment(change_set, PRIVACY_EARLIEST) == reading.NOT_YET


def test_schedule_refuses_one_second_before_the_earliest_and_names_it(world, people):
    change_set = approved(people, world)
    with pytest.raises(WorkflowError) as refused:
        schedule(change_set, people["approver"], PRIVACY_EARLIEST - timedelta(seconds=1))
    message = str(refused.value)
    assert "24 December 2026, 00:00 CET (Europe/Warsaw)" in message
    assert "2026-12-23 23:00 UTC" in message
    assert "(set by Privacy Policy: Privacy Policy (new version))" in message
    assert refused.value.field == "effective_at"
    assert change_set.status == ChangeStatus.APPROVED and change_set.published_at is None

    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    assert change_set.status == ChangeStatus.SCHEDULED


def test_the_longest_governing_notice_period_wins(world, people):
    change_set = approved(people, world, subprocessor=True)
    assert workflow.earliest_allowed(db.session, change_set, NOW) == SUBPROCESSOR_EARLIEST
    earliest = workflow.outlook(db.session, change_set, NOW).earliest
    assert (earliest.policy, earliest.items) == ("Sub-processor list", ("sub-processor NewCo (added)",))
    with pytest.raises(WorkflowError, match="2 January 2027, 00:00 CET"):
        schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    schedule(change_set, people["approver"], SUBPROCESSOR_EARLIEST)
    assert change_set.effective_at == SUBPROCESSOR_EARLIEST


def test_a_non_material_change_may_take_effect_at_once(world, people):
    change_set = approved(people, world, material=False)
    assert workflow.earliest_allowed(db.session, change_set, NOW) == NOW
    with pytest.raises(WorkflowError, match="too early"):
        schedule(change_set, people["approver"], NOW - timedelta(seconds=1))
    schedule(change_set, people["approver"], NOW)
    assert change_set.effective_at == NOW
    assert reading.effective_moment(change_set) == NOW


@pytest.mark.parametrize("offset, ok", [
    (timedelta(0), True),
    (timedelta(days=2), True),
    (PRIVACY_EARLIEST - NOW, True),
    (-timedelta(seconds=1), False),
    (PRIVACY_EARLIEST - NOW + timedelta(seconds=1), False),
])
def test_the_date_for_new_customers_lies_between_now_and_the_effective_date(world, people, offset, ok):
    change_set = approved(people, world)
    if ok:
        schedule(change_set, people["approver"], PRIVACY_EARLIEST, effective_new_customers_at=NOW + offset)
        assert change_set.effective_new_customers_at == NOW + offset
    else:
        with pytest.raises(WorkflowError,
                           match="new customers must lie between now and the effective") as refused:
            schedule(change_set, people["approver"], PRIVACY_EARLIEST,
                     effective_new_customers_at=NOW + offset)
        assert refused.value.field == "effective_new_customers_at"
        assert change_set.published_at is None


def test_four_eyes_refuses_the_creator(world, people, make_user):
    # An approver who drafts their own change set can neither approve nor schedule it.
    approver = people["approver"]
    change_set = workflow.create(db.session, title="Mine", summary="", is_material=True, actor=approver,
                                 now=NOW)
    workflow.save_document_version(db.session, change_set, world["document"], source_md="# New",
                                   summary="s", is_material=True, actor=approver, now=NOW)
    workflow.submit(db.session, change_set, actor=approver, now=NOW)
    with pytest.raises(WorkflowError, match="four-eyes"):
        workflow.approve(db.session, change_set, actor=approver, now=NOW)
    assert change_set.status == ChangeStatus.IN_REVIEW
    workflow.approve(db.session, change_set, actor=people["second"], now=NOW)
    with pytest.raises(WorkflowError, match="cannot schedule it"):
        schedule(change_set, approver, PRIVACY_EARLIEST)
    schedule(change_set, people["second"], PRIVACY_EARLIEST)


def test_four_eyes_refuses_an_approver_who_edited(world, people):
    change_set = drafted(people, world)
    workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)
    # The approver fixes a typo while reviewing: the change set goes back to draft, and they are an author.
    workflow.save_document_version(db.session, change_set, world["document"], source_md="# Privacy (fixed)",
                                   summary="Typo", is_material=True, actor=people["approver"], now=NOW)
    assert change_set.status == ChangeStatus.DRAFT
    assert "sent back to draft" in change_set.events[-1].note
    workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)
    with pytest.raises(WorkflowError, match="You created or edited this change set"):
        workflow.approve(db.session, change_set, actor=people["approver"], now=NOW)
    workflow.approve(db.session, change_set, actor=people["second"], now=NOW)
    assert change_set.status == ChangeStatus.APPROVED


def test_editing_an_approved_change_set_needs_a_new_approval(world, people):
    change_set = approved(people, world)
    workflow.edit_details(db.session, change_set, title="Renamed", summary="s", is_material=True,
                          actor=people["editor"], now=NOW)
    assert change_set.status == ChangeStatus.DRAFT
    with pytest.raises(WorkflowError, match="Only a change set that is approved can be scheduled"):
        schedule(change_set, people["approver"], PRIVACY_EARLIEST)


def test_one_version_per_document_per_change_set(world, people):
    change_set = drafted(people, world)
    workflow.save_document_version(db.session, change_set, world["document"], source_md="# Second draft",
                                   summary="Again", is_material=True, actor=people["editor"], now=NOW)
    versions = db.session.scalars(select(DocumentVersion).where(
        DocumentVersion.change_set_id == change_set.id)).all()
    assert [v.source_md for v in versions] == ["# Second draft"]


def test_subprocessor_add_edit_and_remove_in_a_draft(world, people):
    editor = people["editor"]
    change_set = drafted(people, world, subprocessor=True)
    workflow.save_subprocessor_change(db.session, change_set, "newco", "change",
                                      fields={**ACME, "name": "NewCo Ltd"}, summary="Renamed",
                                      actor=editor, now=NOW)
    records = change_set.subprocessor_records
    assert [(r.action, r.name) for r in records] == [("add", "NewCo Ltd")]
    workflow.save_subprocessor_change(db.session, change_set, "acme", "remove", fields=dict(ACME),
                                      summary="Ended", actor=editor, now=NOW)
    assert sorted((r.subprocessor.slug, r.action) for r in change_set.subprocessor_records) == [
        ("acme", "remove"), ("newco", "add")]
    # Removing what this draft adds drops the addition and frees the slug.
    workflow.save_subprocessor_change(db.session, change_set, "newco", "remove", fields={}, summary="",
                                      actor=editor, now=NOW)
    assert [r.subprocessor.slug for r in change_set.subprocessor_records] == ["acme"]
    assert db.session.scalar(select(SubProcessor).where(SubProcessor.slug == "newco")) is None


def test_another_open_change_set_blocks_a_second_change_to_the_same_subprocessor(world, people):
    first = drafted(people, world)
    workflow.save_subprocessor_change(db.session, first, "acme", "change", fields={**ACME, "name": "A2"},
                                      summary="", actor=people["editor"], now=NOW)
    second = drafted(people, world)
    with pytest.raises(WorkflowError, match=f"Change set #{first.id} .* already changes 'acme'"):
        workflow.save_subprocessor_change(db.session, second, "acme", "remove", fields=dict(ACME),
                                          summary="", actor=people["editor"], now=NOW)


def test_unknown_and_duplicate_subprocessors_are_refused(world, people):
    change_set = drafted(people, world)
    with pytest.raises(WorkflowError, match="already exists"):
        workflow.save_subprocessor_change(db.session, change_set, "acme", "add", fields=dict(ACME),
                                          summary="", actor=people["editor"], now=NOW)
    with pytest.raises(WorkflowError, match="there is no sub-processor 'ghost'"):
        workflow.save_subprocessor_change(db.session, change_set, "ghost", "change", fields=dict(ACME),
                                          summary="", actor=people["editor"], now=NOW)


def test_discard_an_item(world, people):
    change_set = drafted(people, world, subprocessor=True)
    version, record = change_set.document_versions[0], change_set.subprocessor_records[0]
    workflow.discard_item(db.session, change_set, version_id=version.id, actor=people["editor"], now=NOW)
    workflow.discard_item(db.session, change_set, record_id=record.id, actor=people["editor"], now=NOW)
    assert change_set.document_versions == [] and change_set.subprocessor_records == []
    with pytest.raises(WorkflowError, match="not part of this change set"):
        workflow.discard_item(db.session, change_set, version_id=version.id, actor=people["editor"], now=NOW)
    with pytest.raises(WorkflowError, match="Add a document version or a sub-processor change"):
        workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)


def test_return_to_draft_with_a_note(world, people):
    change_set = drafted(people, world)
    workflow.submit(db.session, change_set, actor=people["editor"], now=NOW)
    workflow.return_to_draft(db.session, change_set, actor=people["approver"], note="Cite the article",
                             now=NOW)
    assert change_set.status == ChangeStatus.DRAFT
    assert transitions(change_set)[-1] == ("returned", "in_review", "draft", people["approver"].email)
    assert change_set.events[-1].note == "Cite the article"
    with pytest.raises(WorkflowError, match="in review or approved"):
        workflow.return_to_draft(db.session, change_set, actor=people["approver"], now=NOW)


@pytest.mark.parametrize("step", ["submit", "approve"])
def test_steps_out_of_order_are_refused(world, people, step):
    change_set = approved(people, world)
    with pytest.raises(WorkflowError, match="Only a change set that is"):
        getattr(workflow, step)(db.session, change_set, actor=people["second"], now=NOW)


def test_a_scheduled_change_set_can_no_longer_be_edited(world, people):
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    with pytest.raises(WorkflowError, match="can be edited; this one is scheduled"):
        workflow.save_document_version(db.session, change_set, world["document"], source_md="x",
                                       summary="", is_material=True, actor=people["editor"], now=NOW)


def test_withdraw_a_scheduled_change_set_removes_it_from_public_pages(world, people):
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    assert change_set in reading.upcoming_change_sets(db.session, NOW)

    workflow.withdraw(db.session, change_set, actor=people["approver"], note="Legal review", now=NOW)
    assert change_set.status == ChangeStatus.WITHDRAWN and change_set.withdrawn_at == NOW
    assert change_set not in reading.upcoming_change_sets(db.session, NOW)
    assert [v.number for v in reading.versions(db.session, world["document"])] == [1]
    with pytest.raises(WorkflowError, match="cannot be withdrawn"):
        workflow.withdraw(db.session, change_set, actor=people["approver"], note="No longer needed", now=NOW)


def test_an_effective_change_set_cannot_be_withdrawn(world, people):
    with pytest.raises(WorkflowError, match="cannot be withdrawn"):
        workflow.withdraw(db.session, world["first"], actor=people["approver"],
                          note="No longer needed", now=NOW)
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    publishing.complete_notice(db.session, change_set, completed_at=NOW, now=NOW)
    assert change_set.status == ChangeStatus.IN_NOTICE  # the tick has not run yet, but it is in force
    with pytest.raises(WorkflowError, match="already taken effect"):
        workflow.withdraw(db.session, change_set, actor=people["approver"],
                          note="No longer needed", now=PRIVACY_EARLIEST)
    workflow.withdraw(db.session, change_set, actor=people["approver"],
                      note="No longer needed", now=PRIVACY_EARLIEST - timedelta(seconds=1))


def test_a_non_material_change_with_nobody_to_notify_is_effective_at_once(world, people):
    change_set = approved(people, world, material=False)
    schedule(change_set, people["approver"], NOW)
    assert change_set.status == ChangeStatus.EFFECTIVE
    assert [(a, f, t) for a, f, t, _ in transitions(change_set)][-2:] == [
        ("scheduled", "approved", "scheduled"), ("notice_completed", "scheduled", "effective")]


@pytest.mark.parametrize("body, message", [
    ("", "cannot be empty"), ("   ", "cannot be empty"), ("a\x00b", "NUL"), ("x" * 10_001, "at most"),
])
def test_comments_are_validated(world, people, body, message):
    change_set = drafted(people, world)
    with pytest.raises(WorkflowError, match=message):
        workflow.comment(db.session, change_set, body=body, actor=people["editor"], now=NOW)
    assert change_set.comments == []


def test_comments_are_kept_in_order(world, people):
    change_set = drafted(people, world)
    workflow.comment(db.session, change_set, body="Please check §3", actor=people["approver"], now=NOW)
    workflow.comment(db.session, change_set, body=" Done ", actor=people["editor"], now=NOW)
    assert [c.body for c in change_set.comments] == ["Please check §3", "Done"]


def test_complete_notice_late_moves_the_date_and_tells_approvers(world, people):
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    late = datetime(2026, 12, 22, 9, 0, tzinfo=UTC)  # Tuesday: counting starts on Wednesday

    publishing.complete_notice(db.session, change_set, completed_at=late, now=late)

    moved_to = datetime(2026, 12, 30, 0, 0, tzinfo=WARSAW)  # 23, 28, 29 Dec (24-27 are holidays/weekend)
    assert change_set.effective_at == moved_to
    assert change_set.planned_effective_at == PRIVACY_EARLIEST
    assert change_set.effective_moved_at == late
    assert change_set.status == ChangeStatus.IN_NOTICE
    moved = [e for e in change_set.events if e.action == "effective_moved"]
    assert len(moved) == 1 and "notice completed later than planned" in moved[0].note
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "change_set.effective_moved"))
    assert entry.before == {"effective_at": PRIVACY_EARLIEST.isoformat()}
    assert entry.after["effective_at"] == moved_to.isoformat()
    mails = db.session.scalars(select(OutgoingMail)
                               .where(OutgoingMail.template == "effective_date_moved")).all()
    assert sorted(m.to for m in mails) == sorted([people["approver"].email, people["second"].email])
    assert mails[0].context["change_set_id"] == change_set.id


def test_complete_notice_on_time_keeps_the_date(world, people):
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    publishing.complete_notice(db.session, change_set, completed_at=NOW + timedelta(minutes=5), now=NOW)
    assert change_set.effective_at == PRIVACY_EARLIEST and change_set.effective_moved_at is None


def test_tick_postpones_overdue_notices_and_records_effective_changes(world, people):
    late_one = approved(people, world)
    schedule(late_one, people["approver"], PRIVACY_EARLIEST)
    # Monday: the notice is still going out, so Thursday can no longer be met.
    monday = datetime(2026, 12, 21, 8, 0, tzinfo=UTC)
    result = workflow.tick(db.session, monday)
    assert result.postponed == [late_one] and result.effective == []
    assert late_one.effective_at > PRIVACY_EARLIEST
    assert any("postponed change set" in line for line in result.lines())

    publishing.complete_notice(db.session, late_one, completed_at=monday, now=monday)
    later = late_one.effective_at + timedelta(seconds=1)
    result = workflow.tick(db.session, later)
    assert result.effective == [late_one] and late_one.status == ChangeStatus.EFFECTIVE
    assert result.lines() == [f"change set {late_one.id} ({late_one.title}) is now effective"]
    assert workflow.tick(db.session, later).lines() == []
    assert db.session.scalar(select(func.count()).select_from(ChangeSetEvent).where(
        ChangeSetEvent.change_set_id == late_one.id, ChangeSetEvent.to_status == "effective")) == 1


def test_nothing_in_the_workflow_commits(world, people):
    change_set = drafted(people, world, subprocessor=True)
    db.session.rollback()
    assert db.session.get(ChangeSet, change_set.id) is None
    assert db.session.scalar(select(func.count()).select_from(SubProcessorRecord)) == 1


def test_withdrawing_during_dispatch_stops_the_unsent_notices(world, people):
    db.session.add_all(Subscriber(email=f"c{i}@example.com", status="confirmed") for i in range(3))
    db.session.flush()
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    deliveries = list(db.session.scalars(select(Delivery)))
    assert len(deliveries) >= 3 and {d.status for d in deliveries} == {"queued"}
    deliveries[0].status = "sent"  # the worker already sent one when the change was withdrawn
    workflow.withdraw(db.session, change_set, actor=people["approver"], note="No longer needed", now=NOW)
    db.session.expire_all()
    announcement = select(Delivery).where(Delivery.notice_id == deliveries[0].notice_id)
    statuses = sorted(d.status for d in db.session.scalars(announcement))
    assert statuses == ["failed"] * (len(deliveries) - 1) + ["sent"]
    assert {d.error for d in db.session.scalars(announcement) if d.status == "failed"} == {
        "not sent: the change was withdrawn"}
    # Every delivery is accounted for, but a withdrawn change never starts its notice period.
    assert change_set.status == ChangeStatus.WITHDRAWN and change_set.notice_completed_at is None
    # The one recipient who was told of the change is told of its withdrawal; nobody else is.
    [withdrawal] = db.session.scalars(select(Notice).where(Notice.kind == "withdrawal"))
    assert withdrawal.subject == f"Withdrawn: {change_set.title}"
    told = db.session.scalars(select(Delivery).where(Delivery.notice_id == withdrawal.id)).all()
    assert [(d.email, d.status) for d in told] == [(deliveries[0].email, "queued")]


def test_withdrawing_before_anything_was_sent_tells_nobody(world, people):
    db.session.add(Subscriber(email="c@example.com", status="confirmed"))
    change_set = approved(people, world)
    schedule(change_set, people["approver"], PRIVACY_EARLIEST)
    workflow.withdraw(db.session, change_set, actor=people["approver"], note="No longer needed", now=NOW)
    assert not db.session.scalars(select(Notice).where(Notice.kind == "withdrawal")).all()
