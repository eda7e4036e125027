"""Applying SendGrid events: stored batches, exactly once, never backwards, suppressions, resent flags."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import ChangeSet, Delivery, Suppression, WebhookBatch, WebhookEvent
from registry.notify import webhook
from registry.services import notices, provider_events
from tests.notify.factories import notice_with_deliveries
from tests.services import test_notices
from tests.services.test_notices import NOW, deliveries, mark, scheduled_change

world = test_notices.world


def apply_events(events: list, **options) -> provider_events.EventsApplied:
    return provider_events.apply_provider_events(db.session, events, **options)


def event(delivery: Delivery | None, kind: str, event_id: str, **extra) -> dict:
    body = {"event": kind, "sg_event_id": event_id, "timestamp": int(NOW.timestamp()) + 60}
    if delivery is not None:
        body |= {"email": delivery.email, "delivery_id": str(delivery.id)}
    return body | extra


@pytest.fixture
def sending(world):
    _topics, _people, document = world
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    for delivery in deliveries(notice).values():
        delivery.status, delivery.provider_message_id = "sending", "msg-1"
    db.session.flush()
    return change_set, notice


def test_events_resolve_unknown_outcomes_and_suppress(sending):
    change_set, notice = sending
    rows = deliveries(notice)
    emails = sorted(rows)
    events = [event(rows[emails[0]], "processed", "e1"), event(rows[emails[1]], "delivered", "e2"),
              event(rows[emails[2]], "bounce", "e3", reason="550 no such user"),
              event(rows[emails[3]], "spamreport", "e4")]
    result = apply_events(events, now=NOW)
    assert (result.applied, result.duplicates, result.ignored, result.suppressed) == (4, 0, 0, 2)
    assert rows[emails[0]].status == "sent" and rows[emails[0]].last_event == "processed"
    assert rows[emails[0]].sent_at == NOW + timedelta(seconds=60)
    assert rows[emails[2]].status == "sent" and rows[emails[2]].last_event == "bounce"
    # A spam report alone does not prove acceptance of this request's outcome: still sending.
    assert rows[emails[3]].status == "sending" and rows[emails[3]].last_event == "spamreport"
    assert set(db.session.scalars(select(Suppression.email))) == {emails[2], emails[3]}
    assert change_set.notice_completed_at is None
    # The rest accepted: the notice completes, from the webhook.
    rest = [event(rows[e], "processed", f"p-{e}") for e in emails[3:]]
    result = apply_events(rest, now=NOW + timedelta(minutes=5))
    assert result.completed == [change_set]
    assert change_set.notice_completed_at == NOW + timedelta(minutes=5)


def test_duplicate_event_ids_change_nothing(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    apply_events([event(delivery, "delivered", "same")], now=NOW)
    later = event(delivery, "bounce", "same", timestamp=int(NOW.timestamp()) + 600)
    result = apply_events([later, later], now=NOW)
    assert (result.applied, result.duplicates) == (0, 2)
    assert delivery.last_event == "delivered"
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1


def test_older_events_do_not_replace_the_latest(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    base = int(NOW.timestamp())
    apply_events([
        event(delivery, "delivered", "late", timestamp=base + 100),
        event(delivery, "processed", "early", timestamp=base + 10)])
    assert delivery.last_event == "delivered"
    # Sent when the provider accepted it (processed), whatever order the events came in.
    assert delivery.sent_at == datetime.fromtimestamp(base + 10, UTC)


def test_fallback_to_message_id_and_address(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    found = {"event": "delivered", "sg_event_id": "m1", "email": delivery.email.upper(),
             "sg_message_id": "msg-1.filterdrecv-1234.0"}
    wrong = {"event": "delivered", "sg_event_id": "m2", "email": "stranger@example.com",
             "sg_message_id": "msg-1.filterdrecv-1234.0"}
    result = apply_events([found, wrong], now=NOW)
    assert (result.applied, result.ignored) == (1, 1)
    assert delivery.status == "sent"


@pytest.mark.parametrize("garbage", [
    None, 1, "x", [], {}, {"event": "processed"}, {"event": "open", "sg_event_id": "o"},
    {"event": "processed", "sg_event_id": "a\x00b"}, {"event": "processed", "sg_event_id": "x" * 101},
    {"event": "processed", "sg_event_id": 5}, {"event": ["processed"], "sg_event_id": "l"},
    {"event": "bounce", "sg_event_id": "n", "email": "a\x00@example.com"},
    {"event": "delivered", "sg_event_id": "d", "delivery_id": "99999999999999999999999"},
    {"event": "delivered", "sg_event_id": "d2", "delivery_id": "-1"},
    {"event": "delivered", "sg_event_id": "d3", "delivery_id": True},
    {"event": "delivered", "sg_event_id": "t", "delivery_id": "0", "timestamp": 1e300},
    {"event": "delivered", "sg_event_id": "t2", "sg_message_id": "\x00", "email": "x@example.com"},
])
def test_garbage_events_are_ignored(sending, garbage):
    _change_set, notice = sending
    before = {e: (d.status, d.last_event) for e, d in deliveries(notice).items()}
    result = apply_events([garbage], now=NOW)
    db.session.commit()
    assert result.applied == 0
    assert {e: (d.status, d.last_event) for e, d in deliveries(notice).items()} == before
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_event_for_a_delivery_of_another_address_is_ignored(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    result = provider_events.apply_provider_events(
        db.session, [event(delivery, "delivered", "x", email="someone-else@example.com")], now=NOW)
    assert result.applied == 0 and delivery.status == "sending"


@pytest.mark.parametrize("timestamp", [1e300, -1e300, "yesterday", None, True, float("nan")])
def test_an_unreadable_event_time_is_the_time_it_arrived(sending, timestamp):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    apply_events([event(delivery, "processed", "t", timestamp=timestamp)],
                  now=NOW)
    assert delivery.status == "sent" and delivery.last_event_at == NOW


def test_an_address_suppressed_during_a_dispatch_is_withdrawn_from_waiting_notices(world):
    """The worker need not look: a bounce takes the address out of every notice still queued for it."""
    _topics, _people, document = world
    first = notices.start_notice(db.session, scheduled_change(material=True, document=document), now=NOW)
    second = notices.start_notice(db.session, scheduled_change(material=True, document=document,
                                                               title="Second"), now=NOW)
    old = notices.start_notice(db.session, scheduled_change(material=True, document=document, title="Old"),
                               now=NOW)
    mark(old, "sent", *deliveries(old))
    notices.settle(db.session, [old.id], now=NOW)
    third = notices.start_notice(db.session, scheduled_change(material=True, document=document,
                                                              title="Third"), now=NOW)
    target = deliveries(first)["docs@example.com"]
    target.status = "sending"
    deliveries(second)["docs@example.com"].status = "sending"  # claimed by a worker: left alone
    db.session.flush()
    result = apply_events([event(target, "bounce", "b1")], now=NOW)
    assert result.suppressed == 1
    db.session.expire_all()
    # Its own delivery was accepted, then bounced: sent, with the bounce as its latest event.
    assert (target.status, target.last_event) == ("sent", "bounce")
    assert deliveries(second)["docs@example.com"].status == "sending"
    assert deliveries(old)["docs@example.com"].status == "sent"
    # A third notice, still queued for the address, is withdrawn; its other recipients are not.
    assert deliveries(third)["docs@example.com"].status == "suppressed"
    assert {d.status for e, d in deliveries(third).items() if e != "docs@example.com"} == {"queued"}


def test_a_suppression_withdraws_queued_deliveries_and_may_complete_the_notice(world):
    _topics, _people, document = world
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    rows = deliveries(notice)
    mark(notice, "sent", *[e for e in rows if e != "subs@example.com"])
    # An unsubscribe reported for an earlier message, before this notice reached the address.
    result = apply_events([{"event": "unsubscribe", "sg_event_id": "u",
                           "email": "SUBS@example.com"}], now=NOW)
    assert (result.applied, result.ignored, result.suppressed) == (0, 1, 1)
    db.session.expire_all()
    withdrawn = deliveries(notice)["subs@example.com"]
    assert withdrawn.status == "suppressed" and "unsubscribe" in withdrawn.error
    assert result.completed == [change_set] and change_set.notice_completed_at == NOW


# -- never backwards -------------------------------------------------------------------------------

@pytest.mark.parametrize("arrival", [("processed", "deferred", "delivered"),
                                     ("delivered", "deferred", "processed"),
                                     ("deferred", "delivered", "processed")])
def test_events_of_one_second_end_on_the_latest_step_whatever_the_order_of_batches(sending, arrival):
    """The reported case: `deferred` kept after `delivered`. Each event comes in its own batch."""
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    second = int(NOW.timestamp()) + 60
    for kind in arrival:
        apply_events([event(delivery, kind, f"{kind}-1", timestamp=second)],
                      now=NOW)
    assert (delivery.status, delivery.last_event) == ("sent", "delivered")
    assert delivery.last_event_at == datetime.fromtimestamp(second, UTC)


def test_an_older_event_in_a_later_batch_never_moves_a_delivery_back(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    base = int(NOW.timestamp())
    apply_events([event(delivery, "bounce", "b", timestamp=base + 300)])
    apply_events([event(delivery, "deferred", "d", timestamp=base + 100),
                  event(delivery, "delivered", "v", timestamp=base + 200)])
    assert delivery.last_event == "bounce"
    assert delivery.last_event_at == datetime.fromtimestamp(base + 300, UTC)
    # A later event still moves it on.
    apply_events([event(delivery, "spamreport", "s", timestamp=base + 400)])
    assert delivery.last_event == "spamreport"


# -- stored batches --------------------------------------------------------------------------------

def stored(events, *, now=NOW) -> int:
    batch = provider_events.store_batch(db.session, json.dumps(events), len(events), now=now)
    db.session.commit()
    return batch.id


def test_a_stored_batch_is_applied_once_with_its_record(sending):
    change_set, notice = sending
    rows = sorted(deliveries(notice).values(), key=lambda d: d.id)
    db.session.commit()
    events = [event(d, "delivered", f"v-{d.id}") for d in rows] + [
        event(rows[0], "delivered", f"v-{rows[0].id}"), {"event": "open", "sg_event_id": "o1"}, "junk"]
    batch_id = stored(events)
    assert webhook.apply_stored_batches(db.session) == 1
    assert webhook.apply_stored_batches(db.session) == 0
    batch = db.session.get(WebhookBatch, batch_id)
    assert batch.applied_at is not None and batch.error is None
    assert batch.outcome == {"applied": len(rows), "duplicates": 1, "ignored": 2, "suppressed": 0,
                             "ignored_because": {"not a delivery event": 1, "not an object": 1}}
    assert {(d.status, d.last_event) for d in deliveries(notice).values()} == {("sent", "delivered")}
    assert change_set.notice_completed_at is not None


@pytest.mark.parametrize("body", ["{}", "null", "not json"])
def test_a_stored_body_that_is_not_a_list_is_recorded_not_retried(app, body):
    batch = provider_events.store_batch(db.session, body, 0, now=NOW)
    db.session.commit()
    assert webhook.apply_stored_batches(db.session) == 1
    db.session.refresh(batch)
    assert batch.applied_at is not None
    assert batch.outcome["ignored_because"] == {"the body is not a JSON list of events": 1}


def test_a_batch_that_fails_keeps_its_body_and_error_and_does_not_block_the_others(app, monkeypatch):
    dispatch = notice_with_deliveries(db.session, 3, prefix="fail")
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == dispatch.notice_id)
                                   .order_by(Delivery.id)))
    before = stored([event(rows[0], "processed", "p0")])
    bad = stored([event(rows[1], "processed", "p1")])
    after = stored([event(rows[2], "processed", "p2")])
    real = provider_events.apply_batches

    def apply_batches(session, batches, *, now=None):
        if bad in {b.id for b in batches}:
            session.execute(Delivery.__table__.update().values(error="half-applied"))
            raise RuntimeError("boom")
        return real(session, batches, now=now)

    monkeypatch.setattr(provider_events, "apply_batches", apply_batches)
    # The three are claimed together; the group fails, so they are tried one per transaction.
    assert webhook.apply_stored_batches(db.session) == 2
    failed = db.session.get(WebhookBatch, bad)
    assert failed.applied_at is None and failed.attempts == provider_events.MAX_ATTEMPTS
    assert failed.error == "RuntimeError: boom" and json.loads(failed.body)[0]["sg_event_id"] == "p1"
    assert db.session.get(WebhookBatch, before).applied_at and db.session.get(WebhookBatch, after).applied_at
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == dispatch.notice_id)
                                   .order_by(Delivery.id).execution_options(populate_existing=True)))
    # Its transactions were rolled back whole: nothing half-applied, its event not recorded as seen.
    assert [(d.status, d.error) for d in rows] == [("sent", None), ("queued", None), ("sent", None)]
    assert db.session.get(WebhookEvent, "p1") is None
    # Given up after MAX_ATTEMPTS: a later call leaves it alone.
    monkeypatch.setattr(provider_events, "apply_batches", real)
    assert webhook.apply_stored_batches(db.session) == 0


def test_batches_posted_after_the_call_began_wait_for_the_next_one(app, monkeypatch):
    """So that a steady stream of events never holds up the dispatcher's sending."""
    dispatch = notice_with_deliveries(db.session, 1, prefix="stream")
    delivery = db.session.scalar(select(Delivery).where(Delivery.notice_id == dispatch.notice_id))
    first = stored([event(delivery, "processed", "s1")])
    later = []
    real = provider_events.apply_batches

    def apply_batches(session, batches, *, now=None):
        results = real(session, batches, now=now)
        if not later:
            body = json.dumps([event(delivery, "delivered", "s2")])
            later.append(provider_events.store_batch(session, body, 1, now=NOW).id)
        return results

    monkeypatch.setattr(provider_events, "apply_batches", apply_batches)
    assert webhook.apply_stored_batches(db.session) == 1
    assert db.session.get(WebhookBatch, first).applied_at is not None
    assert db.session.get(WebhookBatch, later[0]).applied_at is None
    assert webhook.apply_stored_batches(db.session) == 1


def test_a_group_of_batches_keeps_one_record_each(app):
    """Applied in one transaction, each batch still says what its own events did."""
    dispatch = notice_with_deliveries(db.session, 2, prefix="group")
    one, two = db.session.scalars(select(Delivery).where(Delivery.notice_id == dispatch.notice_id)
                                  .order_by(Delivery.id))
    first = stored([event(one, "bounce", "b1"), {"event": "open", "sg_event_id": "o"}])
    second = stored([event(one, "bounce", "b1"), event(two, "delivered", "d2"),
                     {"event": "spamreport", "sg_event_id": "s", "email": "elsewhere@example.com"}])
    assert webhook.apply_stored_batches(db.session) == 2
    records = {b.id: b.outcome for b in db.session.scalars(select(WebhookBatch))}
    assert records[first] == {"applied": 1, "duplicates": 0, "ignored": 1, "suppressed": 1,
                              "ignored_because": {"not a delivery event": 1}}
    assert records[second] == {"applied": 1, "duplicates": 1, "ignored": 1, "suppressed": 1,
                               "ignored_because": {"no matching delivery": 1}}


def test_concurrent_appliers_apply_every_event_exactly_once(app, databases):
    """Two workers drain the same stored batches at once (threads, each with its own session)."""
    dispatch = notice_with_deliveries(db.session, 60, prefix="race")
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == dispatch.notice_id)
                                   .order_by(Delivery.id)))
    db.session.execute(Delivery.__table__.update().values(status="sending"))
    base = int(NOW.timestamp())
    events = []
    for d in rows:
        events += [event(d, "processed", f"p-{d.id}", timestamp=base), event(d, "delivered", f"v-{d.id}",
                                                                             timestamp=base + 5)]
        if d.id % 6 == 0:
            events.append(event(d, "bounce", f"b-{d.id}", timestamp=base + 9))
    # Every event twice, in reverse order the second time, spread over batches of 10.
    posted = events + events[::-1]
    for start in range(0, len(posted), 10):
        stored(posted[start:start + 10])
    errors, counts = [], []

    def worker():
        with app.app_context():
            try:
                counts.append(webhook.apply_stored_batches(db.session))
            except Exception as error:  # surfaced by the assertion below
                errors.append(error)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and sum(counts) == len(posted) // 10
    db.session.expire_all()
    batches = list(db.session.scalars(select(WebhookBatch)))
    assert all(b.applied_at is not None and b.error is None for b in batches)
    assert sum(b.outcome["applied"] for b in batches) == len(events)
    assert sum(b.outcome["duplicates"] for b in batches) == len(events)
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == len(events)
    bounced = {d.email for d in rows if d.id % 6 == 0}
    assert set(db.session.scalars(select(Suppression.email))) == bounced
    final = {d.email: (d.status, d.last_event) for d in db.session.scalars(
        select(Delivery).where(Delivery.notice_id == dispatch.notice_id))}
    assert final == {d.email: ("sent", "bounce" if d.email in bounced else "delivered") for d in rows}
    # Whichever applier settled the last rows, the notice completed.
    assert db.session.get(ChangeSet, dispatch.change_set_id).notice_completed_at is not None


# -- the resent flag (item 23) ---------------------------------------------------------------------

def flagged(notice, status: str, message_id: str | None) -> Delivery:
    delivery = next(iter(deliveries(notice).values()))
    delivery.status, delivery.is_resent, delivery.provider_message_id = status, True, message_id
    db.session.flush()
    return delivery


def test_an_event_settling_a_requeued_delivery_proves_one_acceptance(sending):
    """Recovery queued it again, flagged; the event for the first request came before it was re-sent:
    it is settled, not sent again, so the recipient has it once."""
    _change_set, notice = sending
    delivery = flagged(notice, "queued", None)
    apply_events([event(delivery, "processed", "p", sg_message_id="m1.f")])
    assert (delivery.status, delivery.is_resent, delivery.provider_message_id) == ("sent", False, "m1")


def test_an_event_while_the_resend_is_out_keeps_the_flag(sending):
    _change_set, notice = sending
    delivery = flagged(notice, "sending", None)
    apply_events([event(delivery, "processed", "p", sg_message_id="m1.f")])
    assert delivery.status == "sent" and delivery.is_resent


def test_events_of_the_resend_alone_clear_the_flag_and_a_second_message_raises_it_again(sending):
    _change_set, notice = sending
    delivery = flagged(notice, "sent", "m2")  # the worker's answer to the re-send
    apply_events([event(delivery, "processed", "p2", sg_message_id="m2.f"),
                  event(delivery, "delivered", "v2", sg_message_id="m2.f")])
    assert not delivery.is_resent
    # The first request had been accepted after all: two messages, flagged again.
    apply_events([event(delivery, "processed", "p1", sg_message_id="m1.f")])
    assert delivery.is_resent and delivery.provider_message_id == "m2"


def test_two_accepted_messages_flag_a_delivery_the_worker_thought_sent_once(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    delivery.status = "sent"
    apply_events([event(delivery, "processed", "a", sg_message_id="msg-1.x"),
                  event(delivery, "processed", "b", sg_message_id="other.x")])
    assert delivery.is_resent


def test_events_without_a_message_id_prove_nothing(sending):
    _change_set, notice = sending
    delivery = flagged(notice, "queued", None)
    apply_events([event(delivery, "processed", "p")])
    assert delivery.status == "sent" and delivery.is_resent


# -- in the dispatcher's cycle ---------------------------------------------------------------------

def test_the_worker_applies_stored_events_before_it_recovers_unknown_outcomes(app):
    """A request whose answer was lost, and the provider's events for it waiting as a stored batch: the
    worker's cycle applies them first, so recovery finds the rows settled and sends nothing again."""
    from registry.models import SendAttempt
    from registry.notify.dispatch import Dispatcher, Options
    from registry.notify.senders import RecordingSender

    dispatch = notice_with_deliveries(db.session, 3, prefix="lost")
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == dispatch.notice_id)
                                   .order_by(Delivery.id)))
    for delivery in rows:
        delivery.status, delivery.claimed_at, delivery.claim_token = "sending", NOW, "t1"
    db.session.add(SendAttempt(claim_token="t1", notice_id=dispatch.notice_id, first_delivery_id=rows[0].id,
                               last_delivery_id=rows[-1].id, recipients=3, started_at=NOW))
    db.session.commit()
    stored([event(d, "processed", f"p-{d.id}", sg_message_id="lost1.filter") for d in rows])
    sender = RecordingSender()
    Dispatcher(db.session, sender, Options(sending_timeout=0)).cycle()
    rows = list(db.session.scalars(select(Delivery).where(Delivery.notice_id == dispatch.notice_id)
                                   .execution_options(populate_existing=True)))
    assert {(d.status, d.is_resent, d.provider_message_id) for d in rows} == {("sent", False, "lost1")}
    assert sender.requests == []
    assert db.session.get(ChangeSet, dispatch.change_set_id).notice_completed_at is not None
