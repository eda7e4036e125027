"""Issue 9 item 20: a slow provider no longer turns one notice into a mail storm.

With SendGrid answering after 35 s (the client gives up at 30 s) every recipient got the notice 5 times;
with 20 s answers and a 60 s sending timeout, a live worker's claim of 4 requests (80 s) was taken over
and 1,000 recipients got it twice. Times here are scaled down (seconds become fractions), the ratios kept.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from sqlalchemy import select

from registry.extensions import db
from registry.models import Delivery, OutgoingMail
from registry.notify.dispatch import Dispatcher, Options
from registry.services import provider_events
from tests.notify import conftest as notify_fixtures
from tests.notify.factories import notice_with_deliveries, status_counts

# The fake SendGrid over HTTP and the real client pointed at it, as in tests/notify.
fake, sendgrid = notify_fixtures.fake, notify_fixtures.sendgrid


def rows(notice_id: int) -> list[Delivery]:
    found = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == notice_id)))
    db.session.commit()
    return found


def in_thread(app, work) -> tuple[threading.Thread, list]:
    """Run `work()` in its own thread with its own app context (so its own session), as another process
    would; the result (or the error) lands in the returned list."""
    outcome: list = []

    def run() -> None:
        with app.app_context():
            try:
                outcome.append(work())
            except BaseException as error:  # handed to the test thread
                outcome.append(error)
            finally:
                db.session.remove()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def test_a_live_workers_slow_claim_is_never_taken_over(app, fake, sendgrid):
    """20 s answers, a 30 s client timeout, a claim of 4 requests (80 s) and a 60 s sending timeout,
    at 1/20 scale: the claim's heartbeat at each request keeps it from another worker's recovery."""
    dispatch = notice_with_deliveries(db.session, 40)
    fake.delay = 1.0
    sendgrid.timeout = 1.5
    options = Options(batch_size=40, request_size=10, sending_timeout=2.5)
    worker, outcome = in_thread(app, lambda: Dispatcher(db.session, sendgrid, options).drain().sent)
    rescuer = Dispatcher(db.session, sendgrid, options)
    taken_over = 0
    while worker.is_alive():
        taken_over += rescuer.recover()
        time.sleep(0.2)
    worker.join()
    assert outcome == [40]
    assert taken_over == 0
    assert fake.requests[-1].at - fake.requests[0].at > options.sending_timeout
    assert Counter(fake.delivery_ids()) == Counter({str(d.id): 1 for d in rows(dispatch.notice_id)})
    assert not any(d.is_resent for d in rows(dispatch.notice_id))


@pytest.mark.parametrize("answer_after", [0.6, 2.0], ids=["35s", "120s"])
def test_answers_slower_than_the_client_are_settled_by_the_webhook_not_sent_again(
        app, fake, sendgrid, answer_after):
    """35 s and 120 s answers to a client that gives up at 30 s, at 1/50 scale: each request's outcome
    is unknown to the worker, SendGrid's Event Webhook reports what it took, and nobody gets it twice."""
    dispatch = notice_with_deliveries(db.session, 30)
    fake.delay = answer_after
    sendgrid.timeout = 0.3
    done = threading.Event()

    def webhook() -> int:
        # SendGrid posts "processed" for what it accepted, shortly after.
        reported: set[str] = set()
        while not done.is_set():
            fresh = set(fake.delivery_ids()) - reported
            if fresh:
                provider_events.apply_provider_events(db.session, fake.processed_events(fresh))
                db.session.commit()
                reported |= fresh
            time.sleep(0.1)
        return len(reported)

    poster, posted = in_thread(app, webhook)
    try:
        stats = Dispatcher(db.session, sendgrid, Options(batch_size=30, request_size=10,
                                                         sending_timeout=4.0)).drain()
    finally:
        done.set()
        poster.join()
    assert posted == [30]
    assert stats.unknown == 30 and stats.resent == 0
    assert Counter(fake.delivery_ids()) == Counter({str(d.id): 1 for d in rows(dispatch.notice_id)})
    assert status_counts(db.session, dispatch.notice_id) == {"sent": 30}


def test_unknown_outcomes_count_as_attempts(app, fake, sendgrid, make_user):
    """Without webhook events, --max-attempts bounds the copies: with 1, a request without an answer
    is never sent again; the rows fail (they may well have been delivered) and staff are told."""
    admin = make_user("admin")
    dispatch = notice_with_deliveries(db.session, 20)
    fake.delay = 0.6
    sendgrid.timeout = 0.3
    worker = Dispatcher(db.session, sendgrid, Options(max_attempts=1, sending_timeout=1.0))
    worker.send_deliveries()
    fake.delay = 0.0  # the alerts to staff are answered at once
    stats = worker.drain()
    assert Counter(fake.delivery_ids()) == Counter({str(d.id): 1 for d in rows(dispatch.notice_id)})
    assert stats.resent == 0 and stats.failed == 20
    found = rows(dispatch.notice_id)
    assert {d.status for d in found} == {"failed"} and {d.unknown_outcomes for d in found} == {1}
    assert "each may have been accepted" in found[0].error
    templates = sorted(m.template for m in db.session.scalars(select(OutgoingMail)))
    assert templates == ["dispatch_delayed", "dispatch_failed"]
    assert fake.acceptances()[admin.email] == 2


def test_three_unknown_outcomes_at_most_by_default(app, fake, sendgrid):
    dispatch = notice_with_deliveries(db.session, 5)
    fake.delay = 0.4
    sendgrid.timeout = 0.2
    stats = Dispatcher(db.session, sendgrid, Options(sending_timeout=0.5)).drain()
    assert Options().max_attempts == 3
    assert set(Counter(fake.delivery_ids()).values()) == {3}
    assert stats.resent == 10 and stats.failed == 5
    assert status_counts(db.session, dispatch.notice_id) == {"failed": 5}
