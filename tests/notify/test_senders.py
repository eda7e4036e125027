"""The three senders behind one interface, and how SendGrid's answers are classified."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import Delivery, Notice
from registry.notify import messages
from registry.notify.dispatch import Dispatcher
from registry.notify.senders import (
    OutboxSender,
    PermanentFailure,
    RecordingSender,
    SendGridSender,
    TemporaryFailure,
    mail_send_body,
    retry_after_seconds,
    sender_for,
)
from tests.fakes.sendgrid_server import API_KEY
from tests.notify.factories import notice_with_deliveries


def notice_parts(count: int):
    dispatch = notice_with_deliveries(db.session, count)
    notice = db.session.get(Notice, dispatch.notice_id)
    batch = messages.notice_batch_message(db.session, notice)
    rows = db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id).order_by(Delivery.id))
    recipients = [messages.recipient(d.id, d.email, d.subscriber_id, d.topic_id) for d in rows]
    return batch, recipients


def test_outbox_writes_one_valid_eml_per_recipient_with_unsubscribe_headers(app, tmp_path):
    batch, recipients = notice_parts(3)
    sender = OutboxSender(tmp_path / "outbox", from_email="notices@example.com", from_name="Registry")
    result = sender.send(batch, recipients)
    assert result.message_id.startswith("outbox-")
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.suffix for f in files] == [".eml"] * 3  # no partial files left behind
    for path, recipient in zip(files, recipients, strict=True):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert message["To"] == recipient.email
        assert message["From"] == "Registry <notices@example.com>"
        assert message["Subject"] == batch.subject
        unsubscribe = recipient.substitutions[messages.UNSUBSCRIBE_KEY]
        assert message["List-Unsubscribe"].startswith(f"<{unsubscribe}>, <mailto:")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        # On the wire the URL stands as it is: mail clients read no RFC 2047 encoded words here.
        assert f"List-Unsubscribe: <{unsubscribe}>, <mailto:".encode() in path.read_bytes()
        assert message.get_content_type() == "multipart/alternative"
        text = message.get_body(("plain",)).get_content()
        html = message.get_body(("html",)).get_content()
        for body in (text, html):
            assert messages.UNSUBSCRIBE_KEY not in body and messages.PREFERENCES_KEY not in body
        assert recipient.substitutions[messages.PREFERENCES_KEY] in text
        assert message["X-Registry-Delivery-Id"] == recipient.custom_args["delivery_id"]


def test_the_dispatcher_fills_the_outbox_in_development(app, tmp_path):
    notice_with_deliveries(db.session, 4)
    sender = sender_for(app.config["REGISTRY"].with_overrides(mail_sender="outbox", instance_path=tmp_path))
    assert isinstance(sender, OutboxSender)
    assert Dispatcher(db.session, sender).drain().sent == 4
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 4


def test_sender_for_chooses_by_setting(app):
    settings = app.config["REGISTRY"]
    assert isinstance(sender_for(settings), RecordingSender)
    chosen = sender_for(settings.with_overrides(mail_sender="sendgrid", sendgrid_api_key="SG.x"))
    assert isinstance(chosen, SendGridSender)


def test_mail_send_body_has_one_personalization_per_recipient(app):
    batch, recipients = notice_parts(2)
    body = mail_send_body(batch, recipients, from_email="notices@example.com")
    assert body["from"] == {"email": "notices@example.com"}
    assert [p["to"] for p in body["personalizations"]] == [[{"email": r.email}] for r in recipients]
    first = body["personalizations"][0]
    assert first["custom_args"] == {"delivery_id": recipients[0].custom_args["delivery_id"]}
    assert set(first["headers"]) == {"List-Unsubscribe", "List-Unsubscribe-Post"}
    assert set(first["substitutions"]) == {messages.PREFERENCES_KEY, messages.UNSUBSCRIBE_KEY,
                                           messages.OBJECTION_KEY}
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    with pytest.raises(ValueError):
        mail_send_body(batch, recipients * 501, from_email="notices@example.com")


@pytest.mark.parametrize(("answer", "kind", "unknown"), [
    ("429:7", TemporaryFailure, False), ("500", TemporaryFailure, False), ("503", TemporaryFailure, False),
    ("504", TemporaryFailure, True), ("408", TemporaryFailure, True), ("garbage", TemporaryFailure, True),
    ("drop", TemporaryFailure, True), ("400", PermanentFailure, None), ("413", PermanentFailure, None),
])
def test_answers_are_classified(app, fake, sendgrid, answer, kind, unknown):
    batch, recipients = notice_parts(1)
    fake.script(answer)
    with pytest.raises(kind) as raised:
        sendgrid.send(batch, recipients)
    if unknown is not None:
        assert raised.value.outcome_unknown is unknown
    if answer == "429:7":
        assert raised.value.retry_after == 7.0
    assert fake.count() == 0


def test_a_400_naming_personalizations_can_be_split_and_any_other_cannot(app, fake, sendgrid):
    batch, recipients = notice_parts(2)
    bad = recipients[1].__class__(email="zoë@example.com", substitutions=recipients[1].substitutions,
                                  headers=recipients[1].headers, custom_args=recipients[1].custom_args)
    with pytest.raises(PermanentFailure) as raised:
        sendgrid.send(batch, [recipients[0], bad])
    assert raised.value.per_recipient is True
    assert raised.value.reason == "HTTP 400: Does not contain a valid address."
    # A 400 that names no personalization (the request as a whole) is not helped by splitting.
    fake.script("400")
    with pytest.raises(PermanentFailure) as raised:
        sendgrid.send(batch, recipients)
    assert raised.value.per_recipient is False
    assert fake.count() == 0


def test_a_wrong_api_key_is_a_permanent_failure(app, fake):
    batch, recipients = notice_parts(1)
    sender = SendGridSender(api_key="SG.wrong", host=fake.url, from_email="notices@example.com")
    with pytest.raises(PermanentFailure, match="HTTP 401"):
        sender.send(batch, recipients)


def test_a_refused_connection_is_known_not_sent(app):
    batch, recipients = notice_parts(1)
    sender = SendGridSender(api_key=API_KEY, host="http://127.0.0.1:9", from_email="notices@example.com")
    with pytest.raises(TemporaryFailure) as raised:
        sender.send(batch, recipients)
    assert raised.value.outcome_unknown is False


def test_retry_after_accepts_seconds_and_http_dates_and_ignores_garbage():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("-5") == 0.0
    assert retry_after_seconds("1e400") == 24 * 3600.0
    for garbage in (None, "", "soon", "nan", "\x00"):
        assert retry_after_seconds(garbage) is None
