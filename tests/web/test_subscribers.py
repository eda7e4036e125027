"""Staff subscriber pages: search, a subscriber's deliveries, topics, and the CSV import."""

import io

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import AuditEntry, ChangeSet, Delivery, Notice, Subscriber, Subscription, Topic
from registry.services import contacts, subscriptions

CSV = b"email,name,company\ndpo@customer.example,Ana,Customer Ltd\nbroken,,\nlegal@other.example,,\n"


@pytest.fixture
def topics(app):
    rows = [Topic(key="administrative", name="Administrative", is_administrative=True, position=0),
            Topic(key="documents", name="Document updates", is_default_on=True, position=1)]
    db.session.add_all(rows)
    db.session.commit()
    return rows


def upload(client, data: bytes, filename="contacts.csv"):
    # Encoded in memory: the test client would spool a large body to a temporary file it never closes.
    boundary, body = encode_multipart({"csrf_token": client.csrf(),
                                       "file": FileStorage(io.BytesIO(data), filename)})
    return client.post("/admin/subscribers/import", data=body,
                       content_type=f"multipart/form-data; boundary={boundary}")


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


@pytest.mark.parametrize(("role", "path", "status"), [
    ("editor", "/admin/subscribers/", 200),
    ("editor", "/admin/subscribers/topics", 200),
    ("editor", "/admin/subscribers/import", 403),
    ("editor", "/admin/subscribers/topics/new", 403),
    ("approver", "/admin/subscribers/import", 200),
    ("approver", "/admin/subscribers/topics/new", 403),
    ("admin", "/admin/subscribers/topics/new", 200),
    ("admin", "/admin/subscribers/import", 200),
])
def test_permissions(make_user, login, topics, role, path, status):
    assert login(make_user(role)).get(path).status_code == status


def test_anonymous_staff_pages_redirect_to_login(client):
    response = client.get("/admin/subscribers/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_search_by_email_and_status(make_user, login, topics):
    db.session.add_all([Subscriber(email="ana@customer.example", status="confirmed"),
                        Subscriber(email="bob@other.example", status="pending"),
                        Subscriber(email="100%_real@x.example", status="deleted")])
    db.session.commit()
    client = login(make_user("editor"))
    html = client.get("/admin/subscribers/?q=CUSTOMER").get_data(as_text=True)
    assert "ana@customer.example" in html and "bob@other.example" not in html
    html = client.get("/admin/subscribers/?status=pending").get_data(as_text=True)
    assert "bob@other.example" in html and "ana@customer.example" not in html
    html = client.get("/admin/subscribers/?q=%25_").get_data(as_text=True)  # LIKE wildcards are literal
    assert "100%_real@x.example" in html and "ana@customer.example" not in html
    assert client.get("/admin/subscribers/?status=nonsense").status_code == 400
    assert client.get("/admin/subscribers/?q=%00").status_code == 400
    assert client.get("/admin/subscribers/?page=-1").status_code == 400


def test_a_subscriber_page_shows_topics_and_deliveries(make_user, login, topics):
    subscriber = Subscriber(email="ana@customer.example", status="confirmed", source="import")
    change_set = ChangeSet(title="Change", status="in_notice", published_at=now_utc())
    db.session.add_all([subscriber, change_set])
    db.session.flush()
    subscriptions.set_choices(db.session, subscriber, {topics[0].id: True, topics[1].id: False}, now_utc())
    notice = Notice(change_set_id=change_set.id, subject="Notice of a new sub-processor")
    db.session.add(notice)
    db.session.flush()
    db.session.add(Delivery(notice_id=notice.id, subscriber_id=subscriber.id, email=subscriber.email,
                            topic_id=topics[0].id, status="sent", sent_at=now_utc(),
                            provider_message_id="msg-123", last_event="delivered"))
    db.session.commit()
    html = login(make_user("editor")).get(f"/admin/subscribers/{subscriber.id}").get_data(as_text=True)
    for text in ("Notice of a new sub-processor", "msg-123", "delivered", "status-confirmed", "import"):
        assert text in html
    assert login(make_user("editor")).get("/admin/subscribers/1000000000").status_code == 404


def test_staff_can_tell_whether_an_erased_address_was_told(make_user, login, topics):
    """After deletion only a keyed hash of the address remains; typing the address still finds it."""
    subscriber = Subscriber(email="ana@customer.example", status="confirmed", source="import")
    change_set = ChangeSet(title="Kestrel added", status="in_notice", published_at=now_utc())
    db.session.add_all([subscriber, change_set])
    db.session.flush()
    notice = Notice(change_set_id=change_set.id, subject="Notice of a new sub-processor")
    db.session.add(notice)
    db.session.flush()
    db.session.add(Delivery(notice_id=notice.id, subscriber_id=subscriber.id, email=subscriber.email,
                            topic_id=topics[0].id, status="sent", sent_at=now_utc(), last_event="delivered"))
    subscriptions.delete_subscription(db.session, subscriber)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Delivery).where(
        Delivery.email == "ana@customer.example")) == 0
    staff = login(make_user("editor"))
    assert "Was this address told?" in staff.get("/admin/subscribers/").get_data(as_text=True)
    found = staff.get("/admin/subscribers/told?email=ANA@customer.example").get_data(as_text=True)
    assert "Notice of a new sub-processor" in found and "Kestrel added" in found and "delivered" in found
    nobody = staff.get("/admin/subscribers/told?email=bob@customer.example").get_data(as_text=True)
    assert "No notice was sent to this address." in nobody
    for garbage in ("not-an-address", "a@b", "z\u202eoe@example.com"):
        refused = staff.get("/admin/subscribers/told", query_string={"email": garbage})
        assert refused.status_code == 400 and 'id="email-error"' in refused.get_data(as_text=True), garbage
    too_long = staff.get("/admin/subscribers/told", query_string={"email": "x" * 400})
    assert too_long.status_code == 400 and "longer than 320" in too_long.get_data(as_text=True)


def test_import_reports_rejected_rows_is_idempotent_and_audited(make_user, login, topics):
    client = login(make_user("approver"))
    first = upload(client, CSV)
    assert first.status_code == 200
    html = first.get_data(as_text=True)
    assert "<dt>Created</dt><dd>2</dd>" in html
    assert "<td>3</td><td>This address has no @" in html
    second = upload(client, CSV).get_data(as_text=True)
    assert "<dt>Created</dt><dd>0</dd>" in second and "<dt>Unchanged</dt><dd>2</dd>" in second
    assert count(Subscriber) == 2
    entries = list(db.session.scalars(select(AuditEntry).where(AuditEntry.action == "subscribers.import")
                                      .order_by(AuditEntry.id)))
    assert [e.after["created"] for e in entries] == [2, 0]
    assert entries[0].after["filename"] == "contacts.csv"
    # Imported contacts get Administrative whatever their other choices.
    assert count(Subscription) == 4


@pytest.mark.parametrize(("data", "status", "message"), [
    (b"\x00\x01\x02binary", 400, "binary file"),
    ("email\nzoë@example.com\n".encode("utf-16"), 400, "binary file"),
    ("email\nzoë@example.com\n".encode("latin-1"), 400, "not UTF-8"),
    (b"", 400, "empty"),
    (b"name\nAna\n", 400, "header"),
    (b"email\n" + b"x@example.com\n" * 400_000, 413, "larger than 5 MB"),
])
def test_import_refuses_files_it_cannot_read(make_user, login, topics, data, status, message):
    response = upload(login(make_user("admin")), data)
    assert response.status_code == status
    assert message in response.get_data(as_text=True)
    assert count(Subscriber) == 0


def test_import_without_a_file(make_user, login, topics):
    client = login(make_user("admin"))
    response = client.post("/admin/subscribers/import", data={"csrf_token": client.csrf()})
    assert response.status_code == 400 and "Choose a CSV file" in response.get_data(as_text=True)


@pytest.mark.parametrize("extra", [1, 100_000])  # read and refused; refused from Content-Length alone
def test_an_oversized_upload_is_refused(make_user, login, topics, extra):
    client = login(make_user("admin"))
    response = upload(client, b"x" * (contacts.MAX_BYTES + extra))
    assert response.status_code == 413
    assert "larger than 5 MB" in response.get_data(as_text=True)


def test_staff_create_a_topic_with_the_new_topic_rule(make_user, login, topics):
    opted_out = Subscriber(email="nothing@example.com", status="confirmed")
    regular = Subscriber(email="regular@example.com", status="confirmed")
    db.session.add_all([opted_out, regular])
    db.session.flush()
    subscriptions.set_choices(db.session, opted_out, {topics[0].id: True, topics[1].id: False}, now_utc())
    subscriptions.set_choices(db.session, regular, {topics[0].id: True, topics[1].id: True}, now_utc())
    db.session.commit()
    client = login(make_user("admin"))
    response = client.post("/admin/subscribers/topics/new", data={
        "csrf_token": client.csrf(), "key": "security", "name": "Security advisories",
        "description": "Incidents.", "is_default_on": "on"})
    assert response.status_code == 303
    topic = db.session.scalar(select(Topic).where(Topic.key == "security"))
    rows = dict(db.session.execute(select(Subscription.subscriber_id, Subscription.is_subscribed)
                                   .where(Subscription.topic_id == topic.id)).all())
    assert rows == {opted_out.id: False, regular.id: True}
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.object_type == "topic")) == \
        "topic.create"
    assert "Security advisories" in client.get("/admin/subscribers/topics").get_data(as_text=True)


@pytest.mark.parametrize(("form", "message"), [
    ({"key": "Bad Key", "name": "x"}, "topic key"),
    ({"key": "documents", "name": "x"}, "already exists"),
    ({"key": "ok", "name": ""}, "Give the topic a name"),
    ({"key": "ok", "name": "x", "position": "abc"}, "whole number"),
    ({"key": "document:missing", "name": "x"}, "no document"),
    ({"key": "ok\x00", "name": "x\x00"}, "topic key"),
])
def test_topic_form_errors(make_user, login, topics, form, message):
    client = login(make_user("admin"))
    response = client.post("/admin/subscribers/topics/new", data={"csrf_token": client.csrf(), **form})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(Topic) == 2


def test_edit_a_topic(make_user, login, topics):
    client = login(make_user("admin"))
    url = f"/admin/subscribers/topics/{topics[1].id}/edit"
    assert client.get(url).status_code == 200
    response = client.post(url, data={"csrf_token": client.csrf(), "name": "Documents", "description": "",
                                      "position": "5"})
    assert response.status_code == 303
    db.session.refresh(topics[1])
    assert (topics[1].name, topics[1].is_default_on, topics[1].position) == ("Documents", False, 5)
    assert client.post(url, data={"csrf_token": client.csrf(), "name": ""}).status_code == 422
    assert client.get("/admin/subscribers/topics/1000000000/edit").status_code == 404
