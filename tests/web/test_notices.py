"""Staff notices pages: the list, proof of notice and its exports, and the local mailbox."""

from __future__ import annotations

import csv
import io
import json
import shutil
from datetime import UTC, timedelta

import pytest
from sqlalchemy import insert, select

from registry.extensions import db
from registry.models import Delivery, Notice, SendAttempt
from registry.notify import messages
from registry.notify.senders import OutboxSender
from registry.services import notices
from tests.services.test_notices import NOW, make_document, make_subscriber, make_topics, scheduled_change


@pytest.fixture
def staff(login, make_user):
    return login(make_user("editor"))


@pytest.fixture
def dispatched(app):
    """A material notice to 250 recipients: 200 sent, 20 suppressed, 10 failed, 20 still queued."""
    topics = make_topics()
    make_subscriber("first@example.com", topics)
    change_set = scheduled_change(material=True, document=make_document(), title="Autumn update")
    notice = notices.start_notice(db.session, change_set, now=NOW)
    db.session.execute(insert(Delivery), [
        {"notice_id": notice.id, "email": f"r{i:03d}@example.com", "status": "queued", "attempts": 0,
         "is_resent": False} for i in range(249)])
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)
                                   .order_by(Delivery.id)))
    for i, row in enumerate(rows):
        if i < 200:
            row.status, row.sent_at = "sent", NOW + timedelta(minutes=1)
            row.provider_message_id = f"msg-{i // 100}"
            row.last_event, row.last_event_at = "delivered", NOW + timedelta(minutes=2)
        elif i < 220:
            row.status = "suppressed"
        elif i < 230:
            row.status, row.error = "failed", "400: invalid address"
    rows[0].is_resent = True
    rows[1].email = "=HYPERLINK(evil)@example.com"
    messages.notice_batch_message(db.session, notice)
    db.session.commit()
    return change_set, notice


def test_anonymous_and_unverified_staff_are_sent_to_sign_in(client, login, make_user, dispatched):
    change_set, _notice = dispatched
    base = f"/admin/notices/{change_set.id}/"
    urls = ["/admin/notices/", base, f"{base}proof.csv", f"{base}proof.json", "/admin/notices/mailbox/"]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]
    unverified = login(make_user("approver"), verified=False)
    for url in urls:
        response = unverified.get(url)
        assert response.status_code == 302 and "two-factor" in response.headers["Location"]


def test_index_lists_notices_with_counts(staff, dispatched):
    change_set, _notice = dispatched
    page = staff.get("/admin/notices/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Autumn update" in html
    assert "230 of 250 settled" in html
    assert "250 eligible · 200 sent · 20 suppressed · 10 failed · 20 pending" in html
    assert f'<progress class="progress" id="progress-{change_set.id}" max="250" value="230"' in html
    assert f"/admin/notices/{change_set.id}/" in html
    assert page.headers["Cache-Control"] == "no-store"


def test_index_when_there_is_nothing(staff):
    assert "No notice has been sent yet" in staff.get("/admin/notices/").get_data(as_text=True)


def test_proof_page_reconciles_and_lists_recipients(staff, dispatched):
    change_set, notice = dispatched
    html = staff.get(f"/admin/notices/{change_set.id}/").get_data(as_text=True)
    assert "<strong>250</strong> eligible = <strong>200</strong> sent + <strong>20</strong> suppressed + " \
           "<strong>10</strong> failed + <strong>20</strong> pending" in html
    assert "Every recipient is accounted for." in html
    assert notice.body_sha256 in html
    assert "Page 1 of 3" in html and "msg-0" in html and "400: invalid address" not in html
    assert "resent" in html
    assert NOW.isoformat() in html  # the notice start, also in UTC
    page3 = staff.get(f"/admin/notices/{change_set.id}/?page=3").get_data(as_text=True)
    assert "400: invalid address" in page3 and "Page 3 of 3" in page3


def test_proof_filters(staff, dispatched):
    change_set, _notice = dispatched
    failed = staff.get(f"/admin/notices/{change_set.id}/?status=failed").get_data(as_text=True)
    assert "10 recipients match" in failed and "400: invalid address" in failed
    one = staff.get(f"/admin/notices/{change_set.id}/?q=R007").get_data(as_text=True)
    assert "1 recipient match" in one and "r007@example.com" in one
    none = staff.get(f"/admin/notices/{change_set.id}/?q=%25").get_data(as_text=True)
    assert "0 recipients match" in none


def test_proof_flags_what_does_not_reconcile(staff, dispatched):
    change_set, notice = dispatched
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)
                                   .order_by(Delivery.id)))
    rows[0].status = "lost"
    rows[1].sent_at = None
    db.session.get(Notice, notice.id).dispatch_completed_at = NOW
    db.session.commit()
    html = staff.get(f"/admin/notices/{change_set.id}/").get_data(as_text=True)
    assert "These numbers do not reconcile" in html
    assert "unknown status &#39;lost&#39;" in html
    assert "yet 20 deliveries are not settled" in html
    assert "1 sent deliveries have no acceptance time" in html


def test_proof_completed_after_settling(staff, dispatched):
    change_set, notice = dispatched
    for row in db.session.scalars(select(Delivery).where(Delivery.status == "queued")):
        row.status, row.sent_at = "sent", NOW + timedelta(minutes=3)
    notices.settle(db.session, [notice.id], now=NOW + timedelta(minutes=5))
    db.session.commit()
    body = staff.get(f"/admin/notices/{change_set.id}/proof.json").get_data(as_text=True)
    proof = json.loads(body)["proof"]
    assert proof["change_set"]["notice_completed_at"] == (NOW + timedelta(minutes=5)).isoformat()
    assert proof["notices"][0]["dispatch_completed_at"] == (NOW + timedelta(minutes=5)).isoformat()
    assert proof["totals"] == {"eligible": 250, "sent": 220, "suppressed": 20, "failed": 10, "pending": 0}
    assert proof["reconciled"] is True


def test_csv_export_streams_every_recipient(staff, dispatched):
    change_set, _notice = dispatched
    response = staff.get(f"/admin/notices/{change_set.id}/proof.csv")
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "text/csv"
    assert f"proof-of-notice-{change_set.id}.csv" in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert len(rows) == 250
    assert {r["status"] for r in rows} == {"sent", "suppressed", "failed", "queued"}
    sent = next(r for r in rows if r["status"] == "sent")
    assert sent["provider_message_id"].startswith("msg-") and sent["sent_at"]
    assert sent["last_event"] == "delivered"
    # A formula in a cell is defused for spreadsheets.
    assert any(r["email"] == "'=HYPERLINK(evil)@example.com" for r in rows)
    assert sum(r["resent"] == "True" for r in rows) == 1


def test_json_export(staff, dispatched):
    change_set, notice = dispatched
    response = staff.get(f"/admin/notices/{change_set.id}/proof.json")
    assert response.status_code == 200 and response.is_streamed
    data = json.loads(response.get_data(as_text=True))
    assert data["proof"]["totals"] == {"eligible": 250, "sent": 200, "suppressed": 20, "failed": 10,
                                       "pending": 20}
    assert data["proof"]["notices"][0]["body_sha256"] == notice.body_sha256
    assert data["proof"]["change_set"]["notice_started_at"] == NOW.isoformat()
    assert len(data["recipients"]) == 250
    assert set(data["recipients"][0]) == {
        "delivery_id", "notice_id", "email", "status", "provider_message_id", "sent_at", "last_event",
        "last_event_at", "attempts", "resent", "error", "message_sha256"}


@pytest.mark.parametrize("path", ["/admin/notices/999999/", "/admin/notices/99999999999999999999/",
                                  "/admin/notices/999999/proof.csv", "/admin/notices/999999/proof.json",
                                  "/admin/notices/-1/", "/admin/notices/abc/", "/admin/notices/%00/"])
def test_unknown_change_sets_are_404(staff, dispatched, path):
    response = staff.get(path)
    assert response.status_code == 404


def test_a_change_set_without_a_notice_is_404(staff, app):
    from registry.services import publishing

    change_set = publishing.create_change_set(db.session, title="Draft")
    db.session.commit()
    assert staff.get(f"/admin/notices/{change_set.id}/").status_code == 404


GARBAGE = ["", "0", "-1", "abc", "1e9", "99999999999999999999", "%00", "\x00", "a" * 5000, "ü日本", "[]",
           "<script>", "failed\x00", " sent"]


@pytest.mark.parametrize("name", ["page", "status", "q"])
@pytest.mark.parametrize("value", GARBAGE)
def test_proof_parameters_survive_garbage(staff, dispatched, name, value):
    change_set, _notice = dispatched
    response = staff.get(f"/admin/notices/{change_set.id}/", query_string={name: value})
    assert response.status_code in (200, 400, 404), response.status_code
    if response.status_code >= 400:
        body = response.get_data(as_text=True)
        assert "Traceback" not in body and len(body) > 50


# -- the mailbox -----------------------------------------------------------------------------------

@pytest.fixture
def outbox(app):
    folder = app.config["REGISTRY"].instance_path / "outbox"
    shutil.rmtree(folder, ignore_errors=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def send_to_outbox(folder, count: int = 3) -> list[str]:
    """Real notices through the development sender, as `flask notices dispatch` writes them."""
    topics = make_topics()
    people = [make_subscriber(f"reader{i}@example.com", topics) for i in range(count)]
    change_set = scheduled_change(material=True, document=make_document(), title="Mailbox <b>notice</b>")
    notice = notices.start_notice(db.session, change_set, now=NOW)
    batch = messages.notice_batch_message(db.session, notice)
    rows = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id).order_by(Delivery.id))
    recipients = [messages.recipient(d.id, d.email, d.subscriber_id, d.topic_id) for d in rows]
    OutboxSender(folder, from_email="notices@example.com").send(batch, recipients)
    db.session.commit()
    return [p.email for p in people]


def mail_names(folder) -> list[str]:
    return sorted((p.name for p in folder.glob("*.eml")), reverse=True)


def test_mailbox_lists_newest_first_and_opens_a_message(staff, outbox):
    send_to_outbox(outbox)
    names = mail_names(outbox)
    page = staff.get("/admin/notices/mailbox/").get_data(as_text=True)
    assert "3 messages." in page
    assert page.index(names[0]) < page.index(names[1]) < page.index(names[2])
    assert "Notice of change: Mailbox &lt;b&gt;notice&lt;/b&gt;" in page
    message = staff.get(f"/admin/notices/mailbox/{names[0]}")
    assert message.status_code == 200
    html = message.get_data(as_text=True)
    assert "List-Unsubscribe" in html and "List-Unsubscribe-Post" in html
    assert '<a href="http://localhost/subscriptions/unsubscribe/' in html
    assert '<a href="http://localhost/subscriptions/preferences/' in html
    assert "-preferences_url-" not in html
    assert f'src="/admin/notices/mailbox/{names[0]}/body.html"' in html and "sandbox=" in html
    # The one-click form posts to this site, as a mail client would.
    assert 'method="post" action="http://localhost/subscriptions/unsubscribe/' in html


def test_the_html_part_is_sanitised_and_framed_safely(staff, outbox):
    send_to_outbox(outbox, count=1)
    (name,) = mail_names(outbox)
    response = staff.get(f"/admin/notices/mailbox/{name}/body.html")
    assert response.status_code == 200
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "script-src" not in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    html = response.get_data(as_text=True)
    assert 'target="_blank"' in html and "Privacy Policy" in html and "<title" not in html


def test_hostile_mail_is_defused(staff, outbox):
    outbox.mkdir(parents=True)
    name = "20260101T000000000000Z-1-000001.eml"
    (outbox / name).write_bytes(
        b"From: x@example.com\r\nTo: y@example.com\r\nSubject: <script>alert(1)</script>\r\n"
        b"List-Unsubscribe: <javascript:alert(1)>\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n"
        b"see javascript:alert(1) and https://ok.example.com/x\r\n--b\r\nContent-Type: text/html\r\n\r\n"
        b"<p onclick=alert(1)>hi</p><script>alert(2)</script><a href=\"javascript:alert(3)\">x</a>"
        b"<img src=https://tracker.example.com/p.gif><iframe src=https://evil.example.com></iframe>\r\n--b--\r\n")
    page = staff.get(f"/admin/notices/mailbox/{name}").get_data(as_text=True)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page
    assert '<a href="https://ok.example.com/x"' in page
    assert "Send the one-click unsubscribe" not in page
    body = staff.get(f"/admin/notices/mailbox/{name}/body.html").get_data(as_text=True)
    for bad in ("<script", "onclick", "javascript:", "<img", "<iframe", "alert(2)"):
        assert bad not in body
    assert "<p>hi</p>" in body


def test_broken_mail_files_do_not_break_the_mailbox(staff, outbox):
    outbox.mkdir(parents=True)
    name = "20260101T000000000000Z-1-000002.eml"
    (outbox / name).write_bytes(b"\xff\xfe\x00garbage without headers\r\n\r\n\x00\x01")
    (outbox / "20260101T000000000000Z-1-000003.eml").mkdir()
    assert staff.get("/admin/notices/mailbox/").status_code == 200
    assert staff.get(f"/admin/notices/mailbox/{name}").status_code == 200
    assert staff.get(f"/admin/notices/mailbox/{name}/body.html").status_code == 200
    assert staff.get("/admin/notices/mailbox/20260101T000000000000Z-1-000003.eml").status_code == 404


def test_an_empty_or_missing_outbox(staff, outbox):
    page = staff.get("/admin/notices/mailbox/")
    assert page.status_code == 200 and "No mail yet" in page.get_data(as_text=True)


@pytest.mark.parametrize("name", [
    "..%2Fsecret_key", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "secret_key", "registry.db",
    ".20260101T000000000000Z-1-000001.eml.tmp", "20260101T000000000000Z-1-000001.eml%00",
    "20260101T000000000000Z-1-000001.EML", "20260101T000000000000Z-1-999999.eml", "%00", "a" * 300,
    "20260101T000000000000Z-1-000001.eml%2F..%2F..%2Fsecret_key",
])
def test_only_outbox_names_can_be_opened(staff, outbox, app, name):
    outbox.mkdir(parents=True)
    (outbox / "secret_key").write_text("do not show")
    (outbox / ".20260101T000000000000Z-1-000001.eml.tmp").write_text("From: a@b.c\r\n\r\npartial")
    for suffix in ("", "/body.html"):
        response = staff.get(f"/admin/notices/mailbox/{name}{suffix}")
        assert response.status_code == 404, (name, suffix)
        assert "do not show" not in response.get_data(as_text=True)


@pytest.mark.parametrize("value", GARBAGE)
def test_mailbox_page_parameter_survives_garbage(staff, outbox, value):
    response = staff.get("/admin/notices/mailbox/", query_string={"page": value})
    assert response.status_code in (200, 400, 404)
    if response.status_code >= 400:
        assert len(response.get_data(as_text=True)) > 50


def test_mailbox_pages(staff, outbox):
    outbox.mkdir(parents=True)
    for i in range(120):
        (outbox / f"20260101T0000{i:08d}Z-1-{i:06d}.eml").write_bytes(
            f"From: a@example.com\r\nTo: r{i}@example.com\r\nSubject: Mail {i}\r\n\r\nBody".encode())
    first = staff.get("/admin/notices/mailbox/").get_data(as_text=True)
    assert "120 messages." in first and "Page 1 of 3" in first and "Mail 119" in first
    third = staff.get("/admin/notices/mailbox/?page=3").get_data(as_text=True)
    assert "Mail 0<" in third and "Mail 119" not in third
    assert staff.get("/admin/notices/mailbox/?page=4").status_code == 404


def test_the_proof_shows_and_exports_the_plans_history(login, make_user, app):
    """First announced date, who approved and scheduled it, each move with its reason and time."""
    from registry.models import ChangeSet
    from registry.services import publishing, workflow

    topics = make_topics()
    make_subscriber("reader@example.com", topics)
    editor, approver = make_user("editor"), make_user("approver")
    change_set = publishing.create_change_set(db.session, title="History", summary="S.",
                                              created_by_id=editor.id)
    publishing.draft_document_version(db.session, change_set, make_document(), source_md="# H",
                                      summary="What.", is_material=True)
    workflow.submit(db.session, change_set, actor=editor, now=NOW)
    workflow.approve(db.session, change_set, actor=approver, now=NOW)
    earliest = publishing.earliest_effective_for(db.session, change_set, NOW).astimezone(UTC)
    workflow.schedule(db.session, change_set, actor=approver, effective_at=earliest, now=NOW,
                      legal_timezone="Europe/Warsaw")
    db.session.commit()
    later = NOW + timedelta(days=3)
    publishing.postpone_overdue(db.session, now=later)
    db.session.commit()
    change_set = db.session.get(ChangeSet, change_set.id)

    client = login(make_user("approver", "auditor@example.com"))
    page = client.get(f"/admin/notices/{change_set.id}/").get_data(as_text=True)
    assert "The plan's history" in page
    assert "First announced" in page and "Date moved" in page and "the notice is still being sent" in page
    assert f"Approved by {approver.email}" in page and f"Scheduled by {approver.email}" in page
    exported = json.loads(client.get(f"/admin/notices/{change_set.id}/proof.json").data)
    history = exported["proof"]["plan_history"]
    assert [step["kind"] for step in history] == ["announced", "moved"]
    assert history[0]["effective_at"] == earliest.isoformat() and history[0]["approved_by"] == approver.email
    assert history[1]["previous_effective_at"] == earliest.isoformat()
    assert history[1]["effective_at"] == change_set.effective_at.isoformat() != earliest.isoformat()
    assert history[1]["at"] == later.isoformat() and history[1]["reason"] == "the notice is still being sent"


def test_the_csv_names_the_message_each_recipient_was_sent(staff, dispatched):
    change_set, notice = dispatched
    first = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)
                               .order_by(Delivery.id)).first()
    db.session.add(messages.MessageBody(sha256="a" * 64, subject="s", text="t", html="h"))
    first.claim_token = "t1"
    db.session.add(SendAttempt(claim_token="t1", notice_id=notice.id, first_delivery_id=first.id,
                               last_delivery_id=first.id, recipients=1, message_sha256="a" * 64,
                               personalizations={str(first.id): {"substitutions": {}, "headers": {}}}))
    db.session.commit()
    rows = list(csv.DictReader(io.StringIO(staff.get(f"/admin/notices/{change_set.id}/proof.csv")
                                           .get_data(as_text=True))))
    assert rows[0]["message_sha256"] == "a" * 64 and rows[1]["message_sha256"] == ""


def test_proof_says_while_recipients_are_still_being_written(staff, dispatched):
    change_set, notice = dispatched
    path = f"/admin/notices/{change_set.id}/"
    assert "recipients still being written" not in staff.get(path).get_data(as_text=True)
    notice.is_expanding = True
    db.session.commit()
    assert "recipients still being written" in staff.get(path).get_data(as_text=True)
