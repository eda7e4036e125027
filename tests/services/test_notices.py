"""Starting a notice (who gets it), settling it (when the notice time is), progress, provider events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from registry.extensions import db
from registry.models import (
    ChangeStatus,
    Delivery,
    Document,
    Notice,
    NoticePolicy,
    OutgoingMail,
    Subscriber,
    Subscription,
    Suppression,
    Topic,
    WebhookEvent,
)
from registry.services import notices, publishing

NOW = datetime(2026, 6, 1, 10, tzinfo=UTC)
TOPICS = [("administrative", True, True), ("subprocessors", False, True), ("documents", False, True),
          ("non-material", False, False), ("document:privacy-policy", False, True)]
SUBPROCESSOR = dict(name="Acme Mail", legal_entity="Acme Mail GmbH", address="Street 1, Berlin",
                    contact="privacy@acme.example", purpose="Email delivery",
                    transfer_mechanism="Within the EEA", countries=["DE"])


def make_topics() -> dict[str, Topic]:
    topics = {key: Topic(key=key, name=key.replace("-", " ").title(), is_administrative=admin,
                         is_default_on=default, position=i)
              for i, (key, admin, default) in enumerate(TOPICS)}
    db.session.add_all(topics.values())
    db.session.flush()
    return topics


def make_subscriber(email: str, topics: dict[str, Topic], chosen: tuple[str, ...] = (), *,
                    status: str = "confirmed") -> Subscriber:
    subscriber = Subscriber(email=email, status=status, confirmed_at=NOW if status == "confirmed" else None,
                            deleted_at=NOW if status == "deleted" else None)
    db.session.add(subscriber)
    db.session.flush()
    db.session.add_all(Subscription(subscriber_id=subscriber.id, topic_id=topic.id,
                                    is_subscribed=topic.is_administrative or key in chosen)
                       for key, topic in topics.items())
    db.session.flush()
    return subscriber


def make_document() -> Document:
    policy = NoticePolicy(key="privacy-policy", name="Privacy", length=14, unit="calendar_days",
                          calendars=["PL"], timezone="Europe/Warsaw", objection_days=14)
    document = Document(slug="privacy-policy", title="Privacy Policy", notice_policy=policy)
    db.session.add(document)
    db.session.flush()
    return document


def scheduled_change(*, material: bool, document: Document | None = None, subprocessor: str | None = None,
                     title: str = "Spring update", now: datetime = NOW, effective_days: int = 30):
    """A change set published with its notice still to be sent, as the approver's schedule does."""
    change_set = publishing.create_change_set(db.session, title=title, summary="What changes and why.",
                                              is_material=material)
    if document is not None:
        publishing.draft_document_version(db.session, change_set, document, source_md=f"# {title}",
                                          summary="Clearer retention periods.", is_material=material)
    if subprocessor is not None:
        publishing.draft_subprocessor_change(db.session, change_set, subprocessor, "add",
                                             fields=SUBPROCESSOR, summary="Transactional email.")
    publishing.publish(db.session, change_set, published_at=now, notice_completed_at=None,
                       effective_at=now + timedelta(days=effective_days), now=now)
    return change_set


def deliveries(notice: Notice) -> dict[str, Delivery]:
    return {d.email: d for d in db.session.scalars(select(Delivery).where(Delivery.notice_id == notice.id))}


@pytest.fixture
def world(app):
    topics = make_topics()
    people = {
        "all@example.com": make_subscriber("all@example.com", topics,
                                           ("subprocessors", "documents", "non-material")),
        "docs@example.com": make_subscriber("docs@example.com", topics, ("documents",)),
        "one-doc@example.com": make_subscriber("one-doc@example.com", topics, ("document:privacy-policy",)),
        "subs@example.com": make_subscriber("subs@example.com", topics, ("subprocessors",)),
        "admin-only@example.com": make_subscriber("admin-only@example.com", topics),
        "pending@example.com": make_subscriber("pending@example.com", topics, ("documents",),
                                               status="pending"),
        "deleted@example.com": make_subscriber("deleted@example.com", topics, ("documents",),
                                               status="deleted"),
    }
    return topics, people, make_document()


def test_material_notice_goes_to_every_confirmed_subscriber_under_administrative(world):
    topics, _people, document = world
    db.session.add(Suppression(email="docs@example.com", reason="bounce"))
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    rows = deliveries(notice)
    assert set(rows) == {"all@example.com", "docs@example.com", "one-doc@example.com", "subs@example.com",
                         "admin-only@example.com"}
    assert {d.topic_id for d in rows.values()} == {topics["administrative"].id}
    assert rows["docs@example.com"].status == "suppressed"
    assert {d.status for e, d in rows.items() if e != "docs@example.com"} == {"queued"}
    assert all(d.attempts == 0 for d in rows.values())
    assert notice.feed_published_at == NOW and notice.dispatch_completed_at is None
    assert change_set.notice_completed_at is None and change_set.status == ChangeStatus.SCHEDULED


def test_non_material_document_notice_goes_to_touched_topics_once(world):
    topics, _people, document = world
    change_set = scheduled_change(material=False, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    rows = deliveries(notice)
    # document:privacy-policy comes first, then documents, then non-material; each address once.
    assert set(rows) == {"all@example.com", "docs@example.com", "one-doc@example.com"}
    assert rows["one-doc@example.com"].topic_id == topics["document:privacy-policy"].id
    assert rows["docs@example.com"].topic_id == topics["documents"].id
    assert rows["all@example.com"].topic_id == topics["documents"].id
    assert notice.topic_id == topics["document:privacy-policy"].id


def test_non_material_subprocessor_notice(world):
    topics, _people, _document = world
    notice = notices.start_notice(db.session, scheduled_change(material=False, subprocessor="acme-mail"),
                                  now=NOW)
    rows = deliveries(notice)
    assert set(rows) == {"all@example.com", "subs@example.com"}
    assert {d.topic_id for d in rows.values()} == {topics["subprocessors"].id}


def test_topic_keys_per_change():
    class Version:
        def __init__(self, slug):
            self.document = type("D", (), {"slug": slug})()

    class Change:
        def __init__(self, material, versions=(), records=()):
            self.is_material, self.document_versions, self.subprocessor_records = material, versions, records

    assert notices.topic_keys(Change(True, [Version("dpa")])) == ["administrative"]
    assert notices.topic_keys(Change(False, [Version("dpa")], [object()])) == [
        "document:dpa", "documents", "subprocessors", "non-material"]
    assert notices.topic_keys(Change(False, [], [object()])) == ["subprocessors", "non-material"]


def test_nobody_to_tell_completes_the_notice_at_once(app):
    make_topics()
    change_set = scheduled_change(material=True, document=make_document())
    notice = notices.start_notice(db.session, change_set, now=NOW)
    assert notice.dispatch_completed_at == NOW
    assert change_set.notice_completed_at == NOW
    assert change_set.status == ChangeStatus.IN_NOTICE


def test_everyone_suppressed_completes_the_notice_at_once(app):
    topics = make_topics()
    make_subscriber("gone@example.com", topics)
    # Addresses are suppressed lower-case, whatever case the provider's event used.
    notices.apply_provider_events(db.session, [{"event": "spamreport", "sg_event_id": "s1",
                                                "email": "GONE@Example.com"}], now=NOW)
    assert db.session.scalar(select(Suppression.email)) == "gone@example.com"
    change_set = scheduled_change(material=True, document=make_document())
    notice = notices.start_notice(db.session, change_set, now=NOW)
    assert deliveries(notice)["gone@example.com"].status == "suppressed"
    assert change_set.notice_completed_at == NOW


def mark(notice: Notice, status: str, *emails: str) -> None:
    for email in emails:
        deliveries(notice)[email].status = status
    db.session.flush()


def test_settle_completes_only_when_every_delivery_is_settled(world):
    _topics, _people, document = world
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    emails = sorted(deliveries(notice))
    mark(notice, "sent", *emails[:3])
    mark(notice, "sending", emails[3])
    mark(notice, "failed", emails[4])
    later = NOW + timedelta(hours=1)
    assert notices.settle(db.session, [notice.id], now=later) == []
    assert notice.dispatch_completed_at is None and change_set.notice_completed_at is None
    mark(notice, "sent", emails[3])
    done = NOW + timedelta(hours=2)
    assert notices.settle(db.session, [notice.id], now=done) == [change_set]
    assert notice.dispatch_completed_at == done
    assert change_set.notice_completed_at == done
    assert change_set.status == ChangeStatus.IN_NOTICE
    # Settling again changes nothing: the notice time stays the first completion.
    assert notices.settle(db.session, [notice.id], now=done + timedelta(hours=1)) == []
    assert change_set.notice_completed_at == done


def test_settle_waits_for_the_feed_entry(world):
    _topics, _people, document = world
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    notice.feed_published_at = None
    mark(notice, "sent", *deliveries(notice))
    assert notices.settle(db.session, [notice.id], now=NOW + timedelta(hours=1)) == []
    assert notice.dispatch_completed_at is not None
    assert change_set.notice_completed_at is None


def test_late_completion_moves_the_effective_date_and_tells_approvers(world, make_user):
    _topics, _people, document = world
    approver = make_user("approver")
    change_set = scheduled_change(material=True, document=document, effective_days=14)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    planned = change_set.effective_at
    mark(notice, "sent", *deliveries(notice))
    notices.settle(db.session, [notice.id], now=NOW + timedelta(days=2))
    assert change_set.effective_at > planned
    queued = db.session.scalars(select(OutgoingMail).where(OutgoingMail.template == "effective_date_moved"))
    assert [m.to for m in queued] == [approver.email]


def test_progress_reconciles(world):
    _topics, _people, document = world
    db.session.add(Suppression(email="subs@example.com", reason="bounce"))
    change_set = scheduled_change(material=True, document=document)
    notice = notices.start_notice(db.session, change_set, now=NOW)
    emails = sorted(e for e in deliveries(notice) if e != "subs@example.com")
    mark(notice, "sent", emails[0], emails[1])
    mark(notice, "failed", emails[2])
    mark(notice, "sending", emails[3])
    other = scheduled_change(material=False, document=document, title="Typo")
    result = notices.progress(db.session, [change_set.id, other.id, 999_999])
    counts = result[change_set.id]
    assert (counts.eligible, counts.sent, counts.suppressed, counts.failed, counts.pending) == (5, 2, 1, 1, 1)
    assert counts.eligible == counts.sent + counts.suppressed + counts.failed + counts.pending
    assert not counts.is_complete
    assert result[other.id].eligible == 0 and result[999_999].eligible == 0
    assert notices.progress(db.session, []) == {}


def test_start_notice_is_set_based_for_many_subscribers(app):
    topics = make_topics()
    count = 3000
    db.session.execute(Subscriber.__table__.insert(), [
        {"email": f"s{i}@example.com", "status": "confirmed", "source": "import", "created_at": NOW}
        for i in range(count)])
    change_set = scheduled_change(material=True, document=make_document())
    statements = []

    from sqlalchemy import event

    engine = db.engine

    def count_statement(*_args):
        statements.append(1)

    event.listen(engine, "before_cursor_execute", count_statement)
    try:
        notice = notices.start_notice(db.session, change_set, now=NOW)
    finally:
        event.remove(engine, "before_cursor_execute", count_statement)
    assert len(statements) < 15
    total = select(func.count()).select_from(Delivery).where(Delivery.notice_id == notice.id)
    assert db.session.scalar(total) == count
    assert db.session.scalar(select(func.count(func.distinct(Delivery.topic_id)))) == 1
    assert topics["administrative"].id == db.session.scalar(select(Delivery.topic_id).limit(1))


# -- provider events -------------------------------------------------------------------------------

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
    result = notices.apply_provider_events(db.session, events, now=NOW)
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
    result = notices.apply_provider_events(db.session, rest, now=NOW + timedelta(minutes=5))
    assert result.completed == [change_set]
    assert change_set.notice_completed_at == NOW + timedelta(minutes=5)


def test_duplicate_event_ids_change_nothing(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    notices.apply_provider_events(db.session, [event(delivery, "delivered", "same")], now=NOW)
    later = event(delivery, "bounce", "same", timestamp=int(NOW.timestamp()) + 600)
    result = notices.apply_provider_events(db.session, [later, later], now=NOW)
    assert (result.applied, result.duplicates) == (0, 2)
    assert delivery.last_event == "delivered"
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0
    assert db.session.scalar(select(func.count()).select_from(WebhookEvent)) == 1


def test_older_events_do_not_replace_the_latest(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    base = int(NOW.timestamp())
    notices.apply_provider_events(db.session, [event(delivery, "delivered", "late", timestamp=base + 100),
                                               event(delivery, "processed", "early", timestamp=base + 10)])
    assert delivery.last_event == "delivered"
    assert delivery.sent_at == datetime.fromtimestamp(base + 100, UTC)


def test_fallback_to_message_id_and_address(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    found = {"event": "delivered", "sg_event_id": "m1", "email": delivery.email.upper(),
             "sg_message_id": "msg-1.filterdrecv-1234.0"}
    wrong = {"event": "delivered", "sg_event_id": "m2", "email": "stranger@example.com",
             "sg_message_id": "msg-1.filterdrecv-1234.0"}
    result = notices.apply_provider_events(db.session, [found, wrong], now=NOW)
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
    result = notices.apply_provider_events(db.session, [garbage], now=NOW)
    db.session.commit()
    assert result.applied == 0
    assert {e: (d.status, d.last_event) for e, d in deliveries(notice).items()} == before
    assert db.session.scalar(select(func.count()).select_from(Suppression)) == 0


def test_event_for_a_delivery_of_another_address_is_ignored(sending):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    result = notices.apply_provider_events(
        db.session, [event(delivery, "delivered", "x", email="someone-else@example.com")], now=NOW)
    assert result.applied == 0 and delivery.status == "sending"


@pytest.mark.parametrize("timestamp", [1e300, -1e300, "yesterday", None, True, float("nan")])
def test_an_unreadable_event_time_is_the_time_it_arrived(sending, timestamp):
    _change_set, notice = sending
    delivery = next(iter(deliveries(notice).values()))
    notices.apply_provider_events(db.session, [event(delivery, "processed", "t", timestamp=timestamp)],
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
    result = notices.apply_provider_events(db.session, [event(target, "bounce", "b1")], now=NOW)
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
    result = notices.apply_provider_events(db.session, [{"event": "unsubscribe", "sg_event_id": "u",
                                                         "email": "SUBS@example.com"}], now=NOW)
    assert (result.applied, result.ignored, result.suppressed) == (0, 1, 1)
    db.session.expire_all()
    withdrawn = deliveries(notice)["subs@example.com"]
    assert withdrawn.status == "suppressed" and "unsubscribe" in withdrawn.error
    assert result.completed == [change_set] and change_set.notice_completed_at == NOW
