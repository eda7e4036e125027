"""The proof keeps the words: every message is stored as handed to SendGrid, and what any one recipient
read is rebuilt from it, byte for byte the personalization the (fake) provider received."""

from __future__ import annotations

import email.parser
import email.policy

import pytest
from sqlalchemy import func, select

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import Delivery, MessageBody, Notice, SendAttempt
from registry.notify import messages
from registry.notify.dispatch import Dispatcher, Options
from registry.notify.senders import SendGridSender, personalize
from registry.services import notices, proof
from tests.fakes.sendgrid_server import API_KEY, FakeSendGrid
from tests.services.test_notices import make_document, make_subscriber, make_topics, scheduled_change


@pytest.fixture
def fake():
    with FakeSendGrid(keep_bodies=True) as server:
        yield server


@pytest.fixture
def sent(app, fake):
    """A material notice to 25 subscribers, sent in requests of 10 through the real sendgrid client."""
    topics = make_topics()
    for i in range(25):
        make_subscriber(f"reader-{i:02d}@example.com", topics)
    change_set = scheduled_change(material=True, document=make_document(), subprocessor="acme-mail",
                                  title="Retention «per category» & a new mail provider", now=now_utc())
    notice = notices.start_notice(db.session, change_set)
    db.session.commit()
    settings = app.config["REGISTRY"]
    sender = SendGridSender(api_key=API_KEY, host=fake.url, from_email=settings.mail_from, timeout=5.0)
    Dispatcher(db.session, sender, Options(request_size=10)).drain()
    return change_set, notice


def resolved(body: dict, personalization: dict) -> dict[str, str]:
    """What SendGrid makes of one personalization: every substitution key replaced in every part."""
    values = personalization.get("substitutions", {})
    parts = {c["type"]: c["value"] for c in body["content"]}
    return {"subject": personalize(body["subject"], values), "text": personalize(parts["text/plain"], values),
            "html": personalize(parts["text/html"], values)}


def test_what_each_recipient_read_is_rebuilt_byte_for_byte(sent, fake):
    _change_set, notice = sent
    received = {}
    for body in fake.bodies:
        for personalization in body["personalizations"]:
            received[personalization["custom_args"]["delivery_id"]] = (body, personalization)
    assert len(received) == 25 and len(fake.bodies) == 3
    rows = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)).all()
    hashes = set()
    for delivery in rows:
        body, personalization = received[str(delivery.id)]
        _delivery, stored, values = proof.sent_message(db.session, delivery.id)
        sent = messages.SentValues.from_json(values)
        rebuilt = messages.personalized(stored, sent)
        expected = resolved(body, personalization)
        for part in ("subject", "text", "html"):
            assert getattr(rebuilt, part).encode("utf-8") == expected[part].encode("utf-8")
        assert sent.substitutions == personalization["substitutions"]
        assert sent.headers == personalization["headers"]
        assert sent.substitutions[messages.PREFERENCES_KEY] in rebuilt.text  # the link, personalised
        hashes.add(stored.sha256)
    # One message, stored once, though three requests carried it; each request names it.
    assert db.session.scalar(select(func.count()).select_from(MessageBody)) == 1
    assert hashes == {db.session.get(Notice, notice.id).body_sha256}
    requests = db.session.scalars(select(SendAttempt).where(SendAttempt.notice_id == notice.id)).all()
    assert len(requests) == 3 and {r.message_sha256 for r in requests} == hashes
    assert sorted(int(i) for r in requests for i in r.personalizations) == sorted(d.id for d in rows)


def test_the_eml_is_that_message(sent, fake, make_user, login):
    _change_set, notice = sent
    delivery = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id)
                                  .order_by(Delivery.id)).first()
    [(body, personalization)] = [(b, p) for b in fake.bodies for p in b["personalizations"]
                                 if p["custom_args"]["delivery_id"] == str(delivery.id)]
    client = login(make_user("approver"))
    response = client.get(f"/admin/notices/deliveries/{delivery.id}/message.eml")
    assert response.status_code == 200 and response.mimetype == "message/rfc822"
    assert f'filename="delivery-{delivery.id}.eml"' in response.headers["Content-Disposition"]
    parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(response.data)
    expected = resolved(body, personalization)
    assert parsed["Subject"] == expected["subject"]
    assert parsed["To"] == delivery.email
    assert parsed["List-Unsubscribe"] == personalization["headers"]["List-Unsubscribe"]
    assert delivery.provider_message_id in parsed["Message-ID"]
    # The .eml is in wire form (CRLF line ends, each MIME part ending with one); the parts are the same.
    for subtype, part in (("plain", "text"), ("html", "html")):
        content = parsed.get_body((subtype,)).get_content().replace("\r\n", "\n")
        assert content == (expected[part] if expected[part].endswith("\n") else expected[part] + "\n")

    page = client.get(f"/admin/notices/deliveries/{delivery.id}/message").get_data(as_text=True)
    assert delivery.email in page and db.session.get(Notice, notice.id).body_sha256 in page
    frame = client.get(f"/admin/notices/deliveries/{delivery.id}/body.html")
    assert frame.status_code == 200 and "sandbox" in frame.headers["Content-Security-Policy"]


@pytest.mark.parametrize("role, status", [("editor", 403), ("admin", 200)])
def test_only_approvers_and_admins_open_a_recipients_mail(sent, make_user, login, role, status):
    _change_set, notice = sent
    delivery_id = db.session.scalar(select(Delivery.id).where(Delivery.notice_id == notice.id).limit(1))
    client = login(make_user(role))
    for path in ("message", "message.eml", "body.html"):
        assert client.get(f"/admin/notices/deliveries/{delivery_id}/{path}").status_code == status


def test_a_delivery_never_sent_has_no_message(app, make_user, login):
    client = login(make_user("approver"))
    assert client.get("/admin/notices/deliveries/999999/message.eml").status_code == 404
    assert client.get(f"/admin/notices/deliveries/{2**40}/message").status_code == 404
