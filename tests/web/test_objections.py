"""The objection pages: the public form, its confirmation and status link, the notice link, the staff
register and its forms; garbage into each gets a 4xx with a clear message and stores nothing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import ChangeSet, Delivery, Notice, Objection, ObjectionEvent, OutgoingMail
from registry.services import objections
from tests.conftest import csrf_token
from tests.factories import announced_change


@pytest.fixture
def change(app):
    return announced_change(now_utc())


def form_data(client, change, **changes) -> dict:
    data = {"csrf_token": csrf_token(client), "kind": "objection", "organisation": "Northwind Logistics",
            "contact_name": "Ada Kowalska", "role": "controller", "items": objections.items_of(change)[0][0],
            "grounds": "Not on our approved vendor list.", "email": "dpo@northwind.example"}
    return {key: value for key, value in {**data, **changes}.items() if value is not None}


def stored() -> int:
    return db.session.scalar(select(func.count()).select_from(Objection))


def received(client, change) -> Objection:
    client.post(f"/objections/{change.id}/", data=form_data(client, change))
    url = db.session.scalar(select(OutgoingMail.context).where(OutgoingMail.template == "objection_confirm")
                            .order_by(OutgoingMail.id.desc()))["confirm_url"]
    client.post(url.removeprefix("http://localhost"), data={"csrf_token": csrf_token(client)})
    return db.session.scalar(select(Objection).order_by(Objection.id.desc()))


def test_the_form_says_the_deadline_and_lists_the_items(client, change):
    page = client.get(f"/objections/{change.id}/")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "until the end of" in body and "UTC)" in body and "That day is included." in body
    assert "New sub-processor: Textwave SMS" in body and "Data Processing Agreement, version 2" in body
    assert page.headers["Cache-Control"] == "no-store"


def test_sending_the_form_mails_a_confirmation_and_the_link_records_it(client, change):
    sent = client.post(f"/objections/{change.id}/", data=form_data(client, change))
    assert sent.status_code == 200 and "Check your inbox" in sent.get_data(as_text=True)
    assert db.session.scalar(select(Objection.status)) == "draft"
    url = db.session.scalar(select(OutgoingMail.context).where(OutgoingMail.template == "objection_confirm"))[
        "confirm_url"].removeprefix("http://localhost")
    page = client.get(url)
    assert page.status_code == 200 and "Confirm and send" in page.get_data(as_text=True)
    assert db.session.scalar(select(Objection.status)) == "draft"  # opening the page changes nothing
    done = client.post(url, data={"csrf_token": csrf_token(client)})
    assert done.status_code == 303
    status = client.get(done.headers["Location"])
    body = status.get_data(as_text=True)
    assert status.status_code == 200
    assert f"OBJ-{now_utc().year}-0001" in body and "Received" in body and "Thank you" in body
    again = client.post(url, data={"csrf_token": csrf_token(client)})
    assert again.status_code == 410 and "already been used" in again.get_data(as_text=True)


@pytest.mark.parametrize(("changes", "message"), [
    ({"organisation": ""}, "Give your organisation"),
    ({"contact_name": "Ada\x00"}, "control character"),
    ({"organisation": "A\u202eB"}, "invisible"),
    ({"grounds": ""}, "Give the grounds"),
    ({"grounds": "x" * 5001}, "under 5,000 characters"),
    ({"items": None}, "Choose what you object to"),
    ({"items": "subprocessor:99999"}, "Choose items from the list"),
    ({"items": "' OR 1=1 --"}, "Choose items from the list"),
    ({"role": "owner"}, "Not a valid choice"),
    ({"role": None}, "Choose your role"),
    ({"kind": "maybe"}, "Not a valid choice"),
    ({"email": "not an address"}, ""),
    ({"email": "a" * 400 + "@example.com"}, ""),
    ({"organisation": "x" * 301}, "300"),
])
def test_garbage_into_the_form_is_a_422_and_stores_nothing(client, change, changes, message):
    response = client.post(f"/objections/{change.id}/", data=form_data(client, change, **changes))
    body = response.get_data(as_text=True)
    assert response.status_code == 422, body[:500]
    assert message in body
    assert stored() == 0
    assert db.session.scalar(select(func.count()).select_from(OutgoingMail)) == 0


def test_a_form_without_its_csrf_token_is_refused(client, change):
    response = client.post(f"/objections/{change.id}/", data=form_data(client, change, csrf_token=None))
    assert 400 <= response.status_code < 500
    assert stored() == 0


def test_after_the_deadline_the_page_says_when_it_closed_and_a_post_is_refused(client, app):
    change = announced_change(now_utc(), deadline_in_days=-0.5)
    page = client.get(f"/objections/{change.id}/")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Objections to this change closed at the end of" in body and "notices@example.com" in body
    assert 'id="objection-form"' not in body
    refused = client.post(f"/objections/{change.id}/", data=form_data(client, change))
    assert refused.status_code == 409
    assert "closed at the end of" in refused.get_data(as_text=True)
    assert stored() == 0


@pytest.mark.parametrize("path", ["/objections/999999/", "/objections/confirm/nope",
                                  "/objections/confirm/" + "a" * 300, "/objections/status/garbage",
                                  "/objections/status/" + "A" * 40, "/objections/from-notice/garbage",
                                  "/objections/from-notice/%00"])
def test_garbage_links_are_404s_or_410s(client, change, path):
    response = client.get(path)
    assert response.status_code in (404, 410)
    assert "Traceback" not in response.get_data(as_text=True)


def test_a_change_not_yet_announced_has_no_form(client, change):
    change.published_at = None
    db.session.commit()
    assert client.get(f"/objections/{change.id}/").status_code == 404


def test_the_notice_link_prefills_the_address_and_records_at_once(client, change):
    notice = Notice(change_set_id=change.id, subject="Notice")
    db.session.add(notice)
    db.session.flush()
    delivery = Delivery(notice_id=notice.id, email="legal@orchard.example", status="sent")
    db.session.add(delivery)
    db.session.commit()
    url = objections.notice_url(delivery.id).removeprefix("http://localhost")
    page = client.get(url)
    assert page.status_code == 200 and "legal@orchard.example" in page.get_data(as_text=True)
    # An address sent with the form is ignored: the objection is the recipient's.
    done = client.post(url, data=form_data(client, change, email="someone@else.example"))
    assert done.status_code == 303
    objection = db.session.scalar(select(Objection))
    assert (objection.email, objection.status) == ("legal@orchard.example", "received")
    assert objection.source == "email"
    bad = client.post(url, data=form_data(client, change, grounds=""))
    assert bad.status_code == 422 and stored() == 1


def test_staff_register_moves_notes_and_exports(client, change, make_user, login):
    objection = received(client, change)
    editor = login(make_user("editor"))
    register = editor.get("/admin/objections/")
    assert register.status_code == 200 and objection.reference in register.get_data(as_text=True)
    per_change = editor.get(f"/admin/objections/?change_set={change.id}&status=received")
    assert objection.reference in per_change.get_data(as_text=True)
    page = editor.get(f"/admin/objections/{objection.id}")
    assert page.status_code == 200 and "Not on our approved vendor list." in page.get_data(as_text=True)

    read = objection.version
    moved = editor.post(f"/admin/objections/{objection.id}/move",
                        data={"csrf_token": editor.csrf(), "to": "in_discussion", "outcome": "",
                              "reply": "Let us talk.", "version": str(read)})
    assert moved.status_code == 303
    # In discussion, the form offers only what may follow: resolving it.
    html = editor.get(f"/admin/objections/{objection.id}").get_data(as_text=True)
    assert 'value="resolved"' in html and 'value="acknowledged"' not in html
    stale = editor.post(f"/admin/objections/{objection.id}/move",
                        data={"csrf_token": editor.csrf(), "to": "resolved", "outcome": "customer_accepted",
                              "version": str(read)})
    assert stale.status_code == 409 and "Someone else changed" in stale.get_data(as_text=True)
    noted = editor.post(f"/admin/objections/{objection.id}/notes",
                        data={"csrf_token": editor.csrf(), "body": "Internal only.",
                              "visibility": "internal"})
    assert noted.status_code == 303
    db.session.expire_all()
    objection = db.session.get(Objection, objection.id)
    assert objection.status == "in_discussion"
    status = client.get(f"/objections/status/{objections.status_token(objection.id)}").get_data(as_text=True)
    assert "Let us talk." in status and "Internal only." not in status

    csv_export = editor.get(f"/admin/objections/change-sets/{change.id}/objections.csv")
    assert csv_export.status_code == 200 and csv_export.mimetype == "text/csv"
    assert objection.reference in csv_export.get_data(as_text=True)
    json_export = json.loads(editor.get(f"/admin/objections/change-sets/{change.id}/objections.json").data)
    assert json_export["objections"][0]["status"] == "in_discussion"
    assert [e["action"] for e in json_export["objections"][0]["timeline"]] == ["received", "moved", "note"]


@pytest.mark.parametrize(("path", "data", "status", "message"), [
    ("move", {"to": "lost"}, 422, "Not a valid choice"),
    ("move", {"to": "resolved", "outcome": ""}, 422, "Choose the outcome"),
    ("move", {"to": "resolved", "outcome": "bribe"}, 422, "Not a valid choice"),
    ("move", {"to": "acknowledged", "version": "1e309"}, 409, "Someone else changed"),
    ("move", {"to": "acknowledged", "version": "\x00"}, 409, "Someone else changed"),
    ("move", {"to": "acknowledged", "reply": "x\x00"}, 422, "control character"),
    ("notes", {"body": "", "visibility": "reply"}, 422, "Write the note"),
    ("notes", {"body": "x" * 5001, "visibility": "reply"}, 422, "5000"),
    ("notes", {"body": "ok", "visibility": "everyone"}, 422, "Not a valid choice"),
])
def test_garbage_into_staff_forms_is_a_4xx_and_stores_nothing(client, change, make_user, login, path, data,
                                                             status, message):
    objection = received(client, change)
    editor = login(make_user("editor"))
    events = db.session.scalar(select(func.count()).select_from(ObjectionEvent))
    data = {"csrf_token": editor.csrf(), "version": str(objection.version), **data}
    response = editor.post(f"/admin/objections/{objection.id}/{path}", data=data)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Objection, objection.id).status == "received"
    assert db.session.scalar(select(func.count()).select_from(ObjectionEvent)) == events


def test_roles_and_unknown_objections(client, change, make_user, login):
    objection = received(client, change)
    admin = login(make_user("admin"))
    assert admin.get("/admin/objections/").status_code == 200
    refused = admin.post(f"/admin/objections/{objection.id}/move",
                         data={"csrf_token": admin.csrf(), "to": "acknowledged", "version": "2"})
    assert refused.status_code == 403
    assert client.get("/admin/objections/").status_code == 302
    editor = login(make_user("editor"))
    assert editor.get("/admin/objections/999999").status_code == 404
    assert editor.get("/admin/objections/?change_set=999999").status_code == 404
    assert editor.get("/admin/objections/?change_set=abc").status_code == 400
    assert editor.get("/admin/objections/?status=lost").status_code == 400


def test_the_demo_has_one_objection_in_discussion_on_an_announced_change(demo_app):
    with demo_app.app_context():
        (objection,) = db.session.scalars(select(Objection)).all()
        assert objection.status == "in_discussion" and objection.reference.startswith("OBJ-")
        change = db.session.get(ChangeSet, objection.change_set_id)
        assert change.published_at is not None and change.effective_at > now_utc()
        assert objections.open_count(db.session, change) == 1
        assert [e.action for e in objection.events] == ["received", "moved", "note", "moved"]
        db.session.remove()


@pytest.mark.parametrize("path", ["/upcoming", "/subprocessors/kestrel-messaging",
                                  "/documents/privacy-policy/"])
def test_pages_of_an_announced_change_say_how_to_object(demo_client, path):
    html = demo_client.get(path).get_data(as_text=True)
    assert "You may object to this change until the end of" in html
    assert "That day is included." in html and "UTC)" in html
    assert 'href="/objections/' in html


def test_a_sub_processor_without_a_pending_change_says_nothing_about_objecting(demo_client):
    response = demo_client.get("/subprocessors/nordlicht-cloud")
    assert response.status_code == 200
    assert "You may object" not in response.get_data(as_text=True)
