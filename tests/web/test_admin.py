"""The staff workspace pages: each renders, the workflow through the forms, the live preview."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import ChangeSet, ChangeStatus, Comment, DocumentVersion, SubProcessorRecord
from registry.services import publishing, workflow
from tests.services.test_workflow import ACME, build_registry

WARSAW = ZoneInfo("Europe/Warsaw")


@pytest.fixture
def world(app):
    return build_registry(db.session, datetime.now(UTC))


@pytest.fixture
def editor(make_user):
    return make_user("editor")


@pytest.fixture
def approver(make_user):
    return make_user("approver")


def make_draft(world, user, *, material=True) -> ChangeSet:
    change_set = workflow.create(db.session, title="Winter update", summary="What changes",
                                 is_material=material, actor=user)
    workflow.save_document_version(db.session, change_set, world["document"],
                                   source_md="# Privacy\n\nWe collect your name and email.",
                                   summary="Email added", is_material=material, actor=user)
    db.session.commit()
    return change_set


def post(client, url: str, **data):
    return client.post(url, data={"csrf_token": client.csrf(), **data})


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_every_page_renders_for_staff(world, editor, approver, login):
    change_set = make_draft(world, editor)
    workflow.submit(db.session, change_set, actor=editor)
    workflow.approve(db.session, change_set, actor=approver)
    db.session.commit()
    pages = [
        "/admin/", "/admin/change-sets/", "/admin/change-sets/?status=approved", "/admin/change-sets/new",
        f"/admin/change-sets/{change_set.id}", f"/admin/change-sets/{change_set.id}/edit",
        f"/admin/change-sets/{change_set.id}/documents/privacy-policy",
        f"/admin/change-sets/{change_set.id}/subprocessors/new",
        f"/admin/change-sets/{change_set.id}/subprocessors/acme",
        f"/admin/change-sets/{change_set.id}/subprocessors/acme/remove",
    ]
    client = login(editor)
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        assert b"<h1" in response.data
    schedule = login(approver).get(f"/admin/change-sets/{change_set.id}/schedule")
    assert schedule.status_code == 200 and b"The earliest allowed effective date" in schedule.data


def test_dashboard_groups_change_sets_and_shows_dispatch_progress(world, editor, approver, make_user, login):
    draft = make_draft(world, editor)
    scheduled = make_draft(world, editor)
    workflow.submit(db.session, scheduled, actor=editor)
    workflow.approve(db.session, scheduled, actor=approver)
    workflow.schedule(db.session, scheduled, effective_at=datetime.now(UTC) + timedelta(days=30),
                      actor=approver, legal_timezone="Europe/Warsaw")
    db.session.commit()
    page = login(editor).get("/admin/").get_data(as_text=True)
    drafts = page[page.index('id="drafts-h"'):page.index('id="awaiting-h"')]
    assert f"#{draft.id} Winter update" in drafts
    sending = page[page.index('id="scheduled-h"'):page.index('id="notice-h"')]
    assert f"#{scheduled.id} Winter update" in sending
    assert re.search(r'<progress class="progress" id="progress-\d+" max="1" value="0">', sending)
    assert "0 sent · 0 suppressed · 0 failed · 1 pending" in sending
    # The first change set, long effective, is listed as such.
    effective = page[page.index('id="effective-h"'):]
    assert "First versions" in effective


def test_in_notice_shows_days_left(world, editor, approver, login):
    change_set = make_draft(world, editor)
    workflow.submit(db.session, change_set, actor=editor)
    workflow.approve(db.session, change_set, actor=approver)
    now = datetime.now(UTC)
    workflow.schedule(db.session, change_set, effective_at=now + timedelta(days=20, hours=1), actor=approver,
                      legal_timezone="Europe/Warsaw")
    publishing.complete_notice(db.session, change_set, completed_at=now)
    db.session.commit()
    page = login(approver).get("/admin/").get_data(as_text=True)
    in_notice = page[page.index('id="notice-h"'):page.index('id="effective-h"')]
    assert f"#{change_set.id} Winter update" in in_notice and "<td>21</td>" in in_notice


def test_change_set_list_filters_by_status_and_rejects_unknown(world, editor, login):
    draft = make_draft(world, editor)
    client = login(editor)
    page = client.get("/admin/change-sets/?status=draft").get_data(as_text=True)
    assert f"#{draft.id} Winter update" in page and "First versions" not in page
    assert "First versions" in client.get("/admin/change-sets/?status=effective").get_data(as_text=True)
    bad = client.get("/admin/change-sets/?status=bogus")
    assert bad.status_code == 400 and b"Unknown value for" in bad.data


def test_the_full_workflow_through_the_forms(world, editor, approver, make_user, login):
    writer = login(editor)
    response = writer.post("/admin/change-sets/new", data={
        "csrf_token": writer.csrf(), "title": "Spring update", "summary": "New vendor",
        "materiality": "material"})
    assert response.status_code == 302
    change_set = db.session.scalar(select(ChangeSet).where(ChangeSet.title == "Spring update"))
    base = f"/admin/change-sets/{change_set.id}"

    editor_page = writer.get(f"{base}/documents/privacy-policy").get_data(as_text=True)
    assert "We collect your name." in editor_page  # prefilled from the current version
    response = writer.post(f"{base}/documents/privacy-policy", data={
        "csrf_token": writer.csrf(), "source": "# Privacy\n\nWe collect your name and phone.",
        "summary": "Phone added", "materiality": "material", "action": "save"})
    assert response.status_code == 302
    response = writer.post(f"{base}/subprocessors/new", data={
        "csrf_token": writer.csrf(), "slug": "newco", **{k: v for k, v in ACME.items() if isinstance(v, str)},
        "name": "NewCo", "data_categories": "Account data, Usage data", "countries": "de, ie",
        "summary": "NewCo hosts backups"})
    assert response.status_code == 302, response.get_data(as_text=True)
    record = db.session.scalar(select(SubProcessorRecord)
                               .where(SubProcessorRecord.change_set_id == change_set.id))
    assert record.countries == ["DE", "IE"] and record.data_categories == ["Account data", "Usage data"]

    page = writer.get(base).get_data(as_text=True)
    assert "<ins>" in page and "phone" in page  # the redline against version 1
    assert post(writer, f"{base}/submit").status_code == 302
    assert post(writer, f"{base}/comments", body="Ready").status_code == 302

    reviewer = login(approver)
    assert "Approve" in reviewer.get(base).get_data(as_text=True)
    assert post(reviewer, f"{base}/approve").status_code == 302
    db.session.expire_all()
    assert change_set.status == ChangeStatus.APPROVED

    form = reviewer.get(f"{base}/schedule").get_data(as_text=True)
    earliest = workflow.earliest_allowed(db.session, change_set, datetime.now(UTC)).astimezone(WARSAW)
    assert f'value="{earliest.date().isoformat()}"' in form and 'value="00:00"' in form
    too_early = earliest - timedelta(days=1)
    refused = post(reviewer, f"{base}/schedule", effective_date=too_early.date().isoformat(),
                   effective_time="00:00")
    assert refused.status_code == 422
    assert "the earliest allowed effective date is" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert change_set.status == ChangeStatus.APPROVED and change_set.published_at is None

    done = post(reviewer, f"{base}/schedule", effective_date=earliest.date().isoformat(),
                effective_time="00:00")
    assert done.status_code == 302
    db.session.expire_all()
    assert change_set.status == ChangeStatus.SCHEDULED
    assert change_set.effective_at == earliest
    assert change_set.document_versions[0].number == 2
    page = reviewer.get(base).get_data(as_text=True)
    assert "Ready" in page and "scheduled" in page and "approved → scheduled" in page


def test_four_eyes_in_the_views(world, approver, make_user, login):
    own = make_draft(world, approver)
    client = login(approver)
    assert post(client, f"/admin/change-sets/{own.id}/submit").status_code == 302
    page = client.get(f"/admin/change-sets/{own.id}").get_data(as_text=True)
    assert "four-eyes rule" in page and f'action="/admin/change-sets/{own.id}/approve"' not in page
    refused = post(client, f"/admin/change-sets/{own.id}/approve")
    assert refused.status_code == 409
    assert "You created or edited this change set" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert own.status == ChangeStatus.IN_REVIEW


def test_roles_are_enforced(world, editor, make_user, login, client):
    change_set = make_draft(world, editor)
    writer = login(editor)
    assert writer.post(f"/admin/change-sets/{change_set.id}/approve",
                       data={"csrf_token": writer.csrf()}).status_code == 403
    assert writer.get(f"/admin/change-sets/{change_set.id}/schedule").status_code == 403
    admin = login(make_user("admin"))
    assert admin.get("/admin/").status_code == 200
    assert admin.get("/admin/change-sets/new").status_code == 403
    anonymous = client.get("/admin/")
    assert anonymous.status_code == 302 and "/auth/login" in anonymous.headers["Location"]


def test_a_post_without_csrf_token_is_refused(world, editor, login):
    writer = login(editor)
    response = writer.post("/admin/change-sets/new",
                           data={"title": "x", "summary": "y", "materiality": "material"})
    assert response.status_code == 400
    assert count(ChangeSet) == 1


def test_live_preview_returns_sanitised_html_and_redline(world, editor, login):
    change_set = make_draft(world, editor)
    writer = login(editor)
    token = writer.csrf()
    response = writer.post("/admin/preview", headers={"X-CSRFToken": token}, data={
        "source": "# Privacy\n\nWe collect your name.<script>alert(1)</script>\n\n[x](javascript:alert(1))",
        "document": "privacy-policy", "change_set": str(change_set.id)})
    assert response.status_code == 200
    data = response.get_json()
    assert "<script" not in data["html"] and "href=\"javascript:" not in data["html"]
    assert "&lt;script&gt;" in data["html"]
    assert "<h1" in data["html"]
    assert "<ins>" in data["redline"] and "<script" not in data["redline"]
    assert writer.post("/admin/preview", data={"source": "x"}).status_code == 400  # no CSRF header
    missing = writer.post("/admin/preview", headers={"X-CSRFToken": token}, data={})
    assert missing.status_code == 400 and "source" in missing.get_json()["error"]["message"]
    huge = writer.post("/admin/preview", headers={"X-CSRFToken": token}, data={"source": "a" * 500_001})
    assert huge.status_code == 413
    unknown = writer.post("/admin/preview", headers={"X-CSRFToken": token},
                          data={"source": "x", "document": "nope"})
    assert unknown.status_code == 404


def test_preview_button_without_javascript_stores_nothing(world, editor, login):
    change_set = make_draft(world, editor)
    writer = login(editor)
    response = writer.post(f"/admin/change-sets/{change_set.id}/documents/privacy-policy", data={
        "csrf_token": writer.csrf(), "source": "# Privacy\n\nTotally <b onclick=x>new</b> text",
        "summary": "", "materiality": "material", "action": "preview"})
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    shown = page.split('id="preview-html"')[1].split("</div>")[0]
    assert "Totally" in shown and "<b onclick" not in shown and "&lt;b onclick=x&gt;" in shown
    assert db.session.scalar(select(DocumentVersion.source_md).where(
        DocumentVersion.change_set_id == change_set.id)) == "# Privacy\n\nWe collect your name and email."


def test_a_document_beyond_the_limits_is_refused_naming_the_limit(world, editor, login):
    """16,000 headings took 42 s to preview and 6.5 s per change-set page once saved (issue 9 item 5)."""
    change_set = make_draft(world, editor)
    writer = login(editor)
    source = "# Same heading\n\n" * 16_000
    preview = writer.post("/admin/preview", headers={"X-CSRFToken": writer.csrf()},
                          data={"source": source, "document": "privacy-policy"})
    assert preview.status_code == 413 and "the limit is" in preview.get_json()["error"]["message"]
    saved = writer.post(f"/admin/change-sets/{change_set.id}/documents/privacy-policy", data={
        "csrf_token": writer.csrf(), "source": source, "summary": "Many headings",
        "materiality": "material"})
    assert saved.status_code == 422 and "the limit is" in saved.get_data(as_text=True)
    assert db.session.scalar(select(DocumentVersion.source_md).where(
        DocumentVersion.change_set_id == change_set.id)) == "# Privacy\n\nWe collect your name and email."


def test_return_withdraw_discard_and_comment(world, editor, approver, login):
    change_set = make_draft(world, editor)
    writer, reviewer = login(editor), login(approver)
    base = f"/admin/change-sets/{change_set.id}"
    post(writer, f"{base}/submit")
    assert post(reviewer, f"{base}/return", note="Cite Art. 13").status_code == 302
    db.session.expire_all()
    assert change_set.status == ChangeStatus.DRAFT
    assert "Cite Art. 13" in writer.get(base).get_data(as_text=True)

    version_id = change_set.document_versions[0].id
    assert post(writer, f"{base}/discard", version_id=str(version_id)).status_code == 302
    assert count(DocumentVersion) == 1
    refused = post(writer, f"{base}/submit")
    assert refused.status_code == 409 and "before submitting" in refused.get_data(as_text=True)

    assert post(writer, f"{base}/comments", body="<b>hi</b>").status_code == 302
    assert "&lt;b&gt;hi&lt;/b&gt;" in writer.get(base).get_data(as_text=True)
    assert count(Comment) == 1

    assert post(writer, f"{base}/withdraw", note="Not needed").status_code == 302
    db.session.expire_all()
    assert change_set.status == ChangeStatus.WITHDRAWN


def test_an_editor_cannot_withdraw_an_announced_change_set(world, editor, approver, login):
    change_set = make_draft(world, editor)
    workflow.submit(db.session, change_set, actor=editor)
    workflow.approve(db.session, change_set, actor=approver)
    workflow.schedule(db.session, change_set, effective_at=datetime.now(UTC) + timedelta(days=30),
                      actor=approver, legal_timezone="Europe/Warsaw")
    db.session.commit()
    writer = login(editor)
    refused = post(writer, f"/admin/change-sets/{change_set.id}/withdraw")
    assert refused.status_code == 409 and "Only an approver" in refused.get_data(as_text=True)
    reviewer = login(approver)
    url = f"/admin/change-sets/{change_set.id}/withdraw"
    page = reviewer.get(f"/admin/change-sets/{change_set.id}").get_data(as_text=True)
    assert "Reason for withdrawing (customers read it)" in page and 'name="confirm"' in page
    # An announced change is withdrawn only with a reason customers read and an explicit confirmation.
    no_reason = reviewer.post(url, data={"csrf_token": reviewer.csrf(), "confirm": "y"})
    assert no_reason.status_code == 409 and "Give the reason" in no_reason.get_data(as_text=True)
    unconfirmed = reviewer.post(url, data={"csrf_token": reviewer.csrf(), "note": "Vendor pulled out"})
    assert unconfirmed.status_code == 409 and "Tick the confirmation" in unconfirmed.get_data(as_text=True)
    db.session.expire_all()
    assert change_set.status != ChangeStatus.WITHDRAWN
    assert reviewer.post(url, data={"csrf_token": reviewer.csrf(), "note": "Vendor pulled out",
                                    "confirm": "y"}).status_code == 302
    db.session.expire_all()
    assert change_set.status == ChangeStatus.WITHDRAWN
    assert change_set.events[-1].note == "Vendor pulled out"
    assert b"Winter update" not in login(editor).get("/upcoming").data


def test_two_effective_dates_through_the_form(world, editor, approver, login):
    change_set = make_draft(world, editor)
    workflow.submit(db.session, change_set, actor=editor)
    workflow.approve(db.session, change_set, actor=approver)
    db.session.commit()
    reviewer = login(approver)
    effective = (datetime.now(UTC) + timedelta(days=40)).astimezone(WARSAW).date()
    new_customers = (datetime.now(UTC) + timedelta(days=2)).astimezone(WARSAW).date()
    base = f"/admin/change-sets/{change_set.id}/schedule"
    half = post(reviewer, base, effective_date=effective.isoformat(),
                                     effective_time="00:00", new_customers_date=new_customers.isoformat())
    assert half.status_code == 422 and "Give both a date and a time" in half.get_data(as_text=True)
    after = post(reviewer, base, effective_date=effective.isoformat(),
                                      effective_time="00:00",
                                      new_customers_date=(effective + timedelta(days=1)).isoformat(),
                                      new_customers_time="00:00")
    assert after.status_code == 422
    assert "must lie between now and the effective date" in after.get_data(as_text=True)
    ok = post(reviewer, base, effective_date=effective.isoformat(),
                                   effective_time="00:00", new_customers_date=new_customers.isoformat(),
                                   new_customers_time="09:30")
    assert ok.status_code == 302
    db.session.expire_all()
    assert change_set.effective_new_customers_at == datetime.combine(
        new_customers, datetime.min.time().replace(hour=9, minute=30), WARSAW)
    assert change_set.effective_at == datetime.combine(effective, datetime.min.time(), WARSAW)


def test_missing_objects_are_404(world, editor, login):
    writer = login(editor)
    change_set = make_draft(world, editor)
    assert writer.get("/admin/change-sets/999999").status_code == 404
    assert writer.get(f"/admin/change-sets/{change_set.id}/documents/nope").status_code == 404
    assert writer.get(f"/admin/change-sets/{change_set.id}/subprocessors/ghost").status_code == 404
    assert writer.get(f"/admin/change-sets/{change_set.id}/subprocessors/ghost/remove").status_code == 404


def test_editing_a_scheduled_change_set_is_refused_next_to_the_field(world, editor, approver, login):
    change_set = make_draft(world, editor)
    workflow.submit(db.session, change_set, actor=editor)
    workflow.approve(db.session, change_set, actor=approver)
    workflow.schedule(db.session, change_set, effective_at=datetime.now(UTC) + timedelta(days=30),
                      actor=approver, legal_timezone="Europe/Warsaw")
    db.session.commit()
    writer = login(editor)
    url = f"/admin/change-sets/{change_set.id}/documents/privacy-policy"
    assert "it can no longer be edited" in writer.get(url).get_data(as_text=True)
    refused = post(writer, url, source="# Late edit", summary="s", materiality="material", action="save")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="source-error">Only a change set that is draft' in page
    db.session.expire_all()
    assert change_set.document_versions[0].source_md == "# Privacy\n\nWe collect your name and email."
