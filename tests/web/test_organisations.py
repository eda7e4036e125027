"""The organisations pages, the schedule form naming a contract, the account page, the worker banner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import (
    AuditEntry,
    ChangeSet,
    ChangeStatus,
    Delivery,
    Organisation,
    OrganisationDomain,
    OutgoingMail,
    Subscriber,
    WorkerBeat,
)
from registry.services import health, workflow
from tests import factories
from tests.services.test_workflow import build_registry

WARSAW = ZoneInfo("Europe/Warsaw")
GOOD = {"name": "Northwind Bank", "domains": "northwind-bank.example\nnwb.example",
        "contract_reference": "DPA 7", "notice_length": "30", "notice_unit": "calendar_days",
        "objection_days": "14", "contacts": "dpo@northwind-bank.example"}


@pytest.fixture
def world(app):
    return build_registry(db.session, datetime.now(UTC))


def post(client, url: str, **data):
    return client.post(url, data={"csrf_token": client.csrf(), **data})


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_staff_create_an_organisation_and_see_its_members(world, make_user, login):
    db.session.add_all([Subscriber(email="anna@northwind-bank.example", status="confirmed"),
                        Subscriber(email="ben@eu.nwb.example", status="confirmed"),
                        Subscriber(email="carl@elsewhere.example", status="confirmed")])
    db.session.commit()
    approver = login(make_user("approver"))
    response = post(approver, "/admin/organisations/new", **GOOD)
    assert response.status_code == 302, response.get_data(as_text=True)
    organisation = db.session.scalar(select(Organisation))
    assert [d.domain for d in organisation.domains] == ["northwind-bank.example", "nwb.example"]
    assert [c.email for c in organisation.contacts] == ["dpo@northwind-bank.example"]
    assert (organisation.notice_length, organisation.notice_unit, organisation.objection_days) == (
        30, "calendar_days", 14)
    page = approver.get(response.location).get_data(as_text=True)
    assert '<span class="tag" id="member-count">2</span>' in page
    assert "anna@northwind-bank.example" in page and "ben@eu.nwb.example" in page
    assert "carl@elsewhere.example" not in page and "30 calendar days" in page
    listing = approver.get("/admin/organisations/").get_data(as_text=True)
    assert "Northwind Bank" in listing and "30 calendar days" in listing
    last_action = db.session.scalar(select(AuditEntry.action).order_by(AuditEntry.id.desc()))
    assert last_action == "organisation.create"

    edited = post(approver, f"/admin/organisations/{organisation.id}/edit", **{**GOOD, "notice_length": "",
                                                                                "notice_unit": "",
                                                                                "objection_days": ""})
    assert edited.status_code == 302
    db.session.expire_all()
    assert organisation.notice_length is None and organisation.notice_unit is None
    assert post(approver, f"/admin/organisations/{organisation.id}/delete").status_code == 302
    assert count(Organisation) == 0 and count(OrganisationDomain) == 0


def test_editors_see_organisations_but_cannot_change_them(world, make_user, login):
    organisation = factories.organisation()
    editor = login(make_user("editor"))
    assert editor.get(f"/admin/organisations/{organisation.id}").status_code == 200
    assert "New organisation" not in editor.get("/admin/organisations/").get_data(as_text=True)
    assert editor.get("/admin/organisations/new").status_code == 403
    assert post(editor, "/admin/organisations/new", **GOOD).status_code == 403
    assert post(editor, f"/admin/organisations/{organisation.id}/delete").status_code == 403
    assert count(Organisation) == 1


@pytest.mark.parametrize(("changes", "says"), [
    ({"name": ""}, "Give the organisation&#39;s name."),
    ({"name": "A\x00B"}, "control character"),
    ({"name": "Two\nlines"}, "must fit on one line"),
    ({"name": "x" * 201}, "200 characters"),
    ({"domains": ""}, "Give at least one email domain"),
    ({"domains": "localhost"}, "it needs a dot"),
    ({"domains": "anna@bank.example"}, "only the part after the @"),
    ({"domains": "bad_domain.example"}, "not a valid domain name"),
    ({"domains": "10.1.2.3"}, "IP address"),
    ({"domains": "taken.example"}, "already belongs to Taken Ltd"),
    ({"domains": " ".join(f"d{i}.example" for i in range(60))}, "At most 50 domains"),
    ({"name": "taken ltd", "domains": "free.example"}, "already an organisation named Taken Ltd"),
    ({"notice_length": "-5"}, "from 1 to 365"),
    ({"notice_length": "0"}, "from 1 to 365"),
    ({"notice_length": "99999999999999999999999"}, "from 1 to 365"),
    ({"notice_length": "thirty"}, "Not a valid integer"),
    ({"notice_length": "1e3"}, "Not a valid integer"),
    ({"notice_unit": "weeks"}, "Not a valid choice"),
    ({"notice_unit": ""}, "or neither"),
    ({"notice_length": "", "notice_unit": "business_days"}, "or neither"),
    ({"objection_days": "-1"}, "from 1 to 365"),
    ({"objection_days": "45"}, "cannot be longer than the notice term"),
    ({"contacts": "not-an-address"}, "not-an-address"),
    ({"contacts": "dpo@[10.0.0.1]"}, "dpo@[10.0.0.1]"),
    ({"contacts": "\n".join(f"c{i}@bank.example" for i in range(21))}, "At most 20 designated contacts"),
])
def test_garbage_is_refused_with_a_clear_message_and_nothing_stored(world, make_user, login, changes, says):
    factories.organisation("Taken Ltd", ("taken.example",))
    approver = login(make_user("approver"))
    before = (count(Organisation), count(OrganisationDomain), count(AuditEntry))
    response = post(approver, "/admin/organisations/new", **{**GOOD, **changes})
    assert response.status_code == 422
    assert says in response.get_data(as_text=True)
    assert (count(Organisation), count(OrganisationDomain), count(AuditEntry)) == before


def test_garbage_on_edit_leaves_the_organisation_as_it_was(world, make_user, login):
    organisation = factories.organisation()
    factories.organisation("Taken Ltd", ("taken.example",))
    approver = login(make_user("approver"))
    response = post(approver, f"/admin/organisations/{organisation.id}/edit",
                    **{**GOOD, "domains": "northwind-bank.example taken.example"})
    assert response.status_code == 422 and "already belongs to Taken Ltd" in response.get_data(as_text=True)
    db.session.expire_all()
    assert [d.domain for d in organisation.domains] == ["northwind-bank.example"]
    assert approver.get("/admin/organisations/999999").status_code == 404
    assert post(approver, "/admin/organisations/999999/edit", **GOOD).status_code == 404


def approved_change_set(world, make_user) -> tuple[ChangeSet, object]:
    editor, approver = make_user("editor"), make_user("approver")
    change_set = workflow.create(db.session, title="Winter update", summary="What changes", is_material=True,
                                 actor=editor)
    workflow.save_document_version(db.session, change_set, world["document"],
                                   source_md="# Privacy\n\nWe collect your name and email.",
                                   summary="Email added", is_material=True, actor=editor)
    workflow.submit(db.session, change_set, actor=editor)
    workflow.approve(db.session, change_set, actor=approver)
    db.session.commit()
    return change_set, make_user("approver")


def test_a_30_day_contract_moves_the_earliest_date_and_the_form_names_it(world, make_user, login):
    change_set, scheduler = approved_change_set(world, make_user)
    client = login(scheduler)
    base = f"/admin/change-sets/{change_set.id}/schedule"
    policy_only = client.get(base).get_data(as_text=True)
    assert 'id="earliest-contract"' not in policy_only and 'id="earliest-reason"' in policy_only

    factories.organisation("Northwind Bank", notice_length=30, notice_unit="calendar_days")
    now = datetime.now(UTC)
    earliest = (now.astimezone(WARSAW).date() + timedelta(days=31))
    form = client.get(base).get_data(as_text=True)
    assert (f"Earliest {earliest.day} {earliest:%B %Y}: Northwind Bank&#39;s contract (30 calendar days)"
            in form)
    assert f'value="{earliest.isoformat()}"' in form  # the date offered is the contract's

    too_early = earliest - timedelta(days=1)
    refused = post(client, base, effective_date=too_early.isoformat(), effective_time="00:00")
    assert refused.status_code == 422
    assert "set by Northwind Bank&#39;s contract (30 calendar days)" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert change_set.status == ChangeStatus.APPROVED and change_set.published_at is None
    done = post(client, base, effective_date=earliest.isoformat(), effective_time="00:00")
    assert done.status_code == 302
    db.session.expire_all()
    assert change_set.status == ChangeStatus.SCHEDULED


def test_the_schedule_page_shows_recipients_the_email_and_the_feed_entry_and_stores_nothing(
        world, make_user, login):
    factories.organisation(contacts=("dpo@northwind-bank.example",))
    change_set, scheduler = approved_change_set(world, make_user)
    client = login(scheduler)
    before = (count(Delivery), count(AuditEntry), count(OutgoingMail))
    page = client.get(f"/admin/change-sets/{change_set.id}/schedule").get_data(as_text=True)
    # customer@example.com (the subscriber) and the designated contact.
    assert '<p id="recipients"><strong>2</strong> recipients will be mailed' in page
    assert "Rendered for the first recipient" in page and "customer@example.com" in page
    assert 'id="preview-subject">' in page and "Winter update" in page
    assert "Privacy Policy, version 2" in page  # the feed entry, numbered as it will be
    html = client.get(f"/admin/change-sets/{change_set.id}/schedule/preview.html")
    assert html.status_code == 200 and "Winter update" in html.get_data(as_text=True)
    assert html.headers["Content-Security-Policy"].startswith("default-src 'none'")
    db.session.expire_all()
    assert change_set.status == ChangeStatus.APPROVED and change_set.published_at is None
    assert change_set.document_versions[0].number is None
    assert (count(Delivery), count(AuditEntry), count(OutgoingMail)) == before


def test_the_preview_of_a_change_set_not_approved_is_refused(world, make_user, login):
    change_set, scheduler = approved_change_set(world, make_user)
    workflow.return_to_draft(db.session, change_set, actor=scheduler)
    db.session.commit()
    client = login(scheduler)
    assert client.get(f"/admin/change-sets/{change_set.id}/schedule/preview.html").status_code == 409
    page = client.get(f"/admin/change-sets/{change_set.id}/schedule").get_data(as_text=True)
    assert 'id="preview"' not in page


def test_the_account_page_turns_inbox_mails_off_and_on(world, make_user, login):
    user = make_user("approver")
    client = login(user)
    page = client.get("/admin/users/account").get_data(as_text=True)
    assert "A change set is submitted for review" in page and page.count("checked") == 5
    assert post(client, "/admin/users/account", review="y", mention="y", objection="y").status_code == 302
    db.session.expire_all()
    assert user.inbox_muted == ["digest", "objection_unanswered"]
    assert post(client, "/admin/users/account", review="y", mention="y", objection="y",
                objection_unanswered="on", digest="garbage\x00", spam="y").status_code == 302
    db.session.expire_all()
    assert user.inbox_muted == []
    refused = client.post("/admin/users/account", data={"review": "y"})
    assert refused.status_code == 400
    db.session.expire_all()
    assert user.inbox_muted == []


def test_the_dashboard_says_when_the_mail_worker_has_not_run(world, make_user, login):
    client = login(make_user("editor"))
    quiet = client.get("/admin/").get_data(as_text=True)
    assert "no heartbeat yet" in quiet and 'id="worker-down"' not in quiet  # nothing waits
    db.session.add(OutgoingMail(to="x@example.com", template="approver_inbox", context={}))
    db.session.commit()
    never = client.get("/admin/").get_data(as_text=True)
    assert "The mail worker has never run" in never
    stale = datetime.now(UTC) - health.ALIVE_FOR - timedelta(minutes=1)
    health.beat(db.session, "host:1", stale)
    banner = client.get("/admin/").get_data(as_text=True)
    assert "The mail worker has not run since" in banner and 'role="alert"' in banner
    health.beat(db.session, "host:1", datetime.now(UTC))
    alive = client.get("/admin/").get_data(as_text=True)
    assert 'id="worker-down"' not in alive and "(running)" in alive
    assert count(WorkerBeat) == 1


def test_the_proof_says_whether_notice_to_each_organisation_is_complete(world, make_user, login):
    factories.organisation(contacts=("dpo@northwind-bank.example",))
    change_set, scheduler = approved_change_set(world, make_user)
    client = login(scheduler)
    earliest = workflow.earliest_allowed(db.session, change_set, datetime.now(UTC)).astimezone(WARSAW)
    assert post(client, f"/admin/change-sets/{change_set.id}/schedule",
                effective_date=earliest.date().isoformat(), effective_time="00:00").status_code == 302
    page = client.get(f"/admin/notices/{change_set.id}/").get_data(as_text=True)
    assert "Northwind Bank</a>:" in page and "pending" in page and "0 of 1 deliveries settled" in page
    db.session.execute(Delivery.__table__.update().values(status="sent"))
    db.session.commit()
    page = client.get(f"/admin/notices/{change_set.id}/").get_data(as_text=True)
    assert "complete</span>" in page and "1 of 1 deliveries settled" in page


def test_a_refused_schedule_form_still_shows_the_preview(world, make_user, login):
    change_set, scheduler = approved_change_set(world, make_user)
    client = login(scheduler)
    refused = post(client, f"/admin/change-sets/{change_set.id}/schedule", effective_date="2000-01-01",
                   effective_time="00:00")
    assert refused.status_code == 422
    page = refused.get_data(as_text=True)
    assert "the earliest allowed effective date is" in page and 'id="preview"' in page
    db.session.expire_all()
    assert change_set.status == ChangeStatus.APPROVED and change_set.published_at is None
