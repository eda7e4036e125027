"""The worker's webhook deliveries against a local receiver, on both databases: signatures the
reference verifier accepts, the pinned address, refused addresses, retries, disabling, two workers."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from registry.domain.clock import now_utc
from registry.extensions import db
from registry.models import Endpoint, EndpointAttempt, EndpointDelivery, OutgoingMail, Subscriber
from registry.notify.endpoints import Deliverer
from registry.services import endpoints
from registry.services.endpoints import Owner
from tests import factories


class Receiver:
    """A threaded HTTP server on 127.0.0.1: /ok answers 204, /fail 500, /redirect 302."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                code = {"/ok": 204, "/fail": 500, "/redirect": 302}.get(self.path.split("?")[0], 404)
                self.send_response(code)
                if code == 302:
                    self.send_header("Location", "/ok")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def local(app, monkeypatch):
    settings = app.config["REGISTRY"].with_overrides(endpoints_allow_private=True)
    monkeypatch.setitem(app.config, "REGISTRY", settings)
    factories.subscription_topics()
    subscriber = Subscriber(email="risk@customer.example", status="confirmed")
    db.session.add(subscriber)
    db.session.commit()
    return subscriber


def add(subscriber, url: str, topics=("documents",)) -> tuple[Endpoint, str]:
    endpoint, secret = endpoints.create(db.session, Owner(subscriber=subscriber), url=url,
                                        topic_keys=list(topics), actor="test")
    db.session.commit()
    return endpoint, secret


class Clock:
    def __init__(self):
        self.at = now_utc()

    def __call__(self):
        return self.at


def test_the_ping_is_signed_and_the_reference_verifier_accepts_it(local, receiver):
    endpoint, secret = add(local, receiver.url("/ok"))
    deliverer = Deliverer(db.session, allow_private=True)
    try:
        assert deliverer.drain() == 1
    finally:
        deliverer.close()
    (request,) = receiver.requests
    payload = Webhook(secret).verify(request["body"], request["headers"])
    assert payload["type"] == "ping" and payload["data"]["endpoint_id"] == endpoint.id
    delivery = db.session.scalar(select(EndpointDelivery))
    assert delivery.status == "delivered"
    assert request["headers"]["webhook-id"] == delivery.message_id
    attempt = db.session.scalar(select(EndpointAttempt))
    assert (attempt.is_success, attempt.status_code, attempt.address) == (True, 204, "127.0.0.1")


def test_resend_and_rotation_keep_the_id_and_sign_twice(local, receiver):
    endpoint, old = add(local, receiver.url("/ok"))
    deliverer = Deliverer(db.session, allow_private=True)
    try:
        deliverer.drain()
        new = endpoints.rotate(db.session, endpoint, actor="test")
        delivery = db.session.scalar(select(EndpointDelivery))
        assert endpoints.resend(db.session, endpoint, delivery.id, actor="test") is not None
        db.session.commit()
        deliverer.drain()
    finally:
        deliverer.close()
    first, second = receiver.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert len(second["headers"]["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(second["body"], second["headers"])
    Webhook(new).verify(second["body"], second["headers"])


def test_the_checked_address_is_the_one_connected_to(local, receiver):
    """The resolver answers once per attempt; a second, different answer (DNS rebinding) is never
    asked for, and the request carries the name in its Host header."""
    answers = iter([["127.0.0.1"], ["10.0.0.1"]])
    calls = []

    def resolver(host, port):
        calls.append(host)
        return next(answers)

    add(local, receiver.url("/ok", host="hooks.customer.example"))
    deliverer = Deliverer(db.session, allow_private=True, resolver=resolver)
    try:
        deliverer.drain()
    finally:
        deliverer.close()
    assert calls == ["hooks.customer.example"]
    (request,) = receiver.requests
    assert request["headers"]["Host"] == f"hooks.customer.example:{receiver.port}"


@pytest.mark.parametrize("answer", [["10.0.0.5"], ["127.0.0.1"], ["169.254.169.254"], ["::ffff:127.0.0.1"],
                                    ["93.184.215.14", "192.168.0.1"], ["64:ff9b::7f00:1"]])
def test_a_name_that_resolves_to_a_forbidden_address_is_never_connected_to(local, receiver, answer):
    add(local, receiver.url("/ok", host="rebind.customer.example"))
    deliverer = Deliverer(db.session, allow_private=False, resolver=lambda host, port: answer)
    try:
        deliverer.drain()
    finally:
        deliverer.close()
    assert receiver.requests == []
    attempt = db.session.scalar(select(EndpointAttempt))
    assert not attempt.is_success and attempt.error.startswith("refused:")


def test_a_redirect_is_a_failed_attempt_and_not_followed(local, receiver):
    add(local, receiver.url("/redirect"))
    deliverer = Deliverer(db.session, allow_private=True)
    try:
        deliverer.drain()
    finally:
        deliverer.close()
    assert [r["path"] for r in receiver.requests] == ["/redirect"]
    delivery = db.session.scalar(select(EndpointDelivery))
    assert delivery.status == "queued" and "redirect" in delivery.error


def test_retries_for_three_days_then_disables_and_mails_the_owner(local, receiver):
    endpoint, _ = add(local, receiver.url("/fail"))
    clock = Clock()
    deliverer = Deliverer(db.session, allow_private=True, clock=clock)
    try:
        delays = []
        for _ in range(40):
            if not deliverer.cycle():
                break
            delivery = db.session.scalar(select(EndpointDelivery).execution_options(populate_existing=True))
            if delivery.next_attempt_at is None:
                break
            delays.append(delivery.next_attempt_at - clock.at)
            clock.at = delivery.next_attempt_at
    finally:
        deliverer.close()
    assert timedelta(seconds=4) <= delays[0] <= timedelta(seconds=6)
    assert timedelta(minutes=4) <= delays[1] <= timedelta(minutes=6)
    db.session.expire_all()
    endpoint = db.session.get(Endpoint, endpoint.id)
    assert not endpoint.is_enabled and "3 days" in endpoint.disabled_reason
    assert db.session.scalar(select(EndpointDelivery.status)) == "failed"
    mail = db.session.scalar(select(OutgoingMail).where(OutgoingMail.template == "endpoint_disabled"))
    assert mail.to == "risk@customer.example"
    logged = db.session.scalar(select(func.count()).select_from(EndpointAttempt))
    assert logged == len(receiver.requests) >= 10
    endpoints.enable(db.session, endpoint, actor="test")
    db.session.commit()
    assert endpoint.is_enabled
    assert db.session.scalar(select(func.count()).select_from(EndpointDelivery)
                             .where(EndpointDelivery.status == "queued")) == 1  # a new ping


def test_change_events_fan_out_to_the_endpoints_that_follow_them(local, receiver):
    following, _ = add(local, receiver.url("/ok?following"), topics=("documents",))
    other = Subscriber(email="other@elsewhere.example", status="confirmed")
    db.session.add(other)
    db.session.commit()
    add(other, receiver.url("/ok?other"), topics=("administrative",))
    change_set = factories.announced_change(now_utc())
    change_set.is_material = False
    event = endpoints.change_event(db.session, change_set, "change.announced", now=now_utc())
    db.session.commit()
    targets = db.session.scalars(select(EndpointDelivery.endpoint_id)
                                 .where(EndpointDelivery.event_id == event.id))
    assert list(targets) == [following.id]
    change_set.is_material = True
    event = endpoints.change_event(db.session, change_set, "change.withdrawn", now=now_utc(),
                                   reason="Because")
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(EndpointDelivery)
                             .where(EndpointDelivery.event_id == event.id)) == 2
    data = event.payload["data"]
    assert event.payload["type"] == "change.withdrawn" and data["reason"] == "Because"
    assert data["url"].startswith("http://localhost/") and data["items"][0]["url"].startswith("http://localhost/")
    json.dumps(event.payload)


def test_two_workers_never_deliver_one_event_twice(local, receiver, app):
    for n in range(8):
        subscriber = Subscriber(email=f"s{n}@customer.example", status="confirmed")
        db.session.add(subscriber)
        db.session.commit()
        for k in range(5):
            add(subscriber, receiver.url(f"/ok?{n}-{k}"))
    errors = []
    barrier = threading.Barrier(2)

    def work():
        with app.app_context():
            deliverer = Deliverer(db.session, allow_private=True, batch_size=7, concurrency=4)
            try:
                barrier.wait()
                deliverer.drain()
            except Exception as error:
                errors.append(error)
            finally:
                deliverer.close()
                db.session.remove()

    threads = [threading.Thread(target=work) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    ids = [r["headers"]["webhook-id"] for r in receiver.requests]
    assert len(ids) == 40 and len(set(ids)) == 40
