"""Issue 8 §1 and §2 as service tests on the demo: versions take effect in order, materiality cannot be
lowered, and what customers are shown for a scheduled version compares it with its predecessor in force."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import (
    AuditEntry,
    ChangeSet,
    ChangeSetEvent,
    ChangeStatus,
    Delivery,
    Notice,
    Topic,
)
from registry.notify import messages
from registry.services import demo, publishing, reading, workflow
from registry.services.workflow import WorkflowError
from tests import factories

WARSAW = ZoneInfo("Europe/Warsaw")
# Tuesday 1 December 2026, 11:00 in Warsaw: no Polish holiday within three business days.
NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
TZ = "Europe/Warsaw"


@pytest.fixture
def world(app, make_user):
    demo.load(db.session, NOW)
    factories.without_organisations()  # version order under the notice policies alone
    privacy = reading.document(db.session, "privacy-policy")
    v4 = reading.versions(db.session, privacy)[-1]
    return {"privacy": privacy, "terms": reading.document(db.session, "terms"), "v4": v4,
            "editor": make_user("editor"), "approver": make_user("approver")}


def approved_version(world, document, source: str, *, title: str, material: bool = True):
    editor, approver = world["editor"], world["approver"]
    change_set = workflow.create(db.session, title=title, summary="Why", is_material=material, actor=editor,
                                 now=NOW)
    workflow.save_document_version(db.session, change_set, document, source_md=source, summary=title,
                                   is_material=material, actor=editor, now=NOW)
    workflow.submit(db.session, change_set, actor=editor, now=NOW)
    workflow.approve(db.session, change_set, actor=approver, now=NOW)
    db.session.commit()  # so that a refused step can roll back to it
    return change_set


def schedule(world, change_set, effective_at, **kwargs):
    return workflow.schedule(db.session, change_set, effective_at=effective_at, actor=world["approver"],
                             legal_timezone=TZ, now=NOW, **kwargs)


def notice_done(change_set):
    """The worker sent every delivery of the announcement, and the notice completed."""
    announced = select(Notice.id).where(Notice.change_set_id == change_set.id)
    for delivery in db.session.scalars(select(Delivery).where(Delivery.notice_id.in_(announced))):
        delivery.status = "sent"
    publishing.complete_notice(db.session, change_set, completed_at=NOW + timedelta(minutes=5), now=NOW)


def in_force_over(document, start: datetime, days: int) -> list[int]:
    """The number of the version in force at every hour from `start`, with the clock moved forward."""
    versions = reading.versions(db.session, document)
    return [reading.current_version(versions, start + timedelta(hours=h)).number for h in range(days * 24)]


def distinct(numbers: list[int]) -> list[int]:
    return [n for i, n in enumerate(numbers) if i == 0 or numbers[i - 1] != n]


@pytest.fixture
def v5(world):
    """v5 in its own change set, effective two days after v4, its notice given."""
    text = world["v4"].version.source_md + "\n\nVersion five adds this paragraph."
    change_set = approved_version(world, world["privacy"], text, title="Privacy v5")
    schedule(world, change_set, world["v4"].effective_at + timedelta(days=2))
    notice_done(change_set)
    db.session.commit()
    return change_set


def v6_draft(world, v5):
    text = v5.document_versions[0].source_md + "\n\nVersion six edits v5."
    return approved_version(world, world["privacy"], text, title="Privacy v6")


def test_the_reproduction_is_refused_naming_the_pending_versions(world, v5):
    v6 = v6_draft(world, v5)
    earliest = workflow.earliest_allowed(db.session, v6, NOW)
    assert earliest < world["v4"].effective_at  # the earliest date the form offers is before both

    with pytest.raises(WorkflowError) as refused:
        schedule(world, v6, earliest)

    message = str(refused.value)
    assert refused.value.field == "effective_at"
    assert f"change set #{world['v4'].change_set.id}" in message and "version 4 of Privacy Policy" in message
    assert f"change set #{v5.id}" in message and "version 5 of Privacy Policy" in message
    db.session.rollback()
    assert [v.number for v in reading.versions(db.session, world["privacy"])] == [1, 2, 3, 4, 5]


def test_versions_scheduled_in_order_take_effect_in_order(world, v5):
    v6 = v6_draft(world, v5)
    with pytest.raises(WorkflowError, match=f"change set #{v5.id}"):
        schedule(world, v6, v5.effective_at)  # the same instant is no order either
    db.session.rollback()
    schedule(world, v6, v5.effective_at + timedelta(days=1))
    notice_done(v6)

    assert distinct(in_force_over(world["privacy"], NOW, 20)) == [3, 4, 5, 6]
    six = v6.document_versions[0]
    assert reading.predecessor(db.session, six).number == 5


def test_supersede_withdraws_the_overtaken_change_and_compares_with_the_version_in_force(world, v5):
    v6 = v6_draft(world, v5)
    date = world["v4"].effective_at + timedelta(days=1)  # after v4, before v5
    schedule(world, v6, date, supersede=[v5.id])
    notice_done(v6)

    assert v5.status == ChangeStatus.WITHDRAWN
    withdrawn = [e for e in v5.events if e.action == "withdrawn"]
    assert [e.note for e in withdrawn] == [f"superseded by change set #{v6.id}"]
    # Everyone told of v5 is told of its withdrawal, through the ordinary withdrawal notice.
    assert db.session.scalar(select(Notice).where(Notice.change_set_id == v5.id, Notice.kind == "withdrawal"))
    six = v6.document_versions[0]
    assert six.number == 6
    assert reading.predecessor(db.session, six).number == 4
    assert reading.comparison(db.session, world["v4"].version, six) is not None
    assert distinct(in_force_over(world["privacy"], NOW, 20)) == [3, 4, 6]
    assert [e.note.split("; ")[-1] for e in v6.events if e.action == "scheduled"] == [
        f"supersedes change set #{v5.id}"]
    # The notice email links the redline against v4 and says so.
    notice = db.session.scalar(select(Notice).where(Notice.change_set_id == v6.id,
                                                    Notice.kind == "announcement"))
    context = messages.notice_context(db.session, notice)
    assert context["documents"][0]["previous"] == 4
    assert any("from=4" in url and "to=6" in url for url in [d["url"] for d in context["documents"]])


def test_supersede_must_cover_every_overtaken_change(world, v5):
    v6 = v6_draft(world, v5)
    with pytest.raises(WorkflowError, match=f"change set #{world['v4'].change_set.id}"):
        schedule(world, v6, workflow.earliest_allowed(db.session, v6, NOW), supersede=[v5.id])
    db.session.rollback()
    assert db.session.get(type(v5), v5.id).status == ChangeStatus.IN_NOTICE


def test_superseding_both_goes_back_to_the_version_in_force(world, v5):
    v6 = v6_draft(world, v5)
    v4_set = world["v4"].change_set
    schedule(world, v6, workflow.earliest_allowed(db.session, v6, NOW), supersede=[v4_set.id, v5.id])
    assert v4_set.status == v5.status == ChangeStatus.WITHDRAWN
    assert reading.predecessor(db.session, v6.document_versions[0]).number == 3


def test_a_change_that_a_newer_one_was_announced_against_cannot_be_withdrawn_first(world, v5):
    v4_set = world["v4"].change_set
    with pytest.raises(WorkflowError,
                       match=f"Change set #{v5.id} .*version 5 of Privacy Policy.*withdraw it first"):
        workflow.withdraw(db.session, v4_set, actor=world["approver"], note="No longer needed", now=NOW)
    db.session.rollback()
    workflow.withdraw(db.session, db.session.get(type(v5), v5.id), actor=world["approver"],
                      note="No longer needed", now=NOW)
    workflow.withdraw(db.session, db.session.get(type(v4_set), v4_set.id), actor=world["approver"],
                      note="No longer needed", now=NOW)


def test_a_late_notice_moves_the_newer_version_too(world):
    older = approved_version(world, world["terms"], "# Terms\n\nv4", title="Terms v4")
    schedule(world, older, workflow.earliest_allowed(db.session, older, NOW))
    newer = approved_version(world, world["terms"], "# Terms\n\nv4, then typos", title="Terms v5",
                             material=False)
    schedule(world, newer, older.effective_at + timedelta(days=7))
    before_older, before_newer = older.effective_at, newer.effective_at

    late = NOW + timedelta(days=10)
    publishing.complete_notice(db.session, older, completed_at=late, now=late)

    assert older.effective_at > before_older
    assert newer.effective_at == older.effective_at + (before_newer - before_older)
    moved = [e for e in newer.events if e.action == "effective_moved"]
    assert len(moved) == 1 and f"it follows change set #{older.id}" in moved[0].note
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "change_set.effective_moved",
                                                      AuditEntry.object_id == str(newer.id)))


def test_a_newer_version_waits_for_an_older_one_still_in_notice(world):
    """The tick has not run: the older's date has passed with its notice still going out."""
    older = approved_version(world, world["terms"], "# Terms\n\nv4", title="Terms v4")
    older_date = workflow.earliest_allowed(db.session, older, NOW)
    schedule(world, older, older_date)
    newer = approved_version(world, world["terms"], "# Terms\n\nv4, typos", title="Terms v5", material=False)
    schedule(world, newer, older_date + timedelta(days=1))
    notice_done(newer)
    later = older_date + timedelta(days=2)

    versions = reading.versions(db.session, world["terms"])
    assert reading.effective_moment(older, later) == reading.NOT_YET
    assert reading.current_version(versions, later).number == 3
    assert not versions[-1].is_effective(later)  # listed as upcoming (pages, API), not as superseded
    recorded = publishing.record_effective(db.session, now=later)
    assert recorded == [world["v4"].change_set]  # the demo's change: due, and nothing before it waits
    assert newer.status == ChangeStatus.IN_NOTICE


def approved_subprocessor_change(world, slug, action, fields, title):
    editor = world["editor"]
    change_set = workflow.create(db.session, title=title, summary="s", is_material=True, actor=editor,
                                 now=NOW)
    workflow.save_subprocessor_change(db.session, change_set, slug, action, fields=fields, summary=title,
                                      actor=editor, now=NOW)
    workflow.submit(db.session, change_set, actor=editor, now=NOW)
    workflow.approve(db.session, change_set, actor=world["approver"], now=NOW)
    db.session.commit()
    return change_set


def test_two_pending_changes_to_one_subprocessor_cannot_cross(world):
    first = approved_subprocessor_change(world, "nordlicht-cloud", "change", {"countries": ["DE", "AT"]},
                                         "Nordlicht adds Austria")
    later = workflow.earliest_allowed(db.session, first, NOW) + timedelta(days=10)
    schedule(world, first, later)
    db.session.commit()
    second = approved_subprocessor_change(world, "nordlicht-cloud", "change", {"website": "https://n.example"},
                                          "Nordlicht's new website")
    assert second.subprocessor_records[0].countries == ["DE", "AT"]  # drafted from the pending change

    with pytest.raises(WorkflowError, match=f"change set #{first.id} .*sub-processor .* \\(changed\\)"):
        schedule(world, second, workflow.earliest_allowed(db.session, second, NOW))
    db.session.rollback()
    second = db.session.get(type(second), second.id)
    schedule(world, second, later + timedelta(days=1))
    events = [e for e in reading.subprocessor_events(db.session, "nordlicht-cloud")]
    assert [e.change_set_id for e in events][-2:] == [first.id, second.id]


def test_an_addition_cannot_be_superseded_by_a_change_to_what_it_adds(world):
    fields = {"name": "Newco", "legal_entity": "Newco Ltd", "address": "Dublin", "contact": "p@newco.example",
              "purpose": "Support", "transfer_mechanism": "Within the EEA", "countries": ["IE"]}
    adding = approved_subprocessor_change(world, "newco", "add", fields, "Newco added")
    schedule(world, adding, workflow.earliest_allowed(db.session, adding, NOW) + timedelta(days=20))
    db.session.commit()
    changing = approved_subprocessor_change(world, "newco", "change", {"countries": ["IE", "FR"]}, "Newco FR")
    with pytest.raises(WorkflowError, match=f"Change set #{adding.id} adds sub-processor Newco.*cannot be "
                                            "superseded") as refused:
        schedule(world, changing, workflow.earliest_allowed(db.session, changing, NOW), supersede=[adding.id])
    assert refused.value.field == "supersede"
    db.session.rollback()
    assert db.session.get(type(adding), adding.id).status == ChangeStatus.SCHEDULED


def test_a_non_material_set_with_a_material_version_is_material(world):
    """§2: it cannot take effect at once, and everyone is told, not only topic subscribers."""
    change_set = approved_version(world, world["terms"], "# Terms\n\nNew fees", title="Fees", material=False)
    version = change_set.document_versions[0]
    version.is_material = True  # the version is material, the set says otherwise
    change_set.is_material = False
    db.session.commit()  # stored so, as before the fix

    with pytest.raises(WorkflowError) as refused:
        schedule(world, change_set, NOW)
    assert "set by Terms of Service: Terms of Service (new version)" in str(refused.value)
    db.session.rollback()

    change_set = db.session.get(type(change_set), change_set.id)
    schedule(world, change_set, workflow.earliest_allowed(db.session, change_set, NOW)
             + timedelta(days=30))
    assert change_set.is_material
    notice = db.session.scalar(select(Notice).where(Notice.change_set_id == change_set.id))
    assert db.session.get(Topic, notice.topic_id).key == "administrative"


def test_every_save_keeps_the_set_material_and_says_why(world):
    editor = world["editor"]
    change_set = workflow.create(db.session, title="Fees", summary="s", is_material=False, actor=editor,
                                 now=NOW)
    workflow.save_document_version(db.session, change_set, world["terms"], source_md="# Terms", summary="s",
                                   is_material=True, actor=editor, now=NOW)
    assert change_set.is_material
    workflow.edit_details(db.session, change_set, title="Fees", summary="s", is_material=False, actor=editor,
                          now=NOW)
    assert change_set.is_material
    assert workflow.materiality(db.session, change_set) == (
        True, ["Terms of Service: the new version is marked material"])
    workflow.save_subprocessor_change(db.session, change_set, "acme-sms", "add",
                                      fields={"name": "Acme SMS", "legal_entity": "Acme SMS Lda",
                                              "address": "Lisbon", "contact": "p@acme.example",
                                              "purpose": "SMS", "transfer_mechanism": "Within the EEA"},
                                      summary="s", actor=editor, now=NOW)
    assert workflow.materiality(db.session, change_set)[1][1] == (
        "Sub-processor Acme SMS: a new sub-processor (GDPR Art. 28(2) requires notice)")


def test_a_non_material_set_may_stay_non_material_and_staff_may_raise_it(world):
    editor = world["editor"]
    change_set = workflow.create(db.session, title="Typos", summary="s", is_material=False, actor=editor,
                                 now=NOW)
    workflow.save_document_version(db.session, change_set, world["terms"], source_md="# Terms", summary="s",
                                   is_material=False, actor=editor, now=NOW)
    assert not change_set.is_material
    workflow.edit_details(db.session, change_set, title="Typos", summary="s", is_material=True, actor=editor,
                          now=NOW)
    assert change_set.is_material


def test_the_schedule_outlook_names_the_policy_item_and_pending_changes(world, v5):
    v6 = v6_draft(world, v5)
    workflow.save_subprocessor_change(db.session, v6, "kestrel-messaging", "remove", fields={}, summary="s",
                                      actor=world["editor"], now=NOW)
    outlook = workflow.outlook(db.session, v6, NOW)
    assert outlook.earliest.policy == "Sub-processor list"  # 14 calendar days beat 3 business days
    assert outlook.earliest.items == ("sub-processor Kestrel Messaging (removed)",)
    pending = {p.change_set.id: p for p in outlook.pending}
    assert set(pending) == {world["v4"].change_set.id, v5.id}
    # Superseding the demo's change would also withdraw its sub-processor addition: the form says so.
    demo_change = pending[world["v4"].change_set.id]
    assert demo_change.subjects == ["version 4 of Privacy Policy", "sub-processor Kestrel Messaging (added)"]
    assert demo_change.other_items == []
    assert (pending[v5.id].subjects, pending[v5.id].other_items) == (["version 5 of Privacy Policy"], [])
    # A change set that follows only the privacy policy would withdraw Kestrel's addition too: said so.
    workflow.discard_item(db.session, v6, record_id=v6.subprocessor_records[0].id, actor=world["editor"],
                          now=NOW)
    demo_change = next(p for p in workflow.outlook(db.session, v6, NOW).pending
                       if p.change_set.id == world["v4"].change_set.id)
    assert demo_change.other_items == ["sub-processor Kestrel Messaging (added)"]


def test_the_version_check_refuses_a_step_on_a_stale_change_set(world):
    change_set = approved_version(world, world["terms"], "# Terms", title="Stale")
    db.session.commit()
    # Another request changed it meanwhile (here: its revision moved on in the database).
    db.session.execute(type(change_set).__table__.update().where(type(change_set).id == change_set.id)
                       .values(revision=change_set.revision + 1))
    with pytest.raises(WorkflowError, match="changed by someone else meanwhile; reload and try again"):
        workflow.return_to_draft(db.session, change_set, actor=world["approver"], now=NOW)
    db.session.rollback()
    assert db.session.scalar(select(ChangeSetEvent).where(ChangeSetEvent.action == "returned")) is None


def test_the_schedule_page_explains_and_offers_to_supersede(app, make_user, login):
    """The form, with the real clock the views use: the policy that sets the earliest date, the pending
    changes with what superseding them withdraws, a refusal next to the date, and the supersede box."""
    now = now_utc()
    demo.load(db.session, now)
    factories.without_organisations()  # the page names the policy, not the demo's 30-day contract
    privacy = reading.document(db.session, "privacy-policy")
    v4 = reading.versions(db.session, privacy)[-1]
    world = {"editor": make_user("editor"), "approver": make_user("approver")}
    five = approved_version(world, privacy, v4.version.source_md + "\n\nFive.", title="Privacy v5")
    workflow.schedule(db.session, five, effective_at=v4.effective_at + timedelta(days=2),
                      actor=world["approver"], legal_timezone=TZ, now=now)
    db.session.commit()
    six = approved_version(world, privacy, v4.version.source_md + "\n\nSix.", title="Privacy v6")
    client = login(make_user("approver"))
    url = f"/admin/change-sets/{six.id}/schedule"

    page = client.get(url).get_data(as_text=True)
    assert ("Set by the notice policy <strong>Privacy Policy</strong>, which governs Privacy Policy "
            "(new version)") in page
    assert f"Change set #{v4.change_set.id}" in page and f"Change set #{five.id}" in page
    assert "Superseding it also withdraws sub-processor Kestrel Messaging (added)." in page
    assert f'name="supersede_ids" type="hidden" value="{v4.change_set.id},{five.id}"' in page
    # The date offered is one the server accepts: the day after the latest pending change (v5's).
    after_five = (five.effective_at.astimezone(WARSAW) + timedelta(days=1)).date().isoformat()
    assert f'value="{after_five}"' in page

    earliest = workflow.earliest_allowed(db.session, six, now_utc()).astimezone(WARSAW)
    refused = client.post(url, data={"csrf_token": client.csrf(), "effective_time": "23:59",
                                     "effective_date": earliest.date().isoformat(),
                                     "supersede_ids": f"{v4.change_set.id},{five.id}"})
    assert refused.status_code == 422
    assert "Versions take effect in order" in refused.get_data(as_text=True)

    between = (v4.effective_at + timedelta(days=1)).astimezone(WARSAW)
    done = client.post(url, data={"csrf_token": client.csrf(), "effective_time": "00:00",
                                  "effective_date": between.date().isoformat(), "supersede": "y",
                                  "supersede_ids": f"{v4.change_set.id},{five.id}"})
    assert done.status_code == 302
    db.session.expire_all()
    assert db.session.get(ChangeSet, five.id).status == ChangeStatus.WITHDRAWN
    assert db.session.get(ChangeSet, v4.change_set.id).status == ChangeStatus.IN_NOTICE
    assert db.session.get(ChangeSet, six.id).status == ChangeStatus.SCHEDULED


def test_a_late_notice_moves_a_newer_change_to_the_same_subprocessor(world):
    older = approved_subprocessor_change(world, "nordlicht-cloud", "change", {"countries": ["DE", "AT"]},
                                         "Nordlicht adds Austria")
    schedule(world, older, workflow.earliest_allowed(db.session, older, NOW))
    db.session.commit()
    newer = approved_subprocessor_change(world, "nordlicht-cloud", "change", {"website": "https://n.example"},
                                         "Nordlicht's new website")
    schedule(world, newer, older.effective_at + timedelta(days=1))
    gap = newer.effective_at - older.effective_at

    late = NOW + timedelta(days=20)
    publishing.complete_notice(db.session, older, completed_at=late, now=late)

    assert newer.effective_at - older.effective_at == gap > timedelta(0)
    events = reading.subprocessor_events(db.session, "nordlicht-cloud")
    assert [e.change_set_id for e in events][-2:] == [older.id, newer.id]
    assert [e.action for e in newer.events if e.action == "effective_moved"] == ["effective_moved"]
