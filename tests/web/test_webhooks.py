"""The SendGrid Event Webhook: signatures checked as SendGrid makes them, stored at once, never a 500."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from registry.domain.provider_events import PROVIDER_EVENTS
from registry.extensions import db
from registry.models import Delivery, Suppression, WebhookBatch, WebhookEvent
from registry.notify import webhook
from registry.services import notices
from tests.services.test_notices import NOW, make_document, make_subscriber, make_topics, scheduled_change

URL = "/webhooks/sendgrid"
SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
PRIVATE_KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def public_key_setting(private_key) -> str:
    """What SendGrid shows under Mail Settings: the base64 DER public key, without PEM armour."""
    der = private_key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def signed(body: str | bytes, *, key=PRIVATE_KEY, timestamp: int | None = None) -> dict[str, str]:
    """Headers as SendGrid sends them: an ECDSA P-256 / SHA-256 signature over timestamp + body."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.encode() if isinstance(body, str) else body
    signature = key.sign(stamp.encode() + raw, ec.ECDSA(hashes.SHA256()))
    return {SIGNATURE: base64.b64encode(signature).decode(), TIMESTAMP: stamp,
            "Content-Type": "application/json"}


@pytest.fixture
def hook(app, monkeypatch):
    """The app with a webhook key configured (restored after the test)."""
    key = public_key_setting(PRIVATE_KEY)
    configured = app.config["REGISTRY"].with_overrides(sendgrid_webhook_public_key=key)
    monkeypatch.setitem(app.config, "REGISTRY", configured)
    return app.test_client()


@pytest.fixture
def sending(app):
    topics = make_topics()
    for i in range(3):
        make_subscriber(f"person{i}@example.com", topics)
    change_set = scheduled_change(material=True, document=make_document())
    notice = notices.start_notice(db.session, change_set, now=NOW)
    query = select(Delivery).where(Delivery.notice_id == notice.id).order_by(Delivery.id)
    rows = list(db.session.scalars(query))
    for row in rows:
        row.status, row.provider_message_id = "sending", "batch-1"
    db.session.commit()
    return change_set, rows


def events_for(rows, kind="delivered", prefix="ev") -> str:
    return json.dumps([{"email": r.email, "event": kind, "sg_event_id": f"{prefix}-{r.id}",
                        "sg_message_id": "batch-1.recvd-1", "timestamp": int(time.time()),
                        "delivery_id": str(r.id)} for r in rows])


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_valid_events_are_stored_at_once_and_the_worker_applies_them(hook, sending):
    change_set, rows = sending
    body = events_for(rows)
    response = hook.post(URL, data=body, headers=signed(body))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {"received": 3}
    # The request only stored the batch, exactly as it came.
    [batch] = db.session.scalars(select(WebhookBatch))
    assert batch.body == body and batch.events == 3 and batch.applied_at is None
    assert count(WebhookEvent) == 0
    assert webhook.apply_stored_batches(db.session) == 1
    db.session.expire_all()
    assert {(r.status, r.last_event) for r in rows} == {("sent", "delivered")}
    assert change_set.notice_completed_at is not None
    assert batch.outcome == {"applied": 3, "duplicates": 0, "ignored": 0, "suppressed": 0,
                             "ignored_because": {}}


def test_bounce_suppresses_the_address(hook, sending):
    _change_set, rows = sending
    body = events_for(rows[:1], kind="bounce")
    assert hook.post(URL, data=body, headers=signed(body)).status_code == 200
    webhook.apply_stored_batches(db.session)
    assert list(db.session.scalars(select(Suppression.email))) == [rows[0].email]


def test_replayed_event_ids_are_applied_once(hook, sending):
    _change_set, rows = sending
    body = events_for(rows[:2], kind="bounce")
    assert hook.post(URL, data=body, headers=signed(body)).status_code == 200
    again = hook.post(URL, data=body, headers=signed(body))
    assert again.status_code == 200 and again.json == {"received": 2}
    assert webhook.apply_stored_batches(db.session) == 2
    first, second = db.session.scalars(select(WebhookBatch).order_by(WebhookBatch.id))
    assert (first.outcome["applied"], first.outcome["duplicates"]) == (2, 0)
    assert (second.outcome["applied"], second.outcome["duplicates"]) == (0, 2)
    assert count(WebhookEvent) == 2 and count(Suppression) == 2


def test_unknown_deliveries_are_recorded_as_ignored(hook, sending):
    body = json.dumps([{"email": "nobody@example.com", "event": "delivered", "sg_event_id": "u1",
                        "delivery_id": "987654321"},
                       {"email": "nobody@example.com", "event": "click", "sg_event_id": "u2"}])
    response = hook.post(URL, data=body, headers=signed(body))
    assert response.status_code == 200
    webhook.apply_stored_batches(db.session)
    batch = db.session.scalar(select(WebhookBatch))
    assert batch.outcome["ignored_because"] == {"no matching delivery": 1, "not a delivery event": 1}


@pytest.mark.parametrize("case", ["forged", "tampered", "stale", "future", "no-signature", "no-timestamp",
                                  "not-base64", "huge-signature", "bad-timestamp", "empty-signature"])
def test_bad_signatures_are_403_and_change_nothing(hook, sending, case):
    _change_set, rows = sending
    body = events_for(rows, kind="bounce")
    headers = signed(body)
    if case == "forged":
        headers = signed(body, key=OTHER_KEY)
    elif case == "tampered":
        body = body.replace("bounce", "delivered")
    elif case == "stale":
        headers = signed(body, timestamp=int(time.time()) - 301)
    elif case == "future":
        headers = signed(body, timestamp=int(time.time()) + 600)
    elif case == "no-signature":
        del headers[SIGNATURE]
    elif case == "no-timestamp":
        del headers[TIMESTAMP]
    elif case == "not-base64":
        headers[SIGNATURE] = "%%%not base64%%%"
    elif case == "huge-signature":
        headers[SIGNATURE] = "A" * 5000
    elif case == "bad-timestamp":
        headers[TIMESTAMP] = "1e9"
    elif case == "empty-signature":
        headers[SIGNATURE] = ""
    response = hook.post(URL, data=body, headers=headers)
    assert response.status_code == 403
    assert "signature" in response.json["error"]["message"]
    assert count(WebhookBatch) == 0 and count(WebhookEvent) == 0 and count(Suppression) == 0
    db.session.expire_all()
    assert {r.status for r in rows} == {"sending"}


def test_a_signature_a_little_old_is_accepted(hook, sending):
    _change_set, rows = sending
    body = events_for(rows)
    headers = signed(body, timestamp=int(time.time()) - 240)
    assert hook.post(URL, data=body, headers=headers).status_code == 200


def test_without_a_configured_key_everything_is_refused(client, sending):
    _change_set, rows = sending
    body = events_for(rows)
    assert client.post(URL, data=body, headers=signed(body)).status_code == 403


def test_a_broken_configured_key_is_refused_not_a_500(app, monkeypatch, sending):
    monkeypatch.setitem(app.config, "REGISTRY",
                        app.config["REGISTRY"].with_overrides(sendgrid_webhook_public_key="not a key"))
    _change_set, rows = sending
    body = events_for(rows)
    assert app.test_client().post(URL, data=body, headers=signed(body)).status_code == 403


@pytest.mark.parametrize("body", ["{not json", '{"event": "delivered"}', "42", '"text"', "null", "",
                                  "[" * 100_000 + "]" * 100_000])
def test_malformed_bodies_are_400(hook, body):
    response = hook.post(URL, data=body, headers=signed(body))
    assert response.status_code == 400
    assert response.json["error"]["message"] == "The body must be a JSON list of events."
    assert count(WebhookBatch) == 0


def test_a_body_that_is_not_utf8_is_400(hook):
    body = b"[\xff\xfe]"
    assert hook.post(URL, data=body, headers=signed(body)).status_code == 400


def test_an_oversized_body_is_413_before_it_is_read(hook):
    body = "[" + ",".join(['{"event":"delivered","sg_event_id":"x"}'] * 30_000) + "]"
    assert len(body) > 1024 * 1024
    response = hook.post(URL, data=body, headers=signed(body))
    assert response.status_code == 413
    assert response.json["error"]["message"] == "The body is larger than 1 MB."


def test_an_oversized_body_without_a_length_is_capped(hook):
    body = b"[" + b" " * (1024 * 1024 + 10) + b"]"
    response = hook.post(URL, input_stream=io.BytesIO(body), headers=signed(body),
                         environ_overrides={"wsgi.input_terminated": True})
    assert response.status_code == 413


def test_no_csrf_token_is_needed_but_get_is_not_allowed(hook, sending):
    _change_set, rows = sending
    body = events_for(rows)
    assert hook.post(URL, data=body, headers=signed(body)).status_code == 200
    assert hook.get(URL).status_code == 405


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), signature=st.text(max_size=120), stamp=st.text(max_size=20))
def test_unsigned_garbage_is_never_a_500(hook, body, signature, stamp):
    headers = {}
    try:
        headers = {SIGNATURE: signature, TIMESTAMP: stamp}
        response = hook.post(URL, data=body, headers=headers)
    except ValueError:
        # Werkzeug refuses header values with newlines before a request is made.
        return
    assert response.status_code in (400, 403)
    assert count(WebhookBatch) == 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["event", "sg_event_id", "email", "delivery_id", "timestamp", "sg_message_id", "x"]),
        children, max_size=6),
    max_leaves=20,
)
EVENT = st.fixed_dictionaries({
    "event": st.sampled_from([*PROVIDER_EVENTS, "open", "", "DELIVERED"]) | JSON_VALUES,
    "sg_event_id": st.text(max_size=110) | JSON_VALUES,
}, optional={"email": st.emails() | st.text(max_size=40) | JSON_VALUES,
             "delivery_id": st.integers() | st.text(max_size=25) | JSON_VALUES,
             "timestamp": st.integers() | st.floats() | JSON_VALUES,
             "sg_message_id": st.text(max_size=40) | JSON_VALUES})


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.lists(EVENT | JSON_VALUES, max_size=5) | JSON_VALUES)
def test_signed_garbage_is_refused_or_stored_and_recorded_never_a_500(hook, payload):
    body = json.dumps(payload)
    before = count(WebhookBatch)
    response = hook.post(URL, data=body, headers=signed(body))
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert count(WebhookBatch) == before
        return
    # Stored, then applied by the worker with a record of every event: none lost, none a crash.
    webhook.apply_stored_batches(db.session)
    batch = db.session.scalar(select(WebhookBatch).order_by(WebhookBatch.id.desc()).limit(1))
    assert batch.body == body and batch.applied_at is not None and batch.error is None
    outcome = batch.outcome
    assert outcome["applied"] + outcome["duplicates"] + outcome["ignored"] == len(payload)
    assert sum(outcome["ignored_because"].values()) == outcome["ignored"]


@pytest.mark.parametrize("events", [
    [{"event": "delivered", "sg_event_id": "big", "timestamp": 10**300, "delivery_id": 10**30}],
    [{"event": "delivered", "sg_event_id": "neg", "timestamp": -1e308, "delivery_id": -5}],
    [{"event": "delivered", "sg_event_id": ["a"], "email": 7}],
    [{"event": "delivered"}],
    [{"event": "bounce", "sg_event_id": "e", "email": "x" * 400}],
    [{"event": "dropped", "sg_event_id": "nul", "email": "a\u0000@example.com"}],
    [None, 1, "x", [], {}],
])
def test_events_with_missing_or_wrong_fields_are_stored_and_ignored_with_a_reason(hook, sending, events):
    _change_set, rows = sending
    body = json.dumps(events)
    response = hook.post(URL, data=body, headers=signed(body))
    assert response.status_code == 200 and response.json == {"received": len(events)}
    assert webhook.apply_stored_batches(db.session) == 1
    batch = db.session.scalar(select(WebhookBatch))
    assert batch.outcome["ignored"] == len(events) and batch.outcome["applied"] == 0
    assert all(reason for reason in batch.outcome["ignored_because"])
    assert count(Suppression) == 0
    db.session.expire_all()
    assert {r.status for r in rows} == {"sending"}


def test_a_number_too_long_to_read_is_400(hook):
    body = '[{"event": "delivered", "sg_event_id": "x", "timestamp": ' + "9" * 5000 + "}]"
    response = hook.post(URL, data=body, headers=signed(body))
    assert response.status_code == 400 and count(WebhookBatch) == 0
